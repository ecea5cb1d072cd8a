//! The registry's HTTP API (`/v1/services/...`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::require_bearer;
use super::name::validate_service;
use super::state::Registered;
use super::wire::RegisterRequest;
use super::{Registry, RegistryError};
use crate::http::Problem;

/// Header carrying the index of the returned view (Consul's `X-Consul-Index`).
pub static REGISTRY_INDEX: HeaderName = HeaderName::from_static("x-registry-index");

/// Longest long-poll a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// Long-poll length when `index` is given without `wait`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Api {
    registry: Arc<Registry>,
    token: Arc<str>,
}

/// The API routes over `registry`, with writes guarded by `token`.
pub fn routes(registry: Arc<Registry>, token: &str) -> Router {
    Router::new()
        .route("/v1/services", get(list))
        .route("/v1/services/{name}", get(resolve))
        .route(
            "/v1/services/{name}/instances/{id}",
            put(register).delete(deregister),
        )
        .route("/v1/services/{name}/instances/{id}/renew", put(renew))
        .with_state(Api {
            registry,
            token: Arc::from(token),
        })
}

async fn list(State(api): State<Api>) -> Response {
    let list = api.registry.list();
    with_index(list.index, Json(list))
}

#[derive(Deserialize)]
struct WatchQuery {
    index: Option<u64>,
    wait: Option<String>,
}

async fn resolve(
    State(api): State<Api>,
    Path(name): Path<String>,
    query: Result<Query<WatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query?;
    validate_service(&name)?;
    let view = match (query.index, query.wait.as_deref()) {
        (None, None) => api.registry.resolve(&name),
        (index, wait) => {
            let wait = match wait {
                Some(text) => parse_wait(text)?,
                None => DEFAULT_WAIT,
            };
            api.registry.watch(&name, index.unwrap_or(0), wait).await
        }
    };
    Ok(with_index(view.index, Json(view)))
}

async fn register(
    State(api): State<Api>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<RegisterRequest>, JsonRejection>,
) -> Result<Response, Problem> {
    require_bearer(&headers, &api.token)?;
    let Json(request) = body?;
    let (outcome, lease) = api.registry.register(&name, &id, request)?;
    let status = match outcome {
        Registered::Created => StatusCode::CREATED,
        Registered::Updated => StatusCode::OK,
    };
    Ok(with_index(lease.index, (status, Json(lease))))
}

async fn renew(
    State(api): State<Api>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require_bearer(&headers, &api.token)?;
    let lease = api.registry.renew(&name, &id)?;
    Ok(with_index(lease.index, Json(lease)))
}

async fn deregister(
    State(api): State<Api>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require_bearer(&headers, &api.token)?;
    let index = api.registry.deregister(&name, &id)?;
    Ok(with_index(index, StatusCode::NO_CONTENT))
}

fn with_index(index: u64, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(REGISTRY_INDEX.clone(), HeaderValue::from(index));
    response
}

/// Parses `500ms`, `30s`, `5m` (a bare number means seconds); at most [`MAX_WAIT`].
pub fn parse_wait(text: &str) -> Result<Duration, RegistryError> {
    let invalid = || RegistryError::InvalidWait(text.to_owned());
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let n: u64 = number.parse().map_err(|_| invalid())?;
    let wait = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(invalid)?),
        _ => return Err(invalid()),
    };
    if wait > MAX_WAIT {
        return Err(invalid());
    }
    Ok(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_durations() {
        assert_eq!(parse_wait("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_wait("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_wait("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_wait("7"), Ok(Duration::from_secs(7)));
        assert!(parse_wait("11m").is_err());
        assert!(parse_wait("x").is_err());
        assert!(parse_wait("5h").is_err());
    }
}
