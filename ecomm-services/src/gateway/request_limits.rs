//! Request limits, as every production proxy has them (Envoy rejects request headers over
//! 60 KiB, nginx a header line over 8 KiB): a request head over `max_head_bytes`, with a
//! header line over `max_header_line_bytes` or more than `max_headers` header lines gets
//! 431, a request line over `max_request_line_bytes` 414, and a body over the body cap 413,
//! all as problem+json, before anything is forwarded.
//!
//! The head is checked while it arrives: [`HeadScan`] looks at each byte the client stream
//! reads once (a `memchr` for line ends) and stops at the end of the head, so an oversized
//! head is refused at the first byte over the bound, before hyper buffers or parses the
//! rest. Where the client stream cannot tell where a head starts (pipelined requests, after
//! a chunked body), the parsed request is measured instead ([`check_parsed`]).

use bytes::Bytes;
use http::{Request, StatusCode};

use crate::http::{new_request_id, Counter, Metrics, Problem};

/// Default bound of the whole request head, in bytes (Envoy's 60 KiB).
pub const DEFAULT_MAX_HEAD_BYTES: usize = 60 * 1024;
/// Default bound of the request line, in bytes (nginx's 8 KiB).
pub const DEFAULT_MAX_REQUEST_LINE_BYTES: usize = 8 * 1024;
/// Default bound of one header line, in bytes (nginx's 8 KiB).
pub const DEFAULT_MAX_HEADER_LINE_BYTES: usize = 8 * 1024;
/// Default bound of the number of header lines: 96, so that with the X-Forwarded-For,
/// X-Request-Id and Content-Length the gateway adds a forwarded head stays within the 100
/// lines the services' HTTP server (hyper) parses.
pub const DEFAULT_MAX_HEADERS: usize = 96;
/// Highest `max_headers`: hyper parses up to 100 header lines without allocating.
pub const MAX_HEADERS_LIMIT: usize = 100;
/// Highest `max_head_bytes`, below hyper's own read buffer cap (408 KiB).
pub const MAX_HEAD_BYTES_LIMIT: usize = 256 * 1024;
/// Highest `max_request_line_bytes`, below hyper's own request-target cap (65534 bytes).
pub const MAX_REQUEST_LINE_LIMIT: usize = 60 * 1024;

/// Bounds of a client request head; lines are measured without their line end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Whole head (request line, header lines, line ends, blank line), in bytes (default
    /// 61440); larger gets 431.
    pub max_head_bytes: usize,
    /// Request line (method, target, version), in bytes (default 8192); longer gets 414.
    pub max_request_line_bytes: usize,
    /// One header line (name, colon, value), in bytes (default 8192); longer gets 431.
    pub max_header_line_bytes: usize,
    /// Header lines (default 96, at most 100); more gets 431.
    pub max_headers: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_request_line_bytes: DEFAULT_MAX_REQUEST_LINE_BYTES,
            max_header_line_bytes: DEFAULT_MAX_HEADER_LINE_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

/// Which bound a request broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// The head is larger than `max_head_bytes`.
    HeadTooLarge,
    /// The request line is longer than `max_request_line_bytes`.
    RequestLineTooLong,
    /// A header line is longer than `max_header_line_bytes`.
    HeaderLineTooLong,
    /// More than `max_headers` header lines.
    TooManyHeaders,
    /// The body is larger than the body cap.
    BodyTooLarge,
}

impl Violation {
    const ALL: [Violation; 5] = [
        Self::HeadTooLarge,
        Self::RequestLineTooLong,
        Self::HeaderLineTooLong,
        Self::TooManyHeaders,
        Self::BodyTooLarge,
    ];

