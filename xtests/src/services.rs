//! How each ecomm service is started in the lab: its `ecomm <service>` command line.
//!
//! Every address comes from the topology (the component's node), every secret from the lab's
//! state directory; flags, not environment, so `ps` and the logs show what ran.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::component::{Component, Kind};
use crate::process::Launch;

/// Names of the databases the services use.
pub const PRODUCT_DB: &str = "product";
/// The orders database (`just backup` dumps it).
pub const ORDER_DB: &str = "orders";

/// What the services need to know about the rest of the stack.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// The `ecomm` binary.
    pub ecomm: PathBuf,
    /// The registry's HTTP address.
    pub registry: SocketAddr,
    /// The registry's bearer token for writes.
    pub registry_token: String,
    /// PostgreSQL URL of the products database.
    pub product_db_url: String,
    /// PostgreSQL URL of the orders database.
    pub order_db_url: String,
    /// Redis URL.
    pub redis_url: String,
    /// Registry lease the services ask for, in seconds; `None` = the services' default (10).
    pub registry_ttl_seconds: Option<u64>,
}

impl Wiring {
    /// The `ecomm` command line of a service component (`None` for the data stores).
    pub fn launch(&self, c: &Component) -> Option<Launch> {
        let registry_url = format!("http://{}", self.registry);
        let base = Launch::new(&self.ecomm).env("RUST_LOG", "info");
        let launch = match c.kind {
            Kind::Postgres | Kind::Redis => return None,
            Kind::Registry => base
                .arg("registry")
                .arg("--listen")
                .arg(c.addr.to_string())
                .arg("--dns-listen")
                .arg(SocketAddr::new(c.addr.ip(), 8600).to_string())
                .arg("--token")
                .arg(&self.registry_token),
            Kind::Product => base
                .arg("product")
                .arg("--listen")
                .arg(c.addr.to_string())
                .arg("--instance-id")
                .arg(&c.name)
                .arg("--database-url")
                .arg(&self.product_db_url)
                .arg("--redis-url")
                .arg(&self.redis_url)
                .arg("--registry-url")
                .arg(&registry_url)
                .arg("--registry-token")
                .arg(&self.registry_token),
            Kind::Order => base
                .arg("order")
                .arg("--listen")
                .arg(c.addr.to_string())
                .arg("--instance-id")
                .arg(&c.name)
                .arg("--database-url")
                .arg(&self.order_db_url)
                .arg("--registry-url")
                .arg(&registry_url)
                .arg("--registry-token")
                .arg(&self.registry_token),
            Kind::Gateway => base
                .arg("gateway")
                .arg("--listen")
                .arg(c.addr.to_string())
                .arg("--registry-url")
                .arg(&registry_url)
                .arg("--registry-token")
                .arg(&self.registry_token)
                .arg("--instance-id")
                .arg(&c.name),
        };
        let launch = match (c.kind, self.registry_ttl_seconds) {
            (Kind::Product | Kind::Order | Kind::Gateway, Some(ttl)) => {
                launch.arg("--registry-ttl-seconds").arg(ttl.to_string())
            }
            _ => launch,
        };
        Some(launch)
    }
}
