//! Single-flight: concurrent loads of one key share a single execution.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use futures_util::future::{BoxFuture, FutureExt, Shared};

/// Deduplicates concurrent work per key: the first caller runs the load, callers arriving
/// while it runs await the same result. The load keeps running if its first caller goes away
/// while others still wait.
pub struct SingleFlight<V: Clone> {
    inflight: Mutex<HashMap<String, Shared<BoxFuture<'static, V>>>>,
}

impl<V: Clone + Send + Sync + 'static> SingleFlight<V> {
    /// An empty group.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inflight: Mutex::new(HashMap::new()),
        })
    }

    /// Runs `load` for `key` unless a load for `key` is already in flight, in which case its
    /// result is shared. Returns the value and whether it came from another caller's load.
    pub async fn run<F>(self: &Arc<Self>, key: &str, load: F) -> (V, bool)
    where
        F: Future<Output = V> + Send + 'static,
    {
        let (flight, joined) = {
            let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
            match inflight.get(key) {
                Some(flight) => (flight.clone(), true),
                None => {
                    let group: Weak<Self> = Arc::downgrade(self);
                    let owned_key = key.to_owned();
                    let flight = async move {
                        let value = load.await;
                        if let Some(group) = group.upgrade() {
                            group
                                .inflight
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .remove(&owned_key);
                        }
                        value
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key.to_owned(), flight.clone());
                    (flight, false)
                }
            }
        };
        (flight.await, joined)
    }

    /// How many keys have a load in flight (for tests and metrics).
    pub fn in_flight(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_load() {
        let group = SingleFlight::<u32>::new();
        let loads = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let group = group.clone();
            let loads = loads.clone();
            let mut gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                group
                    .run("product:1", async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|open| *open).await;
                        7
                    })
                    .await
            }));
        }
        while group.in_flight() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        release.send_replace(true);
        let mut joined = 0;
        for task in tasks {
            let (value, shared) = task.await.unwrap();
            assert_eq!(value, 7);
            joined += usize::from(shared);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "exactly one load ran");
        assert_eq!(joined, 9);
        assert_eq!(group.in_flight(), 0, "finished flights are forgotten");
    }

    #[tokio::test]
    async fn later_calls_load_again() {
        let group = SingleFlight::<u32>::new();
        assert_eq!(group.run("k", async { 1 }).await, (1, false));
        assert_eq!(group.run("k", async { 2 }).await, (2, false));
    }
}
