//! The HTTP layer shared by every service.
//!
//! A service builds its own axum `Router`, then:
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use ecomm_services::http;
//! let metrics = http::Metrics::new("product");
//! let hits = metrics.counter("cache_hits_total", "Cache hits.", &[]);
//! let app = http::with_standard_routes(
//!     axum::Router::new(),
//!     &metrics,
//!     http::ready_check(|| async { Ok(()) }),
//! );
//! let shutdown = http::Shutdown::on_signals()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! http::serve(listener, app, shutdown, http::DEFAULT_DRAIN_TIMEOUT).await
//! # }
//! ```
//! Errors are [`Problem`]s (`application/problem+json`, `type` = `urn:ecomm:problem:<slug>`).

mod app;
mod health;
mod logging;
mod metrics;
mod problem;
mod request_id;
mod serve;
mod shutdown;

pub use app::{problem_fallbacks, with_standard_routes};
pub use health::{always_ready, health_routes, ready_check, ReadyCheck, ReadyFuture};
pub use logging::{init_tracing, LogFormat};
pub use metrics::{Counter, Gauge, Metrics, RouteStats, LATENCY_BUCKETS_SECONDS};
pub use problem::{Problem, PROBLEM_JSON, PROBLEM_TYPE_PREFIX};
pub use request_id::{
    new_request_id, request_id, request_id_from, RequestId, MAX_REQUEST_ID_LEN, REQUEST_ID,
};
pub use serve::{serve, DEFAULT_DRAIN_TIMEOUT};
pub use shutdown::Shutdown;
