//! The API gateway: `/api/products*` → product, `/api/orders*` → order, over pooled
//! keep-alive connections with round-robin, active checks, passive ejection, safe retries
//! and timeouts.

mod chunked;
mod client_watch;
mod conn_pool;
mod discovery;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod headers;
mod health_check;
mod instance;
mod outlier;
mod pool;
mod proxy;
mod request_limits;
mod server;
mod upstream_conn;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use client_watch::Watchlist;
pub use conn_pool::{ConnPool, ConnPoolLimits};
pub use discovery::Discovery;
pub use error::GatewayError;
pub use headers::{append_forwarded_for, strip_hop_by_hop, X_FORWARDED_FOR};
pub use health_check::{run_health_checks, HealthCheck};
pub use instance::Instance;
pub use outlier::EjectionPolicy;
pub use pool::Pool;
pub use proxy::{GatewayBody, Proxy, ProxyLimits, Route, UpstreamClient, MAX_TRIES_LIMIT};
pub use request_limits::{
    HeadGuard, Rejections, RequestLimits, Violation, DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_HEADER_LINE_BYTES, DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_REQUEST_LINE_BYTES,
    MAX_HEADERS_LIMIT, MAX_HEAD_BYTES_LIMIT, MAX_REQUEST_LINE_LIMIT,
};
pub use server::{serve_proxy, serve_proxy_threads, ServeTimeouts};
pub use upstream_conn::{ExchangeError, Exchanged, UpstreamConn};

use crate::http::{Metrics, Shutdown};
use crate::registry::client::{Registration, RegistrationArgs};

