//! The standard outer layers every axum service gets: health, metrics, request id, recording.

use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;

use super::{health_routes, request_id, Metrics, Problem, ReadyCheck};

/// Adds `/livez`, `/readyz` (running `ready`), `/metrics`, per-route request metrics and the
/// X-Request-Id span to a service's own (state-applied) router.
pub fn with_standard_routes(service: Router, metrics: &Metrics, ready: ReadyCheck) -> Router {
    service
        .merge(health_routes(ready))
        .merge(metrics.routes())
        .layer(from_fn_with_state(metrics.clone(), Metrics::record_layer))
        .layer(from_fn(request_id))
}

/// Answers unknown paths with 404 and unsupported methods with 405, both as problem+json,
/// instead of axum's empty bodies; call it on a service's router before `with_state`.
pub fn problem_fallbacks<S>(router: axum::Router<S>) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            )
            .with_detail("this path does not support the request's method")
        })
        .fallback(|uri: axum::http::Uri| async move {
            Problem::not_found(format!("no route for {}", uri.path()))
        })
}
