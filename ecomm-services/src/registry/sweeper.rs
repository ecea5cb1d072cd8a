//! The expiry sweeper: removes ended leases every interval so watchers see them go.

use std::sync::Arc;
use std::time::Duration;

use super::Registry;
use crate::http::Shutdown;

/// Sweeps `registry` every `interval` until `shutdown`.
pub async fn run_sweeper(registry: Arc<Registry>, interval: Duration, shutdown: Shutdown) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let removed = registry.sweep();
                if removed > 0 {
                    tracing::info!(removed, "expired leases removed");
                }
            }
            () = shutdown.wait() => return,
        }
    }
}
