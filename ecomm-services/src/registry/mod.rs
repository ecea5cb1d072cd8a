//! The service registry: TTL leases over HTTP (register, renew, deregister, resolve,
//! long-poll watch) and the same state over DNS (A/AAAA/SRV for `<service>.service.ecomm`).

mod api;
mod auth;
pub mod client;
mod dns;
mod error;
pub mod name;
mod state;
mod sweeper;
pub mod watch_client;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, UdpSocket};

pub use api::{parse_wait, routes, DEFAULT_WAIT, MAX_WAIT, REGISTRY_INDEX};
pub use dns::{serve_dns, DnsHandler, DNS_TTL_SECONDS, ZONE_SUFFIX};
pub use error::RegistryError;
pub use state::{Registered, Registry};
pub use sweeper::run_sweeper;

use crate::http::{self, Metrics, Shutdown};

/// Flags of `ecomm registry`.
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArgs {
    /// HTTP listen address (port 0 picks a free port; the bound address is logged).
    #[arg(long, env = "ECOMM_REGISTRY_LISTEN", default_value = "0.0.0.0:8500")]
    pub listen: SocketAddr,
    /// DNS (UDP) listen address.
    #[arg(
        long,
        env = "ECOMM_REGISTRY_DNS_LISTEN",
        default_value = "0.0.0.0:8600"
    )]
    pub dns_listen: SocketAddr,
    /// Bearer token every write (register, renew, deregister) must present.
    #[arg(long, env = "ECOMM_REGISTRY_TOKEN", hide_env_values = true)]
    pub token: String,
    /// How often expired leases are removed, in milliseconds (default 1000).
    #[arg(long, env = "ECOMM_REGISTRY_SWEEP_INTERVAL_MS", default_value_t = 1000)]
    pub sweep_interval_ms: u64,
    /// How long in-flight requests may finish after SIGTERM, in milliseconds (default 10000).
    #[arg(long, env = "ECOMM_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub drain_timeout_ms: u64,
}

/// Runs the registry until SIGTERM/SIGINT.
pub async fn run(args: RegistryArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.token.is_empty(),
        "--token / ECOMM_REGISTRY_TOKEN must not be empty"
    );
    let shutdown = Shutdown::on_signals().context("installing signal handlers")?;
    let metrics = Metrics::new("registry");
    let registry = Arc::new(Registry::new(&metrics));
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding HTTP {}", args.listen))?;
    let socket = UdpSocket::bind(args.dns_listen)
        .await
        .with_context(|| format!("binding DNS {}", args.dns_listen))?;
    tokio::spawn(run_sweeper(
        registry.clone(),
        Duration::from_millis(args.sweep_interval_ms.max(10)),
        shutdown.clone(),
    ));
    let dns = tokio::spawn(serve_dns(
        socket,
        DnsHandler::new(registry.clone(), &metrics),
        shutdown.clone(),
    ));
    let app = http::with_standard_routes(
        routes(registry, &args.token),
        &metrics,
        http::always_ready(),
    );
    http::serve(
        listener,
        app,
        shutdown,
        Duration::from_millis(args.drain_timeout_ms),
    )
    .await
    .context("serving HTTP")?;
    dns.await.context("DNS task")?.context("serving DNS")?;
    Ok(())
}