    /// The `reason` label of `gateway_requests_rejected_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::HeadTooLarge => "head_too_large",
            Self::RequestLineTooLong => "request_line_too_long",
            Self::HeaderLineTooLong => "header_line_too_long",
            Self::TooManyHeaders => "too_many_headers",
            Self::BodyTooLarge => "body_too_large",
        }
    }

    /// The problem answered (431 `request-header-fields-too-large`, 414 `uri-too-long`; 413
    /// comes from the body cap itself).
    pub fn problem(self, limits: &RequestLimits, max_body_bytes: usize) -> Problem {
        let header_too_large = || {
            Problem::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request-header-fields-too-large",
                "Request header fields too large",
            )
        };
        match self {
            Self::HeadTooLarge => header_too_large().with_detail(format!(
                "request head exceeds {} bytes",
                limits.max_head_bytes
            )),
            Self::HeaderLineTooLong => header_too_large().with_detail(format!(
                "a request header line exceeds {} bytes",
                limits.max_header_line_bytes
            )),
            Self::TooManyHeaders => header_too_large().with_detail(format!(
                "request has more than {} header lines",
                limits.max_headers
            )),
            Self::RequestLineTooLong => {
                Problem::new(StatusCode::URI_TOO_LONG, "uri-too-long", "URI too long").with_detail(
                    format!(
                        "request line exceeds {} bytes",
                        limits.max_request_line_bytes
                    ),
                )
            }
            Self::BodyTooLarge => Problem::payload_too_large(max_body_bytes as u64),
        }
    }
}

/// `gateway_requests_rejected_total{reason}`: one counter per [`Violation`].
#[derive(Clone)]
pub struct Rejections {
    counters: [Counter; 5],
}

impl Rejections {
    /// The counters of `metrics` (the same series for every caller).
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            counters: Violation::ALL.map(|violation| {
                metrics.counter(
                    "gateway_requests_rejected_total",
                    "Requests refused before forwarding for breaking a request limit, by reason.",
                    &[("reason", violation.reason())],
                )
            }),
        }
    }

    /// Counts one rejection.
    pub fn count(&self, violation: Violation) {
        let index = Violation::ALL
            .iter()
            .position(|v| *v == violation)
            .unwrap_or(0);
        self.counters[index].inc();
    }
}

/// What the client stream needs to refuse a head on its own: the bounds, the counters, and
/// the body cap (named in the 413 problem).
pub struct HeadGuard {
    /// The bounds.
    pub limits: RequestLimits,
    /// The body cap, in bytes.
    pub max_body_bytes: usize,
    /// Where rejections are counted.
    pub rejections: Rejections,
}

impl HeadGuard {
    /// The whole response refusing a head (problem+json, a fresh X-Request-Id, then close),
    /// counted; built only when a request is refused.
    pub fn refusal(&self, violation: Violation) -> Vec<u8> {
        self.rejections.count(violation);
        let problem = violation.problem(&self.limits, self.max_body_bytes);
        let body: Bytes = problem.to_body();
        let status = problem.status;
        let id = new_request_id();
        let mut wire = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nx-request-id: {}\r\nconnection: close\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            crate::http::PROBLEM_JSON,
            body.len(),
            id.to_str().unwrap_or("-"),
        )
        .into_bytes();
        wire.extend_from_slice(&body);
        wire
    }
}

/// What one chunk of client bytes told [`HeadScan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    /// The head goes on past this chunk.
    More,
    /// The head ends after this many bytes of the chunk (the rest is the body or the next
    /// request).
    End(usize),
    /// A bound is broken.
    Over(Violation),
}

/// The incremental check of one request head, fed the client's bytes as they are read.
#[derive(Debug, Default, Clone)]
pub struct HeadScan {
    /// Head bytes so far.
    head: usize,
    /// Bytes of the current (unfinished) line so far, a trailing CR included.
    line: usize,
    /// Complete non-empty lines so far (the request line first).
    lines: usize,
    /// Whether the last byte seen was a CR (a CRLF split across reads).
    cr: bool,
}

