//! The standard outer layers every axum service gets: health, metrics, request id, recording.

use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;

use super::{health_routes, request_id, Metrics, ReadyCheck};

/// Adds `/livez`, `/readyz` (running `ready`), `/metrics`, per-route request metrics and the
/// X-Request-Id span to a service's own (state-applied) router.
pub fn with_standard_routes(service: Router, metrics: &Metrics, ready: ReadyCheck) -> Router {
    service
        .merge(health_routes(ready))
        .merge(metrics.routes())
        .layer(from_fn_with_state(metrics.clone(), Metrics::record_layer))
        .layer(from_fn(request_id))
}
