//! A small blocking HTTP/1.1 client whose connections start inside a namespace.
//!
//! In test mode the host has no route to the tiers, so every request is sent over a socket
//! created inside a namespace of the lab (see [`NsHandle::connect`]). One request per
//! connection (`Connection: close`), bodies read to the end, chunked encoding decoded.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use crate::error::LabError;
use crate::ns::NsHandle;

/// Default time allowed for connecting plus the whole exchange: 10 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method, e.g. "GET".
    pub method: String,
    /// Path and query, e.g. "/api/products?page=1".
    pub path: String,
    /// Extra headers (Host, Connection and Content-Length are set automatically).
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    pub body: Vec<u8>,
    /// Deadline for connect and for each read/write.
    pub timeout: Duration,
}

impl Request {
    /// A GET of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A POST of a JSON body to `path`.
    pub fn post_json(path: impl Into<String>, body: &serde_json::Value) -> Self {
        Self {
            method: "POST".into(),
            path: path.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The request as bytes on the wire to `addr` (its `Host`): head, then body; one request
    /// per connection (`Connection: close`), so the answer ends when the server closes.
    pub fn encode(&self, addr: SocketAddr) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.path,
            self.body.len()
        );
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut wire = head.into_bytes();
        wire.extend_from_slice(&self.body);
        wire
    }

    /// Sends the request to `addr` over a connection opened inside `ns`.
    pub fn send(&self, ns: &NsHandle, addr: SocketAddr) -> Result<Response, LabError> {
        let fail = |reason: String| LabError::Http {
            method: self.method.clone(),
            addr,
            path: self.path.clone(),
            reason,
        };
        let mut stream = ns.connect(addr, self.timeout)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .map_err(|e| fail(format!("set timeouts: {e}")))?;
        stream
            .write_all(&self.encode(addr))
            .map_err(|e| fail(format!("send: {e}")))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .map_err(|e| fail(format!("read: {e}")))?;
        Response::parse(&raw).map_err(fail)
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in order (names lower-cased).
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// Parses everything a server sent on one connection: interim (1xx) heads are skipped,
    /// a chunked body is decoded.
    pub fn parse(mut raw: &[u8]) -> Result<Self, String> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let header_len = match resp.parse(raw) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return Err(format!("incomplete response head ({} bytes)", raw.len()))
            }
            Err(e) => return Err(format!("malformed response: {e}")),
        };
        let status = resp.code.ok_or("response without a status code")?;
        if (100..200).contains(&status) {
            raw = &raw[header_len..];
            return Self::parse(raw);
        }
        let headers: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let rest = &raw[header_len..];
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        let body = if chunked {
            decode_chunked(rest)?
        } else {
            rest.to_vec()
        };
        Ok(Self {
            status,
            headers,
            body,
        })
    }
}

fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line without CRLF")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_interim_response_is_skipped_for_the_final_one() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nX-Cache: miss\r\n\r\n{\"id\":\"1\"}";
        let resp = Response::parse(raw).unwrap();
        assert_eq!(resp.status, 201);
        assert_eq!(resp.header("x-cache"), Some("miss"));
        assert_eq!(resp.json().unwrap()["id"], "1");
    }

    #[test]
    fn a_request_is_encoded_with_its_host_length_and_close() {
        let req = Request::post_json("/api/orders", &serde_json::json!({"a": 1}))
            .header("Idempotency-Key", "k");
        let wire = String::from_utf8(req.encode("10.0.0.1:80".parse().unwrap())).unwrap();
        assert_eq!(
            wire,
            "POST /api/orders HTTP/1.1\r\nHost: 10.0.0.1:80\r\nConnection: close\r\nContent-Length: 7\r\nContent-Type: application/json\r\nIdempotency-Key: k\r\n\r\n{\"a\":1}"
        );
    }

    #[test]
    fn a_chunked_response_is_decoded() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Cache: hit\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
        let resp = Response::parse(raw).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("X-Cache"), Some("hit"));
        assert_eq!(resp.text(), "Wikipedia");
    }

    #[test]
    fn a_plain_response_keeps_its_body() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\nContent-Length: 2\r\n\r\n{}";
        let resp = Response::parse(raw).unwrap();
        assert_eq!(resp.status, 503);
        assert_eq!(resp.json().unwrap(), serde_json::json!({}));
    }
}
