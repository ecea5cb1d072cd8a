//! `lab`: the three-tier lab on this machine (root). `just up` / `down` / `status` / `logs` /
//! `scale` / `backup` / `restore` call it. Exit codes: 0 ok, 1 runtime failure, 2 bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtests::cli::{self, up::UpOptions, LabDir};
use xtests::deployment::Backend;
use xtests::LabError;

/// The e-commerce stack in three isolated network tiers, with real PostgreSQL and Redis.
#[derive(Parser, Debug)]
#[command(name = "lab", version, about)]
struct Args {
    /// State directory: logs, PostgreSQL data, state.json, topology picture.
    #[arg(long, global = true, env = "ECOMM_LAB_DIR", default_value = ".lab")]
    dir: PathBuf,
    /// The lab's name: namespaces are `<name>-<node>` under /run/netns.
    #[arg(long, global = true, env = "ECOMM_LAB_NAME", default_value = "lab")]
    name: String,
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Apply the topology, start every component, wait until ready, add the host link.
    Up {
        /// Topology file (default: ecomm-services/deploy/three-tier.toml).
        #[arg(long, env = "ECOMM_TOPOLOGY")]
        topology: Option<PathBuf>,
        /// The `ecomm` binary (default: next to this `lab` binary).
        #[arg(long, env = "ECOMM_BIN")]
        ecomm: Option<PathBuf>,
        /// Product slots to provision (room for `scale`); default 3.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
        product_slots: u8,
        /// Product instances to start; default 2.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=9))]
        products: u8,
        /// Run PostgreSQL, Redis and the services from the pinned images built from
        /// images.lock (each process over its image's tree, in its own mount namespace),
        /// not the host's programs: the same bytes as the Docker and VM backends.
        #[arg(long)]
        pinned: bool,
    },
    /// Stop every process; remove every namespace, link, rule and the host route.
    Down,
    /// Each component's health, checked from inside its namespace.
    Status,
    /// Show (and follow) one component's log.
    Logs {
        /// Component: gateway, registry, product-1, product-2, order-1, redis, postgres, …
        component: String,
        /// Lines of history to show first.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: usize,
        /// Print and exit instead of following.
        #[arg(long)]
        no_follow: bool,
    },
    /// Run N instances of a service (product: slots 1..=3 by default).
    Scale {
        /// The service ("product").
        service: String,
        /// How many instances.
        count: u8,
    },
    /// pg_dump the orders database into FILE.
    Backup {
        /// Where to write the SQL dump.
        file: PathBuf,
    },
    /// Replace the orders database's contents with the dump in FILE.
    Restore {
        /// A dump written by `lab backup`.
        file: PathBuf,
    },
    /// Print the declaration resolved (hosts, nodes, services, overlay) as JSON; no root needed.
    Layout {
        /// Print JSON (the only format).
        #[arg(long, required = true)]
        json: bool,
        /// Topology file (default: ecomm-services/deploy/three-tier.toml).
        file: Option<PathBuf>,
    },
    /// Print compose.yml generated from the declaration; no root needed.
    Compose {
        /// Topology file (default: ecomm-services/deploy/three-tier.toml).
        file: Option<PathBuf>,
    },
    /// Print swarm-stack.yml generated from the declaration; no root needed.
    Swarm {
        /// Topology file (default: ecomm-services/deploy/three-tier.toml).
        file: Option<PathBuf>,
    },
    /// Run the scenarios on one or more backends and print the matrix (scenario × backend);
    /// exit 0 only when every applicable one passed.
    Scenarios {
        /// A backend to run on: netns, docker or vm (repeat for several columns).
        #[arg(long = "backend", default_value = "netns")]
        backends: Vec<Backend>,
        /// Only the scenarios whose name contains this (repeatable).
        #[arg(long = "filter")]
        filters: Vec<String>,
        /// Print the scenarios' names and exit.
        #[arg(long)]
        list: bool,
        /// The declaration (default: ecomm-services/deploy/three-tier.toml).
        file: Option<PathBuf>,
    },
    /// The seeds' `ab -n 1000 -c 50` plus a wrk run against the gateway, from the host.
    Bench {
        /// Where the JSON report goes.
        #[arg(long, default_value = "target/bench/lab.json")]
        out: PathBuf,
        /// wrk duration in seconds.
        #[arg(long, default_value_t = 15)]
        wrk_seconds: u32,
    },
    /// The seeds' comparison in one run: lab, Compose and Swarm, interleaved rounds, a table.
    BenchCompare(xtests::compare::CompareOptions),
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Verb::Scenarios {
        backends,
        filters,
        list,
        file,
    } = &args.command
    {
        return scenarios(backends, filters, *list, file.as_deref());
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab: {e}");
            match e {
                LabError::NotRoot
                | LabError::Invalid { .. }
                | LabError::UnknownComponent { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn run(args: Args) -> Result<(), LabError> {
    // Pure verbs: no state directory.
    let shared = |f: &Option<PathBuf>| f.clone().unwrap_or_else(xtests::topology_file::shared_file);
    match &args.command {
        Verb::Layout { file, .. } => return cli::layout::run(&shared(file)),
        Verb::Compose { file } => return cli::layout::docker_file(&shared(file), false),
        Verb::Swarm { file } => return cli::layout::docker_file(&shared(file), true),
        Verb::BenchCompare(opts) => return Ok(xtests::compare::run(opts)?),
        _ => {}
    }
    let lab = LabDir::ensure(&args.dir, &args.name)?;
    // Verbs that change the lab take its lock (released when the process ends, however).
    let _lock = match args.command {
        Verb::Up { .. } | Verb::Down | Verb::Scale { .. } | Verb::Restore { .. } => {
            Some(lab.lock()?)
        }
        _ => None,
    };
    match args.command {
        Verb::Up {
            topology,
            ecomm,
            product_slots,
            products,
            pinned,
        } => {
            let ecomm = match ecomm {
                Some(p) => p,
                None => sibling("ecomm")?,
            };
            let opts = UpOptions {
                topology: topology.unwrap_or_else(xtests::topology_file::shared_file),
                ecomm,
                product_slots: product_slots.max(products),
                products,
                pinned,
            };
            cli::up::run(&lab, &opts)
        }
        Verb::Down => cli::down::run(&lab),
        Verb::Status => cli::status::run(&lab),
        Verb::Logs {
            component,
            lines,
            no_follow,
        } => cli::logs::run(&lab, &component, lines, !no_follow),
        Verb::Scale { service, count } => cli::scale::run(&lab, &service, count),
        Verb::Backup { file } => cli::backup::backup(&lab, &file),
        Verb::Restore { file } => cli::backup::restore(&lab, &file),
        Verb::Bench { out, wrk_seconds } => cli::bench::run(&lab, &out, wrk_seconds),
        Verb::Layout { .. }
        | Verb::Compose { .. }
        | Verb::Swarm { .. }
        | Verb::Scenarios { .. }
        | Verb::BenchCompare(_) => {
            Ok(()) // above
        }
    }
}

/// `lab scenarios`: exit 0 when every applicable scenario passed, 1 when one failed, 2 when
/// the filters select nothing.
fn scenarios(
    backends: &[Backend],
    filters: &[String],
    list: bool,
    file: Option<&std::path::Path>,
) -> ExitCode {
    let selected = xtests::scenarios::matching(filters);
    if selected.is_empty() {
        eprintln!("lab: no scenario matches {filters:?} (`lab scenarios --list` names them all)");
        return ExitCode::from(2);
    }
    if list {
        print!("{}", cli::scenarios::list(&selected));
        return ExitCode::SUCCESS;
    }
    let file = file
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(xtests::topology_file::shared_file);
    if let Err(e) = netns_kit::topology::Topology::from_path(&file) {
        eprintln!("lab: {}: {e}", file.display());
        return ExitCode::from(2);
    }
    if backends.contains(&Backend::Netns) {
        if let Err(e) = cli::require_root() {
            eprintln!("lab: the netns backend: {e}");
            return ExitCode::from(2);
        }
    }
    if std::env::var_os("ECOMM_BIN").is_none() {
        if let Ok(ecomm) = sibling("ecomm") {
            xtests::backend::netns::use_ecomm(ecomm);
        }
    }
    if let Ok(me) = std::env::current_exe() {
        if let Some(dir) = me.parent() {
            // The VM backend's guests run the netns-kit, ecomm and vm-agent built beside us.
            xtests::backend::vm::use_bins_in(dir.to_path_buf());
        }
    }
    let matrix = cli::scenarios::run(backends, &file, &selected);
    print!("{}", matrix.render());
    if matrix.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A binary next to this one (cargo puts `ecomm` and `lab` in the same directory).
fn sibling(name: &str) -> Result<PathBuf, LabError> {
    let me = std::env::current_exe().map_err(|e| LabError::io("find the lab binary", e))?;
    let path = me.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(LabError::Invalid {
            what: "ecomm binary".into(),
            value: path.display().to_string(),
            expected: "`cargo build -p ecomm-services --bin ecomm` first, or --ecomm / $ECOMM_BIN"
                .into(),
        })
    }
}
