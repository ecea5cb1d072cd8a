//! Serve an axum router with graceful drain: on shutdown stop accepting, finish in-flight
//! requests, close idle keep-alive connections, and give up after a deadline.

use std::future::IntoFuture;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use super::Shutdown;

/// How long in-flight requests may take to finish after shutdown starts (default 10 s).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` triggers, then drains for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    drain: Duration,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    let waiter = shutdown.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        waiter.wait().await;
    });
    let server = server.into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown.wait() => {}
    }
    match tokio::time::timeout(drain, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                ?drain,
                "drain deadline passed; closing remaining connections"
            );
            Ok(())
        }
    }
}
