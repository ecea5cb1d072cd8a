//! A Redis connection with bounded waits and a breaker: every call returns quickly, whether
//! Redis answers, is down, or hangs.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands as _;

use super::Breaker;

/// Why a cache call did not produce a value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not a valid Redis URL.
    #[error("invalid Redis URL {url:?}: {reason}")]
    Url {
        /// The offending URL.
        url: String,
        /// What the parser said.
        reason: String,
    },
    /// A recent failure opened the breaker; the call was not attempted.
    #[error("redis skipped: breaker open after a recent failure")]
    Skipped,
    /// Redis did not answer within the operation timeout.
    #[error("redis timed out after {0} ms")]
    Timeout(u128),
    /// Redis answered with an error or the connection failed.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

/// A lazily connected, self-reconnecting Redis handle; cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    op_timeout: Duration,
    breaker: std::sync::Arc<Breaker>,
}

impl RedisStore {
    /// A handle for `url` (no connection is made until the first call). Each call waits at most
    /// `op_timeout`; after a failure, reads skip Redis for `cool_down`.
    pub fn new(url: &str, op_timeout: Duration, cool_down: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Url {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(Some(op_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(5))
            .set_max_delay(op_timeout);
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            conn,
            op_timeout,
            breaker: std::sync::Arc::new(Breaker::new(cool_down)),
        })
    }

    /// Whether a recent failure currently makes reads skip Redis.
    pub fn is_tripped(&self) -> bool {
        self.breaker.is_open()
    }

    async fn call<T, F>(&self, respect_breaker: bool, op: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if respect_breaker && self.breaker.is_open() {
            return Err(StoreError::Skipped);
        }
        let result = match tokio::time::timeout(self.op_timeout, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError::Redis(e)),
            Err(_) => Err(StoreError::Timeout(self.op_timeout.as_millis())),
        };
        match &result {
            Ok(_) => self.breaker.record_success(),
            Err(_) => self.breaker.record_failure(),
        }
        result
    }

    /// `GET key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        self.call(true, async move { conn.get(key).await }).await
    }

    /// `SET key value PX ttl_ms`.
    pub async fn set_px(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.call(true, async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl_ms)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }

    /// `DEL keys…`; attempted even while the breaker is open (invalidation must not be skipped).
    pub async fn del(&self, keys: &[String]) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.call(false, async move { conn.del::<_, ()>(keys).await })
            .await
    }

    /// `INCR key`; attempted even while the breaker is open.
    pub async fn incr(&self, key: &str) -> Result<i64, StoreError> {
        let mut conn = self.conn.clone();
        self.call(false, async move { conn.incr(key, 1).await })
            .await
    }

    /// `PING`, ignoring the breaker (for readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.call(false, async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await
        .map(|_| ())
    }
}
