//! A deadpool-postgres pool whose every wait is bounded: connect, pool wait, statement.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

use super::provision::redact_url;
use super::DbError;

/// Connection settings for one service's database.
#[derive(Clone, Debug)]
pub struct DbSettings {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Maximum pooled connections (default 16).
    pub max_connections: usize,
    /// Longest wait for a free or new connection, and TCP connect timeout (default 2 s).
    pub connect_timeout: Duration,
    /// Server-side `statement_timeout` and client-side per-operation deadline (default 5 s).
    pub statement_timeout: Duration,
}

impl DbSettings {
    /// Settings with the defaults above for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
        }
    }

    /// The parsed tokio-postgres config with connect and statement timeouts applied.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, DbError> {
        let mut config = tokio_postgres::Config::from_str(&self.url).map_err(|e| DbError::Url {
            url: redact_url(&self.url),
            reason: e.to_string(),
        })?;
        config.connect_timeout(self.connect_timeout);
        config.options(format!(
            "-c statement_timeout={}",
            self.statement_timeout.as_millis()
        ));
        if config.get_application_name().is_none() {
            config.application_name("ecomm");
        }
        Ok(config)
    }
}

/// Builds the pool (no connection is opened until first use).
pub fn connect_pool(settings: &DbSettings) -> Result<Pool, DbError> {
    let manager = Manager::from_config(
        settings.pg_config()?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(settings.max_connections)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(settings.connect_timeout),
            create: Some(settings.connect_timeout),
            recycle: Some(settings.connect_timeout),
        })
        .build()
        .map_err(|e| DbError::Url {
            url: redact_url(&settings.url),
            reason: e.to_string(),
        })
}

/// Runs `op` with a client-side deadline, so a hung server (not just a dead one) gives a
/// prompt [`DbError::Timeout`] instead of a hang.
pub async fn with_timeout<T, F>(deadline: Duration, op: F) -> Result<T, DbError>
where
    F: Future<Output = Result<T, DbError>>,
{
    match tokio::time::timeout(deadline, op).await {
        Ok(result) => result,
        Err(_) => Err(DbError::Timeout(deadline.as_millis())),
    }
}
