//! The cache-aside read path (look in Redis, else load from the database and fill) and the
//! invalidation used after a committed write.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{JitteredTtl, RedisStore, SingleFlight, StoreError};
use crate::http::{Counter, Metrics};

/// Tunables of a [`CacheAside`].
#[derive(Clone, Copy, Debug)]
pub struct CacheSettings {
    /// Lifetime of a cached value (default 60 s + up to 10 % jitter).
    pub ttl: JitteredTtl,
    /// Lifetime of a cached "does not exist" (default 5 s + up to 1 s jitter).
    pub negative_ttl: JitteredTtl,
    /// Longest wait for any single Redis call (default 50 ms).
    pub op_timeout: Duration,
    /// After a Redis failure, reads skip Redis for this long (default 1 s).
    pub cool_down: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            ttl: JitteredTtl {
                base: Duration::from_secs(60),
                jitter: Duration::from_secs(6),
            },
            negative_ttl: JitteredTtl {
                base: Duration::from_secs(5),
                jitter: Duration::from_secs(1),
            },
            op_timeout: Duration::from_millis(50),
            cool_down: Duration::from_secs(1),
        }
    }
}

/// A value as the source of truth reported it: found (its serialised bytes) or absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cached {
    /// The serialised value.
    Found(Bytes),
    /// The source has no such value (cached briefly: negative caching).
    Absent,
}

/// Where a read was served from; becomes the `X-Cache` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// From Redis.
    Hit,
    /// From the database (Redis missed, was skipped, or is down).
    Miss,
}

impl CacheStatus {
    /// `hit` or `miss`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
        }
    }
}

/// Tag byte prefixed to a found value in Redis.
const FOUND: u8 = b'+';
/// The whole Redis value of a negative entry.
const ABSENT: &[u8] = b"-";

/// Cache-aside over an optional Redis (no Redis URL = every read is a miss).
pub struct CacheAside<E: Clone> {
    store: Option<RedisStore>,
    settings: CacheSettings,
    flights: Arc<SingleFlight<Result<Cached, E>>>,
    hits: Counter,
    misses: Counter,
    errors: Counter,
}

impl<E: Clone + Send + Sync + 'static> CacheAside<E> {
    /// A cache over `store`, counting `cache_hits_total`, `cache_misses_total` and
    /// `cache_errors_total` in `metrics`.
    pub fn new(store: Option<RedisStore>, settings: CacheSettings, metrics: &Metrics) -> Self {
        Self {
            store,
            settings,
            flights: SingleFlight::new(),
            hits: metrics.counter("cache_hits_total", "Reads served from Redis.", &[]),
            misses: metrics.counter("cache_misses_total", "Reads served from the database.", &[]),
            errors: metrics.counter(
                "cache_errors_total",
                "Redis calls that failed, timed out or were skipped by the breaker.",
                &[],
            ),
        }
    }

    /// The Redis handle, if configured.
    pub fn store(&self) -> Option<&RedisStore> {
        self.store.as_ref()
    }

    /// Returns the value for `key` from Redis, or runs `load` (once per key across concurrent
    /// callers), caches its result (negative results briefly) and returns it. Redis failures
    /// never fail the read; `load`'s errors are returned and not cached.
    pub async fn read<F>(&self, key: &str, load: F) -> Result<(Cached, CacheStatus), E>
    where
        F: Future<Output = Result<Cached, E>> + Send + 'static,
    {
        if let Some(store) = &self.store {
            match store.get(key).await {
                Ok(Some(raw)) => {
                    if let Some(value) = decode(raw) {
                        self.hits.inc();
                        return Ok((value, CacheStatus::Hit));
                    }
                }
                Ok(None) => {}
                Err(e) => self.note_error("get", &e),
            }
        }
        self.misses.inc();
        let store = self.store.clone();
        let settings = self.settings;
        let errors = self.errors.clone();
        let owned_key = key.to_owned();
        let (result, _joined) = self
            .flights
            .run(key, async move {
                let value = load.await?;
                if let Some(store) = store {
                    let (raw, ttl) = match &value {
                        Cached::Found(bytes) => {
                            let mut raw = Vec::with_capacity(bytes.len() + 1);
                            raw.push(FOUND);
                            raw.extend_from_slice(bytes);
                            (raw, settings.ttl.pick_millis())
                        }
                        Cached::Absent => (ABSENT.to_vec(), settings.negative_ttl.pick_millis()),
                    };
                    if let Err(e) = store.set_px(&owned_key, &raw, ttl).await {
                        errors.inc();
                        tracing::debug!(key = %owned_key, error = %e, "cache fill skipped");
                    }
                }
                Ok(value)
            })
            .await;
        result.map(|value| (value, CacheStatus::Miss))
    }

    /// Deletes `keys` (call after the write committed). A failure is logged and counted; the
    /// entries then expire with their TTL.
    pub async fn invalidate(&self, keys: &[String]) {
        if let Some(store) = &self.store {
            if let Err(e) = store.del(keys).await {
                self.note_error("del", &e);
            }
        }
    }

    /// Increments a generation counter (e.g. of list pages) and returns the new value; `None`
    /// when Redis is absent or failing.
    pub async fn bump(&self, key: &str) -> Option<i64> {
        let store = self.store.as_ref()?;
        match store.incr(key).await {
            Ok(value) => Some(value),
            Err(e) => {
                self.note_error("incr", &e);
                None
            }
        }
    }

    /// Reads a generation counter (0 when unset); `None` when Redis is absent or failing.
    pub async fn generation(&self, key: &str) -> Option<i64> {
        let store = self.store.as_ref()?;
        match store.get(key).await {
            Ok(Some(raw)) => std::str::from_utf8(&raw).ok()?.parse().ok(),
            Ok(None) => Some(0),
            Err(e) => {
                self.note_error("get", &e);
                None
            }
        }
    }

    /// Counts a miss for a read that bypassed the cache entirely.
    pub fn count_bypass(&self) {
        self.misses.inc();
    }

    fn note_error(&self, op: &'static str, e: &StoreError) {
        self.errors.inc();
        if !matches!(e, StoreError::Skipped) {
            tracing::warn!(op, error = %e, "redis unavailable; serving from the database");
        }
    }
}

fn decode(raw: Vec<u8>) -> Option<Cached> {
    match raw.split_first() {
        Some((&FOUND, rest)) => Some(Cached::Found(Bytes::copy_from_slice(rest))),
        _ if raw == ABSENT => Some(Cached::Absent),
        _ => None,
    }
}
