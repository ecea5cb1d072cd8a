//! Active health checks: GET `<path>` on every instance each interval; non-2xx or no answer
//! within the timeout, `unhealthy_after` times in a row, takes the instance out of rotation
//! until a check passes again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use super::pool::Pool;
use crate::http::Shutdown;

/// Active check settings.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// Path checked (default `/readyz`).
    pub path: String,
    /// Period between rounds (default 2 s); zero disables checks.
    pub interval: Duration,
    /// Per-check timeout (default 1 s).
    pub timeout: Duration,
    /// Consecutive failed checks before an instance leaves rotation (default 2).
    pub unhealthy_after: u32,
}

/// Runs checks on `pool` until `shutdown`.
pub async fn run_health_checks(
    pool: Arc<Pool>,
    client: Client<HttpConnector, Full<Bytes>>,
    check: HealthCheck,
    shutdown: Shutdown,
) {
    if check.interval.is_zero() {
        return;
    }
    let mut ticker = tokio::time::interval(check.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.wait() => return,
        }
        let instances = pool.instances();
        let rounds = instances.iter().map(|instance| {
            let client = client.clone();
            let check = check.clone();
            let instance = instance.clone();
            async move {
                let healthy = probe(&client, &instance.authority, &check).await;
                if instance.record_check(healthy, check.unhealthy_after) {
                    if healthy {
                        tracing::info!(instance = %instance.addr, "health check passes again");
                    } else {
                        tracing::warn!(instance = %instance.addr, "health check failed; instance out of rotation");
                    }
                }
            }
        });
        futures_util::future::join_all(rounds).await;
    }
}

async fn probe(
    client: &Client<HttpConnector, Full<Bytes>>,
    authority: &http::uri::Authority,
    check: &HealthCheck,
) -> bool {
    let uri = match http::Uri::builder()
        .scheme("http")
        .authority(authority.clone())
        .path_and_query(check.path.as_str())
        .build()
    {
        Ok(uri) => uri,
        Err(_) => return false,
    };
    let request = match http::Request::get(uri).body(Full::new(Bytes::new())) {
        Ok(request) => request,
        Err(_) => return false,
    };
    match tokio::time::timeout(check.timeout, client.request(request)).await {
        Ok(Ok(response)) => response.status().is_success(),
        _ => false,
    }
}
