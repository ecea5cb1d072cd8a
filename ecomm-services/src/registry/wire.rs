//! JSON bodies of the registry's HTTP API, shared by the server and its clients.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Default lease length when a registration names none (seconds).
pub const DEFAULT_TTL_SECONDS: u64 = 10;

/// Longest lease a registration may ask for (seconds).
pub const MAX_TTL_SECONDS: u64 = 3600;

/// `PUT /v1/services/{name}/instances/{id}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// IP address clients should connect to.
    pub address: IpAddr,
    /// TCP port clients should connect to.
    pub port: u16,
    /// Free-form tags (e.g. `v1`, `canary`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free-form key/value metadata.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// Lease length in seconds, 1..=3600 (default 10); renew before it ends.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: u64,
}

fn default_ttl() -> u64 {
    DEFAULT_TTL_SECONDS
}

/// One live instance as resolve returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    /// Instance id (unique within the service).
    pub id: String,
    /// IP address.
    pub address: IpAddr,
    /// TCP port.
    pub port: u16,
    /// Tags given at registration.
    pub tags: Vec<String>,
    /// Metadata given at registration.
    pub meta: BTreeMap<String, String>,
    /// Lease length in seconds.
    pub ttl_seconds: u64,
    /// Milliseconds until the lease ends unless renewed.
    pub expires_in_ms: u64,
}

/// `GET /v1/services/{name}` body: live instances and the index to watch from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// Service name.
    pub service: String,
    /// Index of the service's last change (pass it back as `?index=` to long-poll).
    pub index: u64,
    /// Live instances, sorted by id.
    pub instances: Vec<InstanceView>,
}

/// One row of `GET /v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// Service name.
    pub service: String,
    /// Number of live instances.
    pub instances: usize,
    /// Index of the service's last change.
    pub index: u64,
}

/// `GET /v1/services` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceList {
    /// Registry-wide index.
    pub index: u64,
    /// Every known service, sorted by name.
    pub services: Vec<ServiceSummary>,
}

/// Register/renew answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    /// Service name.
    pub service: String,
    /// Instance id.
    pub id: String,
    /// Lease length in seconds.
    pub ttl_seconds: u64,
    /// Index of the service after the write.
    pub index: u64,
}
