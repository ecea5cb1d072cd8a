//! RFC 9457 `application/problem+json` errors with stable `type` URIs.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

/// Media type of every error body the services return.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Prefix of every problem `type`; the slug after it is stable API (clients match on it).
pub const PROBLEM_TYPE_PREFIX: &str = "urn:ecomm:problem:";

/// One error response: status, stable slug (`type` = `urn:ecomm:problem:<slug>`), title, detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status sent with the body (also serialised as `status`).
    pub status: StatusCode,
    /// Stable machine-readable slug, e.g. `not-found`; becomes the `type` URI.
    pub slug: &'static str,
    /// Short human summary that does not change between occurrences.
    pub title: &'static str,
    /// Occurrence-specific explanation naming the offending value.
    pub detail: Option<String>,
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

impl Problem {
    /// A problem with the given status, slug and title and no detail.
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str) -> Self {
        Self {
            status,
            slug,
            title,
            detail: None,
        }
    }

    /// The same problem with an occurrence-specific detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// 400 `bad-request`: the request is syntactically or semantically invalid.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request").with_detail(detail)
    }

    /// 422 `validation-failed`: well-formed input that breaks a domain rule.
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "Validation failed",
        )
        .with_detail(detail)
    }

    /// 401 `unauthorized`: missing or wrong bearer token.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized").with_detail(detail)
    }

    /// 404 `not-found`: the addressed resource does not exist.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found").with_detail(detail)
    }

    /// 409 `conflict`: the request conflicts with the resource's current state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict").with_detail(detail)
    }

    /// 413 `payload-too-large`: the body exceeds the configured cap.
    pub fn payload_too_large(limit_bytes: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
        )
        .with_detail(format!("request body exceeds {limit_bytes} bytes"))
    }

    /// 500 `internal`: an unexpected failure; the detail must not leak secrets.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
        .with_detail(detail)
    }

    /// 502 `bad-gateway`: an upstream answered invalidly or dropped the connection.
    pub fn bad_gateway(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "bad-gateway", "Bad gateway").with_detail(detail)
    }

    /// 503 `unavailable`: no healthy instance or dependency can serve the request.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
        )
        .with_detail(detail)
    }

    /// 504 `gateway-timeout`: an upstream did not answer in time.
    pub fn gateway_timeout(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "gateway-timeout",
            "Gateway timeout",
        )
        .with_detail(detail)
    }

    /// The stable `type` URI, `urn:ecomm:problem:<slug>`.
    pub fn type_uri(&self) -> String {
        format!("{PROBLEM_TYPE_PREFIX}{}", self.slug)
    }

    /// The JSON body as bytes (for the gateway's hyper path).
    pub fn to_body(&self) -> Bytes {
        let wire = Wire {
            kind: self.type_uri(),
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail.as_deref(),
        };
        // Serialising a struct of strings and integers cannot fail.
        Bytes::from(serde_json::to_vec(&wire).unwrap_or_default())
    }

    /// A complete `http::Response` with any body type that can be built from `Bytes`.
    pub fn to_response<B: From<Bytes>>(&self) -> http::Response<B> {
        let mut response = http::Response::new(B::from(self.to_body()));
        *response.status_mut() = self.status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.detail {
            Some(detail) => write!(f, "{} ({}): {detail}", self.title, self.status.as_u16()),
            None => write!(f, "{} ({})", self.title, self.status.as_u16()),
        }
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.to_body();
        (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response()
    }
}

/// Malformed or mistyped JSON bodies become 400/415/422 problems instead of axum's plain text.
impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        let detail = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => Self::validation(detail),
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            )
            .with_detail(detail),
            JsonRejection::BytesRejection(_) if rejection_is_too_large(&detail) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            )
            .with_detail(detail),
            _ => Self::bad_request(detail),
        }
    }
}

fn rejection_is_too_large(detail: &str) -> bool {
    detail.contains("length limit")
}

/// Invalid query strings become 400 problems.
impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_carries_stable_type_and_status() {
        let body = Problem::not_found("product 7 does not exist").to_body();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["type"], "urn:ecomm:problem:not-found");
        assert_eq!(json["status"], 404);
        assert_eq!(json["detail"], "product 7 does not exist");
    }
}
