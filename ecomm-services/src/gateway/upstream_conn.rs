//! One keep-alive HTTP/1.1 connection to an upstream instance, driven inline by the request
//! that holds it (no connection task, no channels, one write and usually one read per
//! exchange): encode the request, read and parse the whole response (buffered, like nginx's
//! `proxy_buffering on`) and tell whether the connection may be reused.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Method, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::chunked::{decode_chunked, Chunked};
use super::headers::{is_hop_by_hop, write_upstream_headers};
use crate::http::REQUEST_ID;

/// Most header lines accepted in an upstream response.
const MAX_HEADERS: usize = 96;
/// Largest upstream response head accepted, in bytes.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Read buffer growth step, in bytes.
const READ_CHUNK: usize = 16 * 1024;

/// Why an exchange with an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The TCP connection could not be opened.
    #[error("connecting to {addr} failed: {source}")]
    Connect {
        /// Upstream address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The TCP connection was not open within the connect timeout.
    #[error("connecting to {addr} timed out after {timeout:?}")]
    ConnectTimeout {
        /// Upstream address.
        addr: SocketAddr,
        /// The connect timeout.
        timeout: Duration,
    },
    /// A pooled connection was found closed and a new one closed too before a single
    /// response byte: the instance is going away, as good as refusing connections.
    #[error("{addr} closed a new connection without answering (shutting down?)")]
    ClosedOnArrival {
        /// Upstream address.
        addr: SocketAddr,
    },
    /// Writing the request or reading the response failed.
    #[error("i/o error: {source}")]
    Io {
        /// The OS error.
        source: io::Error,
        /// Whether any response byte had arrived.
        received: bool,
    },
    /// The upstream closed the connection before the response was complete.
    #[error("connection closed before the response was complete")]
    Closed {
        /// Whether any response byte had arrived.
        received: bool,
    },
    /// The response is not valid HTTP/1.x.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The response body exceeds the buffering cap.
    #[error("response body larger than {0} bytes")]
    TooLarge(usize),
}

impl ExchangeError {
    /// Whether the connection never opened (safe to retry for any method).
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::ConnectTimeout { .. } | Self::ClosedOnArrival { .. }
        )
    }

    /// Whether the connection broke before a single response byte arrived (what an idle
    /// keep-alive connection closed by the upstream looks like).
    pub fn nothing_received(&self) -> bool {
        matches!(
            self,
            Self::Io {
                received: false,
                ..
            } | Self::Closed { received: false }
        )
    }
}

/// A response read from an upstream, with whether its connection may carry another request.
pub struct Exchanged {
    /// The whole response; hop-by-hop headers still present.
    pub response: Response<Bytes>,
    /// Whether the connection is clean and may be pooled.
    pub reusable: bool,
}

/// How the response body is delimited (RFC 9112 §6.3).
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Where one header line of a parsed response head lies (byte offsets into the head).
#[derive(Debug, Clone, Copy)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

impl Span {
    fn name<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.name.0 as usize..self.name.1 as usize]
    }

    fn value_range(&self) -> std::ops::Range<usize> {
        self.value.0 as usize..self.value.1 as usize
    }

    fn value<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.value_range()]
    }
}

/// What the parse of a response head tells (its header lines are in the caller's spans).
struct Head {
    len: usize,
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

/// What one request sends upstream (the same for every try).
#[derive(Clone, Copy)]
pub struct OutgoingRequest<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Request target.
    pub path: &'a PathAndQuery,
    /// The client's headers, as received.
    pub headers: &'a HeaderMap,
    /// The whole request body.
    pub body: &'a [u8],
    /// The client's address, appended to `X-Forwarded-For`.
    pub client: IpAddr,
    /// The request id sent as `X-Request-Id`.
    pub request_id: &'a HeaderValue,
}

/// One open connection to an upstream instance.
pub struct UpstreamConn {
    addr: SocketAddr,
    stream: TcpStream,
    read: BytesMut,
    write: Vec<u8>,
    /// Header lines of the last response head parsed (reused: no allocation per exchange).
    spans: Vec<Span>,
    idle_since: Instant,
}

