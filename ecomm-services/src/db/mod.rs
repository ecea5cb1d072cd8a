//! PostgreSQL plumbing shared by the product and order services: a bounded connection pool,
//! database/role provisioning on start, and an embedded-migration runner.

mod error;
mod migrate;
mod pool;
mod prepare;
mod provision;
pub mod timestamp;

pub use error::DbError;
pub use migrate::{migrate, Migration};
pub use pool::{connect_pool, with_timeout, DbSettings};
pub use prepare::prepare_database;
pub use provision::{ensure_database, redact_url};
