//! The database tier: PostgreSQL and Redis started inside their namespaces, state under the
//! lab's directory.

mod postgres;
mod redis;

pub use postgres::{bin as pg_bin, random_hex, Postgres};
pub use redis::Redis;