impl UpstreamConn {
    /// Opens a connection to `addr` (TCP_NODELAY), failing after `timeout`.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, ExchangeError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(ExchangeError::Connect { addr, source }),
            Err(_) => return Err(ExchangeError::ConnectTimeout { addr, timeout }),
        };
        let _ = stream.set_nodelay(true);
        Ok(Self {
            addr,
            stream,
            read: BytesMut::new(),
            write: Vec::with_capacity(1024),
            spans: Vec::with_capacity(16),
            idle_since: Instant::now(),
        })
    }

    /// The upstream address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// When the connection last became idle.
    pub fn idle_since(&self) -> Instant {
        self.idle_since
    }

    /// Marks the connection idle since `at` (when it goes back to a pool).
    pub fn set_idle_since(&mut self, at: Instant) {
        self.idle_since = at;
    }

    /// Whether an idle connection still looks usable: nothing readable (no EOF, no stray
    /// bytes). Costs no system call unless the socket was reported readable.
    pub fn looks_alive(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut byte = [0u8; 1];
                matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Sends one request and reads the whole response; the body is buffered up to
    /// `max_body` bytes. The client's headers go through [`write_upstream_headers`]
    /// (hop-by-hop left out, `X-Forwarded-For` and `X-Request-Id` set); the `Host` header
    /// defaults to `authority`, and `Content-Length` is set from the body.
    pub async fn exchange(
        &mut self,
        request: &OutgoingRequest<'_>,
        authority: &Authority,
        max_body: usize,
    ) -> Result<Exchanged, ExchangeError> {
        self.encode(request, authority);
        let method = request.method;
        self.stream
            .write_all(&self.write)
            .await
            .map_err(|source| ExchangeError::Io {
                source,
                received: false,
            })?;
        self.read_response(*method == Method::HEAD, max_body).await
    }

    fn encode(&mut self, request: &OutgoingRequest<'_>, authority: &Authority) {
        let OutgoingRequest {
            method,
            path,
            headers,
            body,
            client,
            request_id,
        } = *request;
        let out = &mut self.write;
        out.clear();
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(path.as_str().as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !headers.contains_key(header::HOST) {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(authority.as_str().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        // The body is sent whole, right away: framing is ours, and no 100-continue.
        write_upstream_headers(out, headers, client, request_id);
        let expects_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
        if !body.is_empty() || expects_body {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    /// Reads more bytes into the read buffer; Ok(false) on EOF.
    async fn fill(&mut self, received: bool) -> Result<bool, ExchangeError> {
        if self.read.capacity() - self.read.len() < 1024 {
            self.read.reserve(READ_CHUNK);
        }
        match self.stream.read_buf(&mut self.read).await {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(source) => Err(ExchangeError::Io { source, received }),
        }
    }

    async fn read_response(
        &mut self,
        head_request: bool,
        max_body: usize,
    ) -> Result<Exchanged, ExchangeError> {
        self.read.clear();
        let mut received = false;
        let head = loop {
            match parse_head(&self.read, head_request, &mut self.spans)? {
                Some(head) if (100..200).contains(&head.status) => {
                    if head.status == 101 {
                        return Err(ExchangeError::Malformed(
                            "101 Switching Protocols is not proxied".into(),
                        ));
                    }
                    self.read.advance(head.len);
                }
                Some(head) => break head,
                None if self.read.len() > MAX_HEAD_BYTES => {
                    return Err(ExchangeError::Malformed(format!(
                        "response head larger than {MAX_HEAD_BYTES} bytes"
                    )))
                }
                None => {
                    if !self.fill(received).await? {
                        return Err(ExchangeError::Closed { received });
                    }
                    received = true;
                }
            }
        };
        let mut reusable = head.keep_alive;
        let (message, body) = match head.framing {
            Framing::Empty => (self.read.split_to(head.len).freeze(), Bytes::new()),
            Framing::Length(length) => {
                if length > max_body {
                    return Err(ExchangeError::TooLarge(max_body));
                }
                let total = head.len + length;
                if self.read.len() < total {
                    self.read.reserve(total - self.read.len());
                }
                while self.read.len() < total {
                    if !self.fill(true).await? {
                        return Err(ExchangeError::Closed { received: true });
                    }
                }
                let message = self.read.split_to(total).freeze();
                let body = message.slice(head.len..);
                (message, body)
            }
            Framing::Chunked => loop {
                match decode_chunked(&self.read[head.len..], max_body)? {
                    Chunked::Complete { body, consumed } => {
                        let message = self.read.split_to(head.len + consumed).freeze();
                        break (message, body);
                    }
                    Chunked::Incomplete => {
                        if !self.fill(true).await? {
                            return Err(ExchangeError::Closed { received: true });
                        }
                    }
                }
            },
            Framing::UntilClose => {
                reusable = false;
                while self.fill(true).await? {
                    if self.read.len() - head.len > max_body {
                        return Err(ExchangeError::TooLarge(max_body));
                    }
                }
                let message = self.read.split().freeze();
                let body = message.slice(head.len..);
                (message, body)
            }
        };
        if !self.read.is_empty() {
            // Bytes after the response: the stream is out of step, never reuse it.
            reusable = false;
        }
        let response = build_response(&message, &self.spans, head.status, body)?;
        Ok(Exchanged { response, reusable })
    }
}

/// [`UpstreamConn::read_response`] over a buffer holding everything the upstream sent, for
/// the fuzz targets: 1xx heads skipped, the body framed as announced, the response built.
#[cfg(feature = "fuzzing")]
pub(super) fn parse_response(
    buf: &[u8],
    head_request: bool,
    max_body: usize,
) -> Result<Option<Response<Bytes>>, ExchangeError> {
    let mut spans = Vec::new();
    let mut at = 0;
    let head = loop {
        match parse_head(&buf[at..], head_request, &mut spans)? {
            Some(head) if (100..200).contains(&head.status) => {
                if head.status == 101 {
                    return Err(ExchangeError::Malformed(
                        "101 Switching Protocols is not proxied".into(),
                    ));
                }
                at += head.len;
            }
            Some(head) => break head,
            None if buf.len() - at > MAX_HEAD_BYTES => {
                return Err(ExchangeError::Malformed(format!(
                    "response head larger than {MAX_HEAD_BYTES} bytes"
                )))
            }
            None => return Ok(None),
        }
    };
    let rest = &buf[at + head.len..];
    let (message_len, body) = match head.framing {
        Framing::Empty => (head.len, Bytes::new()),
        Framing::Length(length) => {
            if length > max_body {
                return Err(ExchangeError::TooLarge(max_body));
            }
            if rest.len() < length {
                return Ok(None);
            }
            (head.len + length, Bytes::copy_from_slice(&rest[..length]))
        }
        Framing::Chunked => match decode_chunked(rest, max_body)? {
            Chunked::Complete { body, consumed } => (head.len + consumed, body),
            Chunked::Incomplete => return Ok(None),
        },
        Framing::UntilClose => {
            if rest.len() > max_body {
                return Err(ExchangeError::TooLarge(max_body));
            }
            (buf.len() - at, Bytes::copy_from_slice(rest))
        }
    };
    let message = Bytes::copy_from_slice(&buf[at..at + message_len]);
    build_response(&message, &spans, head.status, body).map(Some)
}

/// Parses the response head at the start of `buf` (None: incomplete); its header lines are
/// left in `spans`.
fn parse_head(
    buf: &[u8],
    head_request: bool,
    spans: &mut Vec<Span>,
) -> Result<Option<Head>, ExchangeError> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut headers,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(ExchangeError::Malformed(error.to_string())),
    };
    let status = response.code.unwrap_or(0);
    // Offsets fit in u32: the head is at most MAX_HEAD_BYTES (checked by the caller before
    // reading more), and httparse's slices point into `buf`.
    let base = buf.as_ptr() as usize;
    let offset = |part: &[u8]| (part.as_ptr() as usize - base) as u32;
    spans.clear();
    spans.extend(response.headers.iter().map(|h| {
        let name = offset(h.name.as_bytes());
        let value = offset(h.value);
        Span {
            name: (name, name + h.name.len() as u32),
            value: (value, value + h.value.len() as u32),
        }
    }));
    let mut keep_alive = response.version == Some(1);
    let mut length = None;
    let mut chunked = false;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| ExchangeError::Malformed("invalid Content-Length".into()))?;
            if length.is_some_and(|l| l != value) {
                return Err(ExchangeError::Malformed(
                    "conflicting Content-Length".into(),
                ));
            }
            length = Some(value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                keep_alive = false;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && response.version == Some(0) {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = if head_request || matches!(status, 100..=199 | 204 | 304) {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(length) = length {
        Framing::Length(length)
    } else {
        Framing::UntilClose
    };
    Ok(Some(Head {
        len,
        status,
        framing,
        keep_alive,
    }))
}

/// Builds the response from the frozen `message` (its head described by `spans`, as parsed
/// by [`parse_head`]), sharing its bytes for header values; hop-by-hop headers are left out,
/// and so is the framing (the body is whole now) except on responses without a body, where
/// Content-Length describes the resource.
fn build_response(
    message: &Bytes,
    spans: &[Span],
    status: u16,
    body: Bytes,
) -> Result<Response<Bytes>, ExchangeError> {
    let status = StatusCode::from_u16(status)
        .map_err(|_| ExchangeError::Malformed("invalid status code".into()))?;
    let keep_length = body.is_empty() && matches!(status.as_u16(), 200..=299 | 304);
    let connection = spans
        .iter()
        .find(|h| h.name(message).eq_ignore_ascii_case(b"connection"))
        .map(|h| h.value(message));
    let mut map = HeaderMap::with_capacity(spans.len());
    for h in spans {
        let raw_name = h.name(message);
        if (!keep_length && raw_name.eq_ignore_ascii_case(b"content-length"))
            || is_hop_by_hop(raw_name, connection)
        {
            continue;
        }
        let name = header_name(raw_name)?;
        let value = HeaderValue::from_maybe_shared(message.slice(h.value_range()))
            .map_err(|_| ExchangeError::Malformed(format!("invalid value of header {name}")))?;
        map.append(name, value);
    }
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = map;
    Ok(response)
}

/// The header name, without allocating for the custom names the services always send.
fn header_name(name: &[u8]) -> Result<HeaderName, ExchangeError> {
    if name.eq_ignore_ascii_case(b"x-request-id") {
        return Ok(REQUEST_ID.clone());
    }
    if name.eq_ignore_ascii_case(b"x-cache") {
        return Ok(HeaderName::from_static("x-cache"));
    }
    HeaderName::from_bytes(name).map_err(|_| {
        ExchangeError::Malformed(format!(
            "invalid header name {:?}",
            String::from_utf8_lossy(name)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes(), false, &mut Vec::new())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn framing_follows_rfc_9112() {
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n").framing,
            Framing::Length(5)
        ));
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n").framing,
            Framing::Chunked
        ));
        assert!(matches!(
            head("HTTP/1.1 204 No Content\r\n\r\n").framing,
            Framing::Empty
        ));
        let until_close = head("HTTP/1.1 200 OK\r\n\r\n");
        assert!(matches!(until_close.framing, Framing::UntilClose));
        assert!(
            !head("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").keep_alive
        );
        assert!(!head("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n").keep_alive);
        assert!(
            head("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n")
                .keep_alive
        );
    }

    #[test]
    fn a_head_request_has_no_body_whatever_the_length_says() {
        let head = parse_head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n",
            true,
            &mut Vec::new(),
        )
        .unwrap()
        .unwrap();
        assert!(matches!(head.framing, Framing::Empty));
    }

    #[test]
    fn conflicting_lengths_are_malformed() {
        let result = parse_head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            false,
            &mut Vec::new(),
        );
        assert!(matches!(result, Err(ExchangeError::Malformed(_))));
    }

    #[test]
    fn responses_keep_end_to_end_headers_and_drop_framing() {
        let text =
            "HTTP/1.1 201 Created\r\ncontent-length: 2\r\nx-cache: hit\r\nlocation: /a\r\n\r\nok";
        let message = Bytes::from(text);
        let head_len = text.len() - 2;
        let mut spans = Vec::new();
        let head = parse_head(&message, false, &mut spans).unwrap().unwrap();
        assert_eq!(head.len, head_len);
        let response =
            build_response(&message, &spans, head.status, message.slice(head_len..)).unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["x-cache"], "hit");
        assert_eq!(response.headers()["location"], "/a");
        assert!(!response.headers().contains_key("content-length"));
        assert_eq!(response.body().as_ref(), b"ok");
    }
}
