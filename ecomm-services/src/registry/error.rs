//! Registry errors; each maps to a problem+json answer.

use http::StatusCode;

use crate::http::Problem;

/// What a registry request got wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// Service names are DNS labels.
    #[error(
        "invalid service name {0:?}: expected 1-63 of [a-z0-9-], not starting or ending with '-'"
    )]
    InvalidServiceName(String),
    /// Instance ids are DNS labels too (they appear in SRV targets).
    #[error(
        "invalid instance id {0:?}: expected 1-63 of [a-z0-9-], not starting or ending with '-'"
    )]
    InvalidInstanceId(String),
    /// Lease outside 1..=3600 s.
    #[error("invalid ttl_seconds {0}: expected 1..=3600")]
    InvalidTtl(u64),
    /// Port 0 cannot be connected to.
    #[error("invalid port 0: expected 1..=65535")]
    InvalidPort,
    /// Unparseable `wait` duration.
    #[error("invalid wait {0:?}: expected e.g. 500ms, 30s or 5m, at most 10m")]
    InvalidWait(String),
    /// No live lease for this instance.
    #[error("no live instance {id:?} in service {service:?}")]
    UnknownInstance {
        /// Service name.
        service: String,
        /// Instance id.
        id: String,
    },
    /// Missing or wrong bearer token.
    #[error("writes need the header `Authorization: Bearer <token>` with the registry's token")]
    Unauthorized,
}

impl From<RegistryError> for Problem {
    fn from(error: RegistryError) -> Self {
        let detail = error.to_string();
        match error {
            RegistryError::UnknownInstance { .. } => Problem::not_found(detail),
            RegistryError::Unauthorized => Problem::unauthorized(detail),
            RegistryError::InvalidTtl(_) | RegistryError::InvalidPort => {
                Problem::validation(detail)
            }
            _ => Problem::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request")
                .with_detail(detail),
        }
    }
}

impl axum::response::IntoResponse for RegistryError {
    fn into_response(self) -> axum::response::Response {
        Problem::from(self).into_response()
    }
}