impl HeadScan {
    /// Looks at the next `chunk` of the head. Lines end in LF with an optional CR before it,
    /// as hyper parses them; empty lines before the request line are skipped (RFC 9112 §2.2)
    /// but count toward the head's size.
    pub fn feed(&mut self, limits: &RequestLimits, chunk: &[u8]) -> Scanned {
        let mut at = 0;
        while let Some(i) = memchr::memchr(b'\n', &chunk[at..]) {
            let cr = if i == 0 {
                self.cr
            } else {
                chunk[at + i - 1] == b'\r'
            };
            let content = self.line + i - usize::from(cr);
            self.head += i + 1;
            at += i + 1;
            self.line = 0;
            self.cr = false;
            if self.head > limits.max_head_bytes {
                return Scanned::Over(Violation::HeadTooLarge);
            }
            if content == 0 {
                if self.lines == 0 {
                    continue;
                }
                return Scanned::End(at);
            }
            if self.lines == 0 {
                if content > limits.max_request_line_bytes {
                    return Scanned::Over(Violation::RequestLineTooLong);
                }
            } else {
                if content > limits.max_header_line_bytes {
                    return Scanned::Over(Violation::HeaderLineTooLong);
                }
                // This is header line number `self.lines`.
                if self.lines > limits.max_headers {
                    return Scanned::Over(Violation::TooManyHeaders);
                }
            }
            self.lines += 1;
        }
        let rest = chunk.len() - at;
        if rest == 0 {
            return Scanned::More;
        }
        self.line += rest;
        self.head += rest;
        self.cr = chunk[chunk.len() - 1] == b'\r';
        // An unfinished line already over its bound (one byte of slack for a CR whose LF
        // has not arrived).
        let (bound, violation) = if self.lines == 0 {
            (limits.max_request_line_bytes, Violation::RequestLineTooLong)
        } else {
            (limits.max_header_line_bytes, Violation::HeaderLineTooLong)
        };
        if self.line > bound.saturating_add(1) {
            return Scanned::Over(violation);
        }
        if self.head > limits.max_head_bytes {
            return Scanned::Over(Violation::HeadTooLarge);
        }
        Scanned::More
    }
}

