//! `ecomm order`: orders in PostgreSQL with idempotent creation; prices from the product service.
//!
//! Start-up, given `--admin-database-url`, creates the `--database-url` role (LOGIN, with the
//! URL's password) and its database (owned by that role) when missing; then applies the
//! embedded migrations as that role. Without an admin URL the role must exist and be allowed
//! to create the database (or the database must exist).

mod idempotency;
mod key_expiry;
mod model;
mod placing;
mod products;
mod repo;
mod routes;

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use idempotency::{parse_key, request_hash, IDEMPOTENCY_KEY, IDEMPOTENT_REPLAY, MAX_KEY_LEN};
pub use model::{
    is_plausible_email, LineRequest, Order, OrderError, OrderItem, OrderPage, OrderRequest,
    OrderStatus, ValidOrder, MAX_ITEMS, MAX_QUANTITY,
};
pub use products::{ProductClient, Quote};
pub use repo::OrderRepo;
pub use routes::{routes, OrderState};

use crate::db::{prepare_database, redact_url, DbSettings, Migration};
use crate::http::{self, Metrics, Shutdown};
use crate::registry::client::{Registration, RegistrationArgs};
use crate::registry::watch_client::watch_service;

/// The order service's schema, embedded in the binary.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "orders",
        sql: include_str!("migrations/0001_orders.sql"),
    },
    Migration {
        version: 2,
        name: "idempotency key age",
        sql: include_str!("migrations/0002_idempotency_key_age.sql"),
    },
];

/// Product base URL used when neither `--product-url` nor `--registry-url` is given.
pub const DEFAULT_PRODUCT_URL: &str = "http://127.0.0.1:8001";

/// Flags of `ecomm order`.
#[derive(clap::Args, Debug, Clone)]
pub struct OrderArgs {
    /// HTTP listen address (port 0 picks a free port).
    #[arg(long, env = "ECOMM_ORDER_LISTEN", default_value = "0.0.0.0:8002")]
    pub listen: SocketAddr,
    /// The orders database and the role the service runs as.
    #[arg(
        long,
        env = "ECOMM_ORDER_DATABASE_URL",
        default_value = "postgres://ecomm_order:ecomm_order@127.0.0.1:5432/orders",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Superuser (or CREATEROLE + CREATEDB) URL used once at start to create the database URL's
    /// role and database when missing; unset: both must already exist (or the role may
    /// create its database).
    #[arg(long, env = "ECOMM_ORDER_ADMIN_DATABASE_URL", hide_env_values = true)]
    pub admin_database_url: Option<String>,
    /// Product service base URL(s), comma-separated (instances or the gateway). Unset: the
    /// live `product` instances from --registry-url, else http://127.0.0.1:8001.
    #[arg(long, env = "ECOMM_ORDER_PRODUCT_URL", value_delimiter = ',')]
    pub product_url: Vec<String>,
    /// Timeout of each product lookup, in milliseconds (default 2000).
    #[arg(long, env = "ECOMM_ORDER_PRODUCT_TIMEOUT_MS", default_value_t = 2000)]
    pub product_timeout_ms: u64,
    /// Maximum PostgreSQL connections in the pool (default 16).
    #[arg(long, env = "ECOMM_ORDER_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: usize,
    /// Longest wait for a database connection, in milliseconds (default 2000).
    #[arg(
        long,
        env = "ECOMM_ORDER_DB_CONNECT_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub db_connect_timeout_ms: u64,
    /// Statement timeout and per-operation deadline, in milliseconds (default 5000).
    #[arg(
        long,
        env = "ECOMM_ORDER_DB_STATEMENT_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub db_statement_timeout_ms: u64,
    /// How long start-up waits for PostgreSQL to come up, in seconds (default 60).
    #[arg(
        long,
        env = "ECOMM_ORDER_DB_STARTUP_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub db_startup_timeout_secs: u64,
    /// Largest accepted request body, in bytes (default 65536).
    #[arg(long, env = "ECOMM_ORDER_MAX_BODY_BYTES", default_value_t = 65_536)]
    pub max_body_bytes: usize,
    /// How long in-flight requests may finish after SIGTERM, in milliseconds (default 10000).
    #[arg(long, env = "ECOMM_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub drain_timeout_ms: u64,
    /// How long an Idempotency-Key is remembered, in seconds (default 86400 = 24 h); after
    /// that the same key places a new order. 0 keeps keys forever.
    #[arg(
        long,
        env = "ECOMM_ORDER_IDEMPOTENCY_KEY_TTL_SECS",
        default_value_t = 86_400
    )]
    pub idempotency_key_ttl_secs: u64,
    /// How often expired Idempotency-Keys are deleted, in seconds (default 300).
    #[arg(
        long,
        env = "ECOMM_ORDER_IDEMPOTENCY_SWEEP_SECS",
        default_value_t = 300
    )]
    pub idempotency_sweep_secs: u64,
    /// Registry self-registration (and product discovery when --product-url is unset).
    #[command(flatten)]
    pub registration: RegistrationArgs,
}

