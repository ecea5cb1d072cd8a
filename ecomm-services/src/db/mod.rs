//! PostgreSQL plumbing shared by the product and order services: a bounded connection pool,
//! database/role provisioning on start, and an embedded-migration runner.

mod error;
mod migrate;
mod pool;
mod provision;

pub use error::DbError;
pub use migrate::{migrate, Migration};
pub use pool::{connect_pool, with_timeout, DbSettings};
pub use provision::{ensure_database, redact_url};
