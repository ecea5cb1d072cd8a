//! X-Request-Id: propagate a sane incoming id or generate one, echo it on the response, and
//! run the handler inside a tracing span carrying it (so every log line names the request).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue};
use tracing::Instrument;

/// The header name, lower-case as HTTP/2 requires.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming id accepted as-is (bytes); longer or non-visible-ASCII ids are replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The request's id, available to handlers as an extension (`Extension<RequestId>`).
#[derive(Clone, Debug)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// The id as text (always visible ASCII).
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("-")
    }
}

/// Returns the incoming id if acceptable, else a fresh UUIDv4.
pub fn request_id_from(headers: &http::HeaderMap) -> HeaderValue {
    if let Some(value) = headers.get(&REQUEST_ID) {
        let bytes = value.as_bytes();
        if !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_LEN
            && bytes.iter().all(|b| b.is_ascii_graphic())
        {
            return value.clone();
        }
    }
    new_request_id()
}

/// A fresh UUIDv4 request id.
pub fn new_request_id() -> HeaderValue {
    let mut buf = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    // A hyphenated UUID is visible ASCII, always a valid header value.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// axum middleware (`axum::middleware::from_fn(request_id)`) applying the behaviour above.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = request_id_from(req.headers());
    req.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or("-"),
        method = %req.method(),
        path = req.uri().path(),
    );
    let mut response = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(status = response.status().as_u16(), "response");
    });
    response.headers_mut().insert(REQUEST_ID.clone(), id);
    response
}
