//! Argument parsing, dispatch to one module per verb, and the error → exit code mapping.

mod apply;
mod destroy;
mod exec;
mod gc;
mod graph;
mod list;
mod plan;
mod privilege;
mod probe;
mod schema;
mod status;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  netns-kit validate ecomm-services/deploy/three-tier.toml
  netns-kit schema > topology.schema.json
  netns-kit graph ecomm-services/deploy/three-tier.toml --format dot | dot -Tsvg > topology.svg
  netns-kit plan ecomm-services/deploy/three-tier.toml --name lab --nft router | nft -c -j -f -
  sudo netns-kit apply ecomm-services/deploy/three-tier.toml --name lab
  sudo netns-kit exec lab gateway -- ip -br addr
  sudo netns-kit probe lab gateway=172.21.0.10:8500 gateway=172.22.0.10:6379
  sudo netns-kit status lab --json
  sudo netns-kit list
  sudo netns-kit destroy lab
  sudo netns-kit gc --dry-run

Exit codes: 0 ok, 1 runtime failure, 2 bad input or missing privileges, 3 `status`: the run
has drifted from its declaration.
The topology file format is documented in netns-kit/src/topology/spec.rs.

Runs are crash-consistent: whenever apply or destroy dies, `list` marks the run dead and
`gc` (or the next `destroy`) removes exactly what it made. One apply or destroy per name
at a time: a second apply of a name in use exits 2; a destroy waits for a running apply
(up to 60 s, then exits 2 having removed nothing).
Testing hook (never set otherwise): NETNS_KIT_FAULT_AFTER_STEP=N makes apply/destroy
SIGKILL itself at its N-th crash point (NETNS_KIT_FAULT_ACTION=stop: SIGSTOP instead);
see netns-kit/src/fault.rs.";

/// Typed, leak-proof network namespaces from a declarative topology file.
#[derive(Debug, Parser)]
#[command(name = "netns-kit", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// Where applied runs are recorded (one JSON file per run name).
    #[arg(
        long,
        global = true,
        env = "NETNS_KIT_STATE_DIR",
        default_value = netns_kit::topology::state::STATE_DIR,
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,
    /// The verb.
    #[command(subcommand)]
    pub command: Verb,
}

/// One verb per module.
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Build a topology and leave it up (named namespaces, state recorded). Needs root.
    Apply(apply::Args),
    /// Tear down a topology applied with `apply`. Needs root.
    Destroy(destroy::Args),
    /// Compare a running topology with its file; list every difference. Needs root.
    Status(status::Args),
    /// Run a command inside a node's namespace; exits with the command's exit code. Needs root.
    Exec(exec::Args),
    /// TCP probes from nodes' namespaces, all at once (and listeners to probe). Needs root.
    Probe(probe::Args),
    /// Remove leftovers of dead runs (only objects netns-kit created). Needs root.
    Gc(gc::Args),
    /// Print the topology as a Graphviz dot or Mermaid picture (no privileges needed).
    Graph(graph::Args),
    /// List topologies applied with `apply`.
    List(list::Args),
    /// Print what `apply` would build, as JSON (no privileges needed).
    Plan(plan::Args),
    /// Check a topology file completely, touching nothing (no privileges needed).
    Validate(validate::Args),
    /// Print the topology file's JSON Schema (for editors: a `#:schema PATH` first line).
    Schema(schema::Args),
}

/// A failed command: bad input (exit 2) or a runtime failure (exit 1).
#[derive(Debug)]
pub enum CliError {
    /// The user's input (flags, file, names, privileges) is wrong.
    BadInput(String),
    /// Something failed while doing the work.
    Runtime(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::BadInput(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }
    fn message(&self) -> &str {
        match self {
            CliError::BadInput(m) | CliError::Runtime(m) => m,
        }
    }
}

impl From<netns_kit::topology::TopologyError> for CliError {
    /// Every topology error (unreadable file included) is the user's input: exit 2.
    fn from(e: netns_kit::topology::TopologyError) -> Self {
        CliError::BadInput(e.to_string())
    }
}

/// Rejects a run name `apply --name` could never have created (before any privileged work).
pub fn check_run_name(name: &str) -> Result<(), CliError> {
    let max = netns_kit::topology::plan::RUN_NAME_MAX;
    if netns_kit::topology::names::is_valid_name_max(name, max) {
        Ok(())
    } else {
        Err(CliError::BadInput(format!(
            "run name {name:?} is invalid: expected 1..={max} characters from a-z A-Z 0-9 '-' '_'"
        )))
    }
}

/// A kernel-layer error for run `name`: "not found" is the user's input (exit 2), anything
/// else a runtime failure (exit 1).
pub fn not_found_is_bad_input(e: netns_kit::error::Error, name: &str) -> CliError {
    match e {
        netns_kit::error::Error::NotFound { .. } => CliError::BadInput(format!(
            "no topology named {name:?} is applied (see `netns-kit list`)"
        )),
        netns_kit::error::Error::NotPrivileged(_) => CliError::BadInput(e.to_string()),
        other => CliError::Runtime(other.to_string()),
    }
}

/// What a verb returns on success: the process exit code (0 unless `exec` says otherwise).
pub type Outcome = Result<u8, CliError>;

/// Parses arguments, runs the verb, maps errors to one line and an exit code.
pub fn run() -> ExitCode {
    netns_kit::fault::timing("main");
    let code = run_verb();
    netns_kit::fault::timing("exit");
    code
}

fn run_verb() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    let result = match cli.command {
        Verb::Apply(a) => apply::run(a, &cli.state_dir),
        Verb::Destroy(a) => destroy::run(a, &cli.state_dir),
        Verb::Status(a) => status::run(a, &cli.state_dir),
        Verb::Exec(a) => exec::run(a, &cli.state_dir),
        Verb::Probe(a) => probe::run(a, &cli.state_dir),
        Verb::Gc(a) => gc::run(a, &cli.state_dir),
        Verb::Graph(a) => graph::run(a),
        Verb::List(a) => list::run(a, &cli.state_dir),
        Verb::Plan(a) => plan::run(a),
        Verb::Validate(a) => validate::run(a),
        Verb::Schema(a) => schema::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("netns-kit: error: {}", one_line(e.message()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Help and version go to stdout with exit 0; usage errors become one line with exit 2.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            // The message is everything before the first blank line or "Usage:" line.
            let text = e.render().to_string();
            let message: Vec<&str> = text
                .lines()
                .map(str::trim)
                .skip_while(|l| l.is_empty())
                .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
                .collect();
            let message = message.join(" ");
            let message = message.trim_start_matches("error: ");
            eprintln!("netns-kit: error: {message} (see `netns-kit --help`)");
            ExitCode::from(2)
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
