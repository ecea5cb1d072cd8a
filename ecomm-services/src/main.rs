//! `ecomm`: one binary, one subcommand per service.
//!
//! Pattern for every service: `src/<service>/` exposes `pub struct <Service>Args` (clap Args,
//! each flag with `env = "ECOMM_..."` and a documented default) and
//! `pub async fn run(args: <Service>Args) -> anyhow::Result<()>`; add a variant below and a
//! dispatch line in `main`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ecomm_services::{gateway, healthcheck, http, order, product, registry};

/// The e-commerce services: gateway, registry, product, order.
#[derive(Parser, Debug)]
#[command(name = "ecomm", version, about)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, env = "ECOMM_LOG_FORMAT", value_enum, default_value_t = http::LogFormat::Compact)]
    log_format: http::LogFormat,
    /// Tokio worker threads (default: one per CPU).
    #[arg(long, global = true, env = "ECOMM_WORKER_THREADS")]
    worker_threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// API gateway: /api/products* → product, /api/orders* → order.
    Gateway(Box<gateway::GatewayArgs>),
    /// Service registry: TTL leases over HTTP, A/SRV answers over DNS.
    Registry(registry::RegistryArgs),
    /// Product catalogue: PostgreSQL with a Redis cache-aside.
    Product(Box<product::ProductArgs>),
    /// Orders: PostgreSQL, idempotent creation, prices from the product service.
    Order(Box<order::OrderArgs>),
    /// GET a URL; exit 0 on 2xx, 1 otherwise (container health checks).
    Healthcheck(healthcheck::HealthcheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = cli.worker_threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = match runtime.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ecomm: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !matches!(cli.command, Command::Healthcheck(_)) {
        http::init_tracing(cli.log_format);
    }
    let result: anyhow::Result<ExitCode> = runtime.block_on(async move {
        match cli.command {
            Command::Gateway(args) => gateway::run(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Registry(args) => registry::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Product(args) => product::run(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Order(args) => order::run(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Healthcheck(args) => Ok(healthcheck_exit(&args).await),
            // Services: `Command::X(args) => x::run(args).await.map(|()| ExitCode::SUCCESS),`
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("ecomm: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `ecomm healthcheck` and maps its outcome to the process exit code.
async fn healthcheck_exit(args: &healthcheck::HealthcheckArgs) -> ExitCode {
    match healthcheck::check(args).await {
        Ok(status) => {
            println!("ok: {} answered {status}", args.url);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}
