//! `ecomm product`: the catalogue over PostgreSQL with a Redis cache-aside.
//!
//! Start-up creates the database if missing (`--admin-database-url` to also create the role),
//! applies the embedded migrations, and seeds the sample catalogue into an empty table.

mod catalogue;
mod model;
mod repo;
mod routes;
mod seed;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use catalogue::{page_key, product_key, Catalogue, LIST_GENERATION_KEY};
pub use model::{Product, ProductError, ProductInput, ProductPage, ValidProduct};
pub use repo::ProductRepo;
pub use routes::{parse_id, routes, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, X_CACHE};
pub use seed::sample_catalogue;

use crate::cache::{CacheAside, CacheSettings, JitteredTtl, RedisStore};
use crate::db::{prepare_database, redact_url, DbSettings, Migration};
use crate::http::{self, Metrics, Shutdown};
use crate::registry::client::{Registration, RegistrationArgs};

/// The product service's schema, embedded in the binary.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "products",
    sql: include_str!("migrations/0001_products.sql"),
}];

/// Flags of `ecomm product`.
#[derive(clap::Args, Debug, Clone)]
pub struct ProductArgs {
    /// HTTP listen address (port 0 picks a free port).
    #[arg(long, env = "ECOMM_PRODUCT_LISTEN", default_value = "0.0.0.0:8001")]
    pub listen: SocketAddr,
    /// The catalogue database; created if missing (the user needs CREATEDB unless
    /// --admin-database-url is given).
    #[arg(
        long,
        env = "ECOMM_PRODUCT_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/product",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Optional superuser URL used once at start to create the database URL's role (LOGIN, with
    /// the URL's password) and database (owned by that role) when missing.
    #[arg(long, env = "ECOMM_PRODUCT_ADMIN_DATABASE_URL", hide_env_values = true)]
    pub admin_database_url: Option<String>,
    /// Redis for the cache-aside; an empty value disables caching (every read is a miss).
    #[arg(
        long,
        env = "ECOMM_PRODUCT_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,
    /// Cache lifetime of a product or list page, in seconds (default 60).
    #[arg(long, env = "ECOMM_PRODUCT_CACHE_TTL_SECS", default_value_t = 60)]
    pub cache_ttl_secs: u64,
    /// Random extra lifetime added per entry, in percent of the TTL (default 10).
    #[arg(long, env = "ECOMM_PRODUCT_CACHE_JITTER_PERCENT", default_value_t = 10)]
    pub cache_jitter_percent: u64,
    /// Cache lifetime of a "not found", in seconds (default 5).
    #[arg(long, env = "ECOMM_PRODUCT_NEGATIVE_TTL_SECS", default_value_t = 5)]
    pub negative_ttl_secs: u64,
    /// Longest wait for any Redis call, in milliseconds (default 50).
    #[arg(long, env = "ECOMM_PRODUCT_REDIS_TIMEOUT_MS", default_value_t = 50)]
    pub redis_timeout_ms: u64,
    /// After a Redis failure, reads skip Redis for this long, in milliseconds (default 1000).
    #[arg(long, env = "ECOMM_PRODUCT_REDIS_COOL_DOWN_MS", default_value_t = 1000)]
    pub redis_cool_down_ms: u64,
    /// Maximum PostgreSQL connections in the pool (default 16).
    #[arg(long, env = "ECOMM_PRODUCT_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: usize,
    /// Longest wait for a database connection, in milliseconds (default 2000).
    #[arg(
        long,
        env = "ECOMM_PRODUCT_DB_CONNECT_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub db_connect_timeout_ms: u64,
    /// Statement timeout and per-operation deadline, in milliseconds (default 5000).
    #[arg(
        long,
        env = "ECOMM_PRODUCT_DB_STATEMENT_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub db_statement_timeout_ms: u64,
    /// How long start-up waits for PostgreSQL to come up, in seconds (default 60).
    #[arg(
        long,
        env = "ECOMM_PRODUCT_DB_STARTUP_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub db_startup_timeout_secs: u64,
    /// Seed the sample catalogue (40 products) into an empty database (default true).
    #[arg(long, env = "ECOMM_PRODUCT_SEED", default_value_t = true, action = clap::ArgAction::Set)]
    pub seed: bool,
    /// Largest accepted request body, in bytes (default 65536).
    #[arg(long, env = "ECOMM_PRODUCT_MAX_BODY_BYTES", default_value_t = 65_536)]
    pub max_body_bytes: usize,
    /// How long in-flight requests may finish after SIGTERM, in milliseconds (default 10000).
    #[arg(long, env = "ECOMM_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub drain_timeout_ms: u64,
    /// Registry self-registration.
    #[command(flatten)]
    pub registration: RegistrationArgs,
}