impl OrderArgs {
    /// Parses flags as if given on the command line after `ecomm order` (defaults and
    /// environment fallbacks apply) — for tests and embedding.
    pub fn from_flags<I, T>(flags: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        crate::flags::parse("order", flags)
    }

    fn db_settings(&self) -> DbSettings {
        DbSettings {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections.max(1),
            connect_timeout: Duration::from_millis(self.db_connect_timeout_ms.max(1)),
            statement_timeout: Duration::from_millis(self.db_statement_timeout_ms.max(1)),
        }
    }

    fn product_client(&self, shutdown: &Shutdown) -> anyhow::Result<ProductClient> {
        let timeout = Duration::from_millis(self.product_timeout_ms.max(1));
        let urls: Vec<String> = self
            .product_url
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if !urls.is_empty() {
            return Ok(ProductClient::fixed(urls, timeout)?);
        }
        let Some(registry) = self.registration.registry_url.clone() else {
            return Ok(ProductClient::fixed(
                vec![DEFAULT_PRODUCT_URL.to_owned()],
                timeout,
            )?);
        };
        let live = Arc::new(RwLock::new(Vec::new()));
        let writer = live.clone();
        tokio::spawn(watch_service(
            registry,
            "product".to_owned(),
            move |addrs| {
                tracing::info!(?addrs, "product instances changed");
                *writer.write().unwrap_or_else(PoisonError::into_inner) = addrs;
            },
            shutdown.clone(),
        ));
        Ok(ProductClient::watched(live, timeout)?)
    }
}

/// A started order service.
pub struct RunningOrder {
    /// The bound HTTP address.
    pub addr: SocketAddr,
    /// Completes after the server drained and the instance deregistered.
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Prepares the database, binds, and serves until `shutdown` triggers.
pub async fn start(args: OrderArgs, shutdown: Shutdown) -> anyhow::Result<RunningOrder> {
    let settings = args.db_settings();
    let pool = prepare_database(
        args.admin_database_url.as_deref(),
        &settings,
        MIGRATIONS,
        Duration::from_secs(args.db_startup_timeout_secs),
    )
    .await
    .with_context(|| format!("preparing database {}", redact_url(&args.database_url)))?;
    let repo = OrderRepo::new(pool, settings.statement_timeout);
    let products = args.product_client(&shutdown)?;
    let metrics = Metrics::new("order");
    let ready = {
        let repo = repo.clone();
        http::ready_check(move || {
            let repo = repo.clone();
            async move { repo.ping().await.map_err(|e| format!("postgres: {e}")) }
        })
    };
    if args.idempotency_key_ttl_secs > 0 {
        tokio::spawn(key_expiry::sweep_until_shutdown(
            repo.clone(),
            Duration::from_secs(args.idempotency_key_ttl_secs),
            Duration::from_secs(args.idempotency_sweep_secs.max(1)),
            metrics.counter(
                "idempotency_keys_expired_total",
                "Idempotency keys deleted after their TTL",
                &[],
            ),
            shutdown.clone(),
        ));
    }
    let state = Arc::new(OrderState { repo, products });
    let app = http::with_standard_routes(
        routes(state).layer(DefaultBodyLimit::max(args.max_body_bytes)),
        &metrics,
        ready,
    );
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let registration = Registration::from_args(&args.registration, "order", addr)?
        .map(|r| r.spawn(shutdown.clone()));
    let drain = Duration::from_millis(args.drain_timeout_ms);
    let task = tokio::spawn(async move {
        http::serve(listener, app, shutdown, drain)
            .await
            .context("serving HTTP")?;
        if let Some(registration) = registration {
            registration.await.context("registry heartbeat task")?;
        }
        Ok(())
    });
    Ok(RunningOrder { addr, task })
}

/// Runs the order service until SIGTERM/SIGINT.
pub async fn run(args: OrderArgs) -> anyhow::Result<()> {
    let shutdown = Shutdown::on_signals().context("installing signal handlers")?;
    let running = start(args, shutdown).await?;
    running.task.await.context("server task")?
}
