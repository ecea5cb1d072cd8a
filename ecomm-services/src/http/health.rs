//! `/livez` (the process runs) and `/readyz` (its dependencies answer) endpoints.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::Problem;

/// A boxed readiness future: `Ok(())` when ready, `Err(reason)` naming the failing dependency.
pub type ReadyFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A readiness check run on every `GET /readyz`.
pub type ReadyCheck = Arc<dyn Fn() -> ReadyFuture + Send + Sync>;

/// Wraps an async closure as a [`ReadyCheck`].
pub fn ready_check<F, Fut>(check: F) -> ReadyCheck
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move || Box::pin(check()))
}

/// A readiness check that always passes (for services without dependencies).
pub fn always_ready() -> ReadyCheck {
    ready_check(|| async { Ok(()) })
}

/// `GET /livez` → 200 always; `GET /readyz` → 200 when `ready` passes, else 503 problem+json.
pub fn health_routes(ready: ReadyCheck) -> Router {
    Router::new()
        .route("/livez", get(|| async { Json(json!({"status": "live"})) }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready().await {
                        Ok(()) => Ok(Json(json!({"status": "ready"}))),
                        Err(reason) => Err(Problem::unavailable(format!("not ready: {reason}"))),
                    }
                }
            }),
        )
}