/// The same bounds measured on a request hyper already parsed (as it would be on the wire:
/// `name: value` lines, CRLF line ends), for heads the client stream could not scan.
pub fn check_parsed<B>(req: &Request<B>, limits: &RequestLimits) -> Option<Violation> {
    let uri = req.uri();
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    // "METHOD SP target SP HTTP/1.1"
    let request_line = req.method().as_str().len() + 1 + target + 1 + 8;
    if request_line > limits.max_request_line_bytes {
        return Some(Violation::RequestLineTooLong);
    }
    if req.headers().len() > limits.max_headers {
        return Some(Violation::TooManyHeaders);
    }
    let mut head = request_line + 2 + 2;
    for (name, value) in req.headers() {
        let line = name.as_str().len() + 2 + value.len();
        if line > limits.max_header_line_bytes {
            return Some(Violation::HeaderLineTooLong);
        }
        head += line + 2;
    }
    (head > limits.max_head_bytes).then_some(Violation::HeadTooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: RequestLimits = RequestLimits {
        max_head_bytes: 128,
        max_request_line_bytes: 32,
        max_header_line_bytes: 24,
        max_headers: 3,
    };

    /// Feeds `wire` in pieces of `step` bytes; the first verdict that is not `More`.
    fn scan(wire: &[u8], step: usize) -> Scanned {
        let mut scan = HeadScan::default();
        let mut offset = 0;
        for piece in wire.chunks(step) {
            match scan.feed(&SMALL, piece) {
                Scanned::More => offset += piece.len(),
                Scanned::End(n) => return Scanned::End(offset + n),
                over => return over,
            }
        }
        Scanned::More
    }

    fn every_split(wire: &[u8]) -> Vec<Scanned> {
        (1..=wire.len()).map(|step| scan(wire, step)).collect()
    }

    #[test]
    fn a_head_within_every_bound_ends_where_the_blank_line_ends_however_it_is_split() {
        let head = b"\r\nGET /abcdefghijklmnopq HTTP/1.1\r\nhost: a\r\nx-a: 0123456789abcdefghi\nx-b: 1\r\n\r\n";
        let wire = [&head[..], b"BODY"].concat();
        for verdict in every_split(&wire) {
            assert_eq!(verdict, Scanned::End(head.len()));
        }
    }

    #[test]
    fn each_bound_is_refused_one_byte_over_and_kept_at_the_bound() {
        // Request line of exactly 32 bytes passes; 33 is refused with 414.
        let at = b"GET /abcdefghijklmnopqr HTTP/1.1\r\n\r\n";
        assert_eq!(at.len() - 4, 32);
        assert!(every_split(at).iter().all(|v| matches!(v, Scanned::End(_))));
        let over = b"GET /abcdefghijklmnopqrs HTTP/1.1\r\n\r\n";
        assert!(every_split(over)
            .iter()
            .all(|v| *v == Scanned::Over(Violation::RequestLineTooLong)));
        // Header line of exactly 24 bytes passes; 25 is refused with 431.
        let at = b"GET / HTTP/1.1\r\nx: 0123456789abcdefghijk\r\n\r\n";
        assert!(every_split(at).iter().all(|v| matches!(v, Scanned::End(_))));
        let over = b"GET / HTTP/1.1\r\nx: 0123456789abcdefghijkl\r\n\r\n";
        assert!(every_split(over)
            .iter()
            .all(|v| *v == Scanned::Over(Violation::HeaderLineTooLong)));
        // Three header lines pass; a fourth is refused.
        let at = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
        assert!(every_split(at).iter().all(|v| matches!(v, Scanned::End(_))));
        let over = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n";
        assert!(every_split(over)
            .iter()
            .all(|v| *v == Scanned::Over(Violation::TooManyHeaders)));
    }

    #[test]
    fn a_head_over_the_total_bound_is_refused_before_its_end_arrives() {
        let mut scan = HeadScan::default();
        let limits = RequestLimits {
            max_headers: 100,
            ..SMALL
        };
        assert_eq!(scan.feed(&limits, b"GET / HTTP/1.1\r\n"), Scanned::More);
        let mut verdict = Scanned::More;
        for _ in 0..20 {
            verdict = scan.feed(&limits, b"x: 0123456789\r\n");
            if verdict != Scanned::More {
                break;
            }
        }
        assert_eq!(verdict, Scanned::Over(Violation::HeadTooLarge));
        // An endless line with no LF is refused too, at the line bound.
        let mut scan = HeadScan::default();
        assert_eq!(
            scan.feed(&SMALL, &[b'A'; 40]),
            Scanned::Over(Violation::RequestLineTooLong)
        );
    }

    #[test]
    fn the_parsed_request_is_measured_as_it_was_on_the_wire() {
        let wire_head = "GET /abc?x=1 HTTP/1.1\r\nhost: a\r\nx-b: 12\r\n\r\n";
        let req = Request::get("/abc?x=1")
            .header("host", "a")
            .header("x-b", "12")
            .body(())
            .unwrap();
        let exact = RequestLimits {
            max_head_bytes: wire_head.len(),
            max_request_line_bytes: "GET /abc?x=1 HTTP/1.1".len(),
            max_header_line_bytes: "x-b: 12".len(),
            max_headers: 2,
        };
        assert_eq!(check_parsed(&req, &exact), None);
        for (limits, violation) in [
            (
                RequestLimits {
                    max_head_bytes: wire_head.len() - 1,
                    ..exact
                },
                Violation::HeadTooLarge,
            ),
            (
                RequestLimits {
                    max_request_line_bytes: exact.max_request_line_bytes - 1,
                    ..exact
                },
                Violation::RequestLineTooLong,
            ),
            (
                RequestLimits {
                    max_header_line_bytes: exact.max_header_line_bytes - 1,
                    ..exact
                },
                Violation::HeaderLineTooLong,
            ),
            (
                RequestLimits {
                    max_headers: 1,
                    ..exact
                },
                Violation::TooManyHeaders,
            ),
        ] {
            assert_eq!(check_parsed(&req, &limits), Some(violation));
        }
    }
}
