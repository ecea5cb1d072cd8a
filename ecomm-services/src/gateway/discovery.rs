//! Where a pool's instances come from: a static list, DNS names re-resolved periodically
//! (Docker's `tasks.<service>`), or a registry watch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::pool::Pool;
use crate::http::Shutdown;
use crate::registry::watch_client::watch_service;

/// One pool's discovery backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// Fixed addresses.
    Static(Vec<SocketAddr>),
    /// `host:port` names resolved every `refresh`; every A/AAAA record is an instance.
    Dns {
        /// Names like `tasks.product:8001`.
        names: Vec<String>,
        /// Re-resolution period.
        refresh: Duration,
    },
    /// A registry long-poll watch of `service` at `url`.
    Registry {
        /// Registry base URL.
        url: String,
        /// Registered service name.
        service: String,
    },
}

impl Discovery {
    /// Fills `pool` now (static) and keeps it current until `shutdown` (DNS, registry).
    pub async fn start(self, pool: Arc<Pool>, shutdown: Shutdown) {
        match self {
            Discovery::Static(addrs) => pool.set_addresses(addrs),
            Discovery::Dns { names, refresh } => {
                resolve_all(&pool, &names).await;
                tokio::spawn(async move {
                    let mut ticker = tokio::time::interval(refresh);
                    ticker.tick().await;
                    loop {
                        tokio::select! {
                            _ = ticker.tick() => resolve_all(&pool, &names).await,
                            () = shutdown.wait() => return,
                        }
                    }
                });
            }
            Discovery::Registry { url, service } => {
                let target = pool.clone();
                tokio::spawn(watch_service(
                    url,
                    service,
                    move |addrs| target.set_addresses(addrs),
                    shutdown,
                ));
            }
        }
    }
}

/// Resolves every name; on failure of all of them the cached set stays.
async fn resolve_all(pool: &Pool, names: &[String]) {
    let mut addrs = Vec::new();
    let mut any_ok = false;
    for name in names {
        match tokio::net::lookup_host(name.as_str()).await {
            Ok(found) => {
                any_ok = true;
                addrs.extend(found);
            }
            Err(error) => {
                tracing::warn!(upstream = %pool.name, %name, %error, "DNS resolution failed");
            }
        }
    }
    if any_ok {
        pool.set_addresses(addrs);
    }
}