/// Flags of `ecomm gateway`.
#[derive(clap::Args, Debug, Clone)]
pub struct GatewayArgs {
    /// Listen address.
    #[arg(long, env = "ECOMM_GATEWAY_LISTEN", default_value = "0.0.0.0:3000")]
    pub listen: SocketAddr,
    /// Static product instances, comma-separated (e.g. 172.21.0.21:8001,172.21.0.22:8001).
    #[arg(long, env = "ECOMM_PRODUCT_UPSTREAMS", value_delimiter = ',')]
    pub product_upstreams: Vec<SocketAddr>,
    /// DNS names of product instances, re-resolved periodically (e.g. tasks.product:8001).
    #[arg(long, env = "ECOMM_PRODUCT_DNS", value_delimiter = ',')]
    pub product_dns: Vec<String>,
    /// Registry service name of product (used with --registry-url when no static/DNS list).
    #[arg(long, env = "ECOMM_PRODUCT_SERVICE", default_value = "product")]
    pub product_service: String,
    /// Static order instances, comma-separated.
    #[arg(long, env = "ECOMM_ORDER_UPSTREAMS", value_delimiter = ',')]
    pub order_upstreams: Vec<SocketAddr>,
    /// DNS names of order instances (e.g. tasks.order:8002).
    #[arg(long, env = "ECOMM_ORDER_DNS", value_delimiter = ',')]
    pub order_dns: Vec<String>,
    /// Registry service name of order.
    #[arg(long, env = "ECOMM_ORDER_SERVICE", default_value = "order")]
    pub order_service: String,
    /// DNS re-resolution period in milliseconds (default 5000).
    #[arg(long, env = "ECOMM_GATEWAY_DNS_REFRESH_MS", default_value_t = 5000)]
    pub dns_refresh_ms: u64,
    /// Active health check period in milliseconds; 0 disables (default 2000).
    #[arg(long, env = "ECOMM_GATEWAY_HEALTH_INTERVAL_MS", default_value_t = 2000)]
    pub health_interval_ms: u64,
    /// Active health check timeout in milliseconds (default 1000).
    #[arg(long, env = "ECOMM_GATEWAY_HEALTH_TIMEOUT_MS", default_value_t = 1000)]
    pub health_timeout_ms: u64,
    /// Consecutive failed active checks before an instance leaves rotation (default 2).
    #[arg(long, env = "ECOMM_GATEWAY_UNHEALTHY_AFTER", default_value_t = 2)]
    pub unhealthy_after: u32,
    /// Path of the active health check (default /readyz).
    #[arg(long, env = "ECOMM_GATEWAY_HEALTH_PATH", default_value = "/readyz")]
    pub health_path: String,
    /// Consecutive failures before an instance is ejected (default 3).
    #[arg(long, env = "ECOMM_GATEWAY_EJECT_AFTER", default_value_t = 3)]
    pub eject_after: u32,
    /// First ejection length in milliseconds, doubling per consecutive ejection (default 5000).
    #[arg(long, env = "ECOMM_GATEWAY_EJECT_BASE_MS", default_value_t = 5000)]
    pub eject_base_ms: u64,
    /// Longest ejection in milliseconds (default 60000).
    #[arg(long, env = "ECOMM_GATEWAY_EJECT_MAX_MS", default_value_t = 60_000)]
    pub eject_max_ms: u64,
    /// Most instances of a pool ejected at once, in percent; one may always be (default 50).
    #[arg(long, env = "ECOMM_GATEWAY_MAX_EJECTED_PERCENT", default_value_t = 50)]
    pub max_ejected_percent: u8,
    /// Upstream TCP connect timeout in milliseconds (default 1000).
    #[arg(long, env = "ECOMM_GATEWAY_CONNECT_TIMEOUT_MS", default_value_t = 1000)]
    pub connect_timeout_ms: u64,
    /// Per-try timeout until response headers, in milliseconds (default 5000).
    #[arg(long, env = "ECOMM_GATEWAY_TRY_TIMEOUT_MS", default_value_t = 5000)]
    pub try_timeout_ms: u64,
    /// Total timeout across tries until response headers, in milliseconds (default 15000).
    #[arg(long, env = "ECOMM_GATEWAY_TOTAL_TIMEOUT_MS", default_value_t = 15_000)]
    pub total_timeout_ms: u64,
    /// Tries per request including the first, 1..=8 (default 3).
    #[arg(long, env = "ECOMM_GATEWAY_MAX_TRIES", default_value_t = 3)]
    pub max_tries: usize,
    /// Largest request body in bytes; larger gets 413 (default 1048576).
    #[arg(long, env = "ECOMM_GATEWAY_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Largest request head in bytes: request line, header lines, their line ends and the
    /// blank line; larger gets 431, 1024..=262144 (default 61440 = 60 KiB, Envoy's).
    #[arg(long, env = "ECOMM_GATEWAY_MAX_HEAD_BYTES", default_value_t = DEFAULT_MAX_HEAD_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1024..=MAX_HEAD_BYTES_LIMIT as u64))]
    pub max_head_bytes: u64,
    /// Longest request line (method, target, version) in bytes; longer gets 414,
    /// 16..=61440 (default 8192 = 8 KiB, nginx's).
    #[arg(long, env = "ECOMM_GATEWAY_MAX_REQUEST_LINE_BYTES", default_value_t = DEFAULT_MAX_REQUEST_LINE_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(16..=MAX_REQUEST_LINE_LIMIT as u64))]
    pub max_request_line_bytes: u64,
    /// Longest request header line (name, colon, value) in bytes; longer gets 431,
    /// 16..=262144 (default 8192 = 8 KiB, nginx's).
    #[arg(long, env = "ECOMM_GATEWAY_MAX_HEADER_LINE_BYTES", default_value_t = DEFAULT_MAX_HEADER_LINE_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(16..=MAX_HEAD_BYTES_LIMIT as u64))]
    pub max_header_line_bytes: u64,
    /// Most request header lines (a count); more gets 431, 1..=100 (default 96: with the
    /// X-Forwarded-For, X-Request-Id and Content-Length the gateway adds, a forwarded head
    /// stays within the 100 lines the services parse).
    #[arg(long, env = "ECOMM_GATEWAY_MAX_HEADERS", default_value_t = DEFAULT_MAX_HEADERS as u64,
          value_parser = clap::value_parser!(u64).range(1..=MAX_HEADERS_LIMIT as u64))]
    pub max_headers: u64,
    /// Largest upstream response body in bytes, buffered whole before answering; larger
    /// gets 502 (default 16777216).
    #[arg(long, env = "ECOMM_GATEWAY_MAX_RESPONSE_BYTES", default_value_t = 16 << 20)]
    pub max_response_bytes: usize,
    /// Idle upstream connections kept per instance (default 512).
    #[arg(long, env = "ECOMM_GATEWAY_POOL_MAX_IDLE", default_value_t = 512)]
    pub pool_max_idle: usize,
    /// How long an idle upstream connection is kept, in milliseconds (default 90000).
    #[arg(
        long,
        env = "ECOMM_GATEWAY_POOL_IDLE_TIMEOUT_MS",
        default_value_t = 90_000
    )]
    pub pool_idle_timeout_ms: u64,
    /// Proxy threads, each with its own single-threaded runtime and upstream pool
    /// (default: one per CPU).
    #[arg(long, env = "ECOMM_GATEWAY_THREADS")]
    pub threads: Option<usize>,
    /// How long in-flight requests may finish after SIGTERM, in milliseconds (default 10000).
    #[arg(long, env = "ECOMM_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub drain_timeout_ms: u64,
    /// Close a client connection that has not sent a complete request head for this many
    /// seconds (slowloris, or idle keep-alive between requests), or whose response made no
    /// write progress for as long (default 30).
    #[arg(long, env = "ECOMM_GATEWAY_CLIENT_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub client_timeout_secs: u64,
    /// Registry settings: the gateway registers itself as `gateway` and, when given, watches
    /// product/order there unless static or DNS upstreams are set.
    #[command(flatten)]
    pub registration: RegistrationArgs,
}

