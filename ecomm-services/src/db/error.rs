//! Database failures, split into "unavailable" (retry later: 503) and everything else.

use crate::http::Problem;

/// A database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL could not be parsed or lacks a required part.
    #[error("invalid database URL {url:?}: {reason}")]
    Url {
        /// The URL with any password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection could be obtained in time, or the server went away.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The operation exceeded the per-operation deadline.
    #[error("database operation timed out after {0} ms")]
    Timeout(u128),
    /// Stored data breaks an invariant the code relies on.
    #[error("inconsistent data: {0}")]
    Inconsistent(String),
    /// PostgreSQL rejected the statement.
    #[error("database error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

impl DbError {
    /// True for failures a retry can cure (connection lost, pool exhausted, timeouts, shutdown).
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) | DbError::Timeout(_) => true,
            DbError::Url { .. } | DbError::Inconsistent(_) => false,
            DbError::Postgres(e) => {
                e.is_closed()
                    || e.code().is_none_or(|code| {
                        let code = code.code();
                        // 08: connection exception; 57: operator intervention (shutdown,
                        // statement timeout, cannot connect now); 53: insufficient resources.
                        code.starts_with("08") || code.starts_with("57") || code.starts_with("53")
                    })
            }
        }
    }

    /// The SQLSTATE code PostgreSQL returned, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            DbError::Postgres(e) => e.code().map(|c| c.code()),
            _ => None,
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(pg) => DbError::Postgres(pg),
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

impl From<DbError> for Problem {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            Problem::unavailable("the database is unavailable; retry later")
        } else {
            tracing::error!(error = %e, "database error");
            Problem::internal("unexpected database error")
        }
    }
}
