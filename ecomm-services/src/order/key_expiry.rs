//! Expiry of idempotency keys: a background task deletes keys older than the TTL, in bounded
//! batches, until shutdown. Every instance may run it; concurrent deletes are harmless.

use std::time::Duration;

use super::repo::OrderRepo;
use crate::http::{Counter, Shutdown};

/// Keys deleted per statement, so one sweep never holds a long transaction.
const BATCH: i64 = 1_000;

/// Runs sweeps every `interval` until `shutdown`, deleting keys older than `ttl`.
pub(super) async fn sweep_until_shutdown(
    repo: OrderRepo,
    ttl: Duration,
    interval: Duration,
    expired: Counter,
    shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
        loop {
            match repo.expire_idempotency_keys(ttl, BATCH).await {
                Ok(n) => {
                    expired.add(n);
                    if n > 0 {
                        tracing::info!(
                            expired = n,
                            ttl_secs = ttl.as_secs(),
                            "idempotency keys expired"
                        );
                    }
                    if n < BATCH.unsigned_abs() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "expiring idempotency keys failed; retrying next sweep");
                    break;
                }
            }
        }
    }
}