impl GatewayArgs {
    /// The discovery backend of `upstream` chosen by precedence: static, DNS, registry.
    fn discovery(
        &self,
        upstream: &'static str,
        statics: &[SocketAddr],
        dns: &[String],
        service: &str,
    ) -> Result<Discovery, GatewayError> {
        if !statics.is_empty() {
            return Ok(Discovery::Static(statics.to_vec()));
        }
        if !dns.is_empty() {
            for name in dns {
                let valid_port = name
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !valid_port {
                    return Err(GatewayError::InvalidDnsName {
                        upstream,
                        name: name.clone(),
                    });
                }
            }
            return Ok(Discovery::Dns {
                names: dns.to_vec(),
                refresh: Duration::from_millis(self.dns_refresh_ms.max(100)),
            });
        }
        match &self.registration.registry_url {
            Some(url) => Ok(Discovery::Registry {
                url: url.clone(),
                service: service.to_owned(),
            }),
            None => Err(GatewayError::NoDiscovery { upstream }),
        }
    }
}

/// Builds the pooled keep-alive client of the active health checks.
pub fn upstream_client(
    connect_timeout: Duration,
    pool_max_idle: usize,
    pool_idle_timeout: Duration,
) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(pool_idle_timeout)
        .pool_max_idle_per_host(pool_max_idle)
        .build::<_, Full<Bytes>>(connector)
}

/// Runs the gateway until SIGTERM/SIGINT.
pub async fn run(args: GatewayArgs) -> anyhow::Result<()> {
    if args.max_tries == 0 || args.max_tries > MAX_TRIES_LIMIT {
        return Err(GatewayError::InvalidMaxTries(args.max_tries).into());
    }
    if args.max_ejected_percent > 100 {
        return Err(GatewayError::InvalidPercent(args.max_ejected_percent).into());
    }
    let product = args.discovery(
        "product",
        &args.product_upstreams,
        &args.product_dns,
        &args.product_service,
    )?;
    let order = args.discovery(
        "order",
        &args.order_upstreams,
        &args.order_dns,
        &args.order_service,
    )?;
    let shutdown = Shutdown::on_signals().context("installing signal handlers")?;
    let metrics = Metrics::new("gateway");
    let policy = EjectionPolicy {
        consecutive_failures: args.eject_after.max(1),
        base: Duration::from_millis(args.eject_base_ms),
        max: Duration::from_millis(args.eject_max_ms.max(args.eject_base_ms)),
        max_ejected_percent: args.max_ejected_percent,
    };
    let connect_timeout = Duration::from_millis(args.connect_timeout_ms);
    let pool_idle_timeout = Duration::from_millis(args.pool_idle_timeout_ms);
    let pool_max_idle = args.pool_max_idle;
    let client = upstream_client(connect_timeout, pool_max_idle, pool_idle_timeout);
    let conn_limits = ConnPoolLimits {
        connect_timeout,
        max_idle: pool_max_idle,
        idle_timeout: pool_idle_timeout,
    };
    let opened = metrics.counter(
        "gateway_upstream_connections_total",
        "Upstream connections opened by the proxy threads (pooled, kept alive).",
        &[],
    );
    let make_pool = move || ConnPool::new(conn_limits, opened.clone());
    let check = HealthCheck {
        path: args.health_path.clone(),
        interval: Duration::from_millis(args.health_interval_ms),
        timeout: Duration::from_millis(args.health_timeout_ms),
        unhealthy_after: args.unhealthy_after,
    };
    let mut routes = Vec::new();
    for (prefix, name, discovery) in [
        ("/api/products", "product", product),
        ("/api/orders", "order", order),
    ] {
        let pool = Arc::new(Pool::new(name, policy, &metrics));
        discovery.start(pool.clone(), shutdown.clone()).await;
        tokio::spawn(run_health_checks(
            pool.clone(),
            client.clone(),
            check.clone(),
            shutdown.clone(),
        ));
        routes.push(Route::new(prefix, pool, &metrics));
    }
    let limits = ProxyLimits {
        per_try: Duration::from_millis(args.try_timeout_ms),
        total: Duration::from_millis(args.total_timeout_ms),
        max_tries: args.max_tries,
        max_body_bytes: args.max_body_bytes,
        max_response_bytes: args.max_response_bytes,
        // In range: clap checked each against its *_LIMIT, all far below usize::MAX.
        request: RequestLimits {
            max_head_bytes: args.max_head_bytes as usize,
            max_request_line_bytes: args.max_request_line_bytes as usize,
            max_header_line_bytes: args.max_header_line_bytes as usize,
            max_headers: args.max_headers as usize,
        },
    };
    let proxy = Proxy::new(routes, make_pool(), limits, metrics);
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "listening");
    let registration = Registration::from_args(&args.registration, "gateway", bound)?
        .map(|registration| registration.spawn(shutdown.clone()));
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    serve_proxy_threads(
        listener,
        proxy,
        make_pool,
        threads,
        shutdown,
        ServeTimeouts {
            drain: Duration::from_millis(args.drain_timeout_ms),
            client: Duration::from_secs(args.client_timeout_secs),
        },
    )
    .await
    .context("serving")?;
    if let Some(registration) = registration {
        let _ = registration.await;
    }
    Ok(())
}