impl ProductArgs {
    /// Parses flags as if given on the command line after `ecomm product` (defaults and
    /// environment fallbacks apply) — for tests and embedding.
    pub fn from_flags<I, T>(flags: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        crate::flags::parse("product", flags)
    }

    fn db_settings(&self) -> DbSettings {
        DbSettings {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections.max(1),
            connect_timeout: Duration::from_millis(self.db_connect_timeout_ms.max(1)),
            statement_timeout: Duration::from_millis(self.db_statement_timeout_ms.max(1)),
        }
    }

    fn cache_settings(&self) -> CacheSettings {
        let ttl = Duration::from_secs(self.cache_ttl_secs.max(1));
        let negative = Duration::from_secs(self.negative_ttl_secs.max(1));
        let percent = u32::try_from(self.cache_jitter_percent.min(100)).unwrap_or(100);
        CacheSettings {
            ttl: JitteredTtl {
                base: ttl,
                jitter: ttl * percent / 100,
            },
            negative_ttl: JitteredTtl {
                base: negative,
                jitter: negative * percent / 100,
            },
            op_timeout: Duration::from_millis(self.redis_timeout_ms.max(1)),
            cool_down: Duration::from_millis(self.redis_cool_down_ms),
        }
    }
}

/// A started product service.
pub struct RunningProduct {
    /// The bound HTTP address.
    pub addr: SocketAddr,
    /// The catalogue (for tests: direct repository access).
    pub catalogue: Arc<Catalogue>,
    /// Completes after the server drained and the instance deregistered.
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Prepares the database, binds, and serves until `shutdown` triggers.
pub async fn start(args: ProductArgs, shutdown: Shutdown) -> anyhow::Result<RunningProduct> {
    let settings = args.db_settings();
    let pool = prepare_database(
        args.admin_database_url.as_deref(),
        &settings,
        MIGRATIONS,
        Duration::from_secs(args.db_startup_timeout_secs),
    )
    .await
    .with_context(|| format!("preparing database {}", redact_url(&args.database_url)))?;
    let repo = ProductRepo::new(pool, settings.statement_timeout);
    if args.seed {
        let inserted = repo.seed_if_empty(&sample_catalogue()?).await?;
        if inserted > 0 {
            tracing::info!(inserted, "seeded the sample catalogue");
        }
    }
    let metrics = Metrics::new("product");
    let store = if args.redis_url.is_empty() {
        None
    } else {
        let cache = args.cache_settings();
        Some(RedisStore::new(
            &args.redis_url,
            cache.op_timeout,
            cache.cool_down,
        )?)
    };
    let cache = CacheAside::new(store, args.cache_settings(), &metrics);
    let catalogue = Arc::new(Catalogue::new(repo, cache));
    let ready = {
        let catalogue = catalogue.clone();
        http::ready_check(move || {
            let catalogue = catalogue.clone();
            async move {
                catalogue
                    .repo()
                    .ping()
                    .await
                    .map_err(|e| format!("postgres: {e}"))?;
                if let Some(store) = catalogue.cache().store() {
                    if let Err(e) = store.ping().await {
                        // Reads fall back to PostgreSQL: degraded, still ready.
                        tracing::warn!(error = %e, "readyz: redis down, serving from postgres");
                    }
                }
                Ok(())
            }
        })
    };
    let app = http::with_standard_routes(
        routes(catalogue.clone()).layer(DefaultBodyLimit::max(args.max_body_bytes)),
        &metrics,
        ready,
    );
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let registration = Registration::from_args(&args.registration, "product", addr)?
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
    Ok(RunningProduct {
        addr,
        catalogue,
        task,
    })
}

/// Runs the product service until SIGTERM/SIGINT.
pub async fn run(args: ProductArgs) -> anyhow::Result<()> {
    let shutdown = Shutdown::on_signals().context("installing signal handlers")?;
    let running = start(args, shutdown).await?;
    running.task.await.context("server task")?
}
