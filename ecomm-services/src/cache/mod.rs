//! Redis cache-aside for read-heavy services: TTL with jitter, single-flight per key, negative
//! caching, delete-after-commit, and a short circuit breaker so a dead Redis costs reads
//! nothing but a fallback to the database.

mod aside;
mod breaker;
mod redis_store;
mod single_flight;
mod ttl;

pub use aside::{CacheAside, CacheSettings, CacheStatus, Cached};
pub use breaker::Breaker;
pub use redis_store::{RedisStore, StoreError};
pub use single_flight::SingleFlight;
pub use ttl::JitteredTtl;
