//! `netns-kit gc [--dry-run]`: remove what dead runs left behind, and nothing else.

use std::path::Path;

use netns_kit::topology::gc::{self, Leftover};

use super::{privilege, CliError, Outcome};

/// Arguments of `gc`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sudo netns-kit gc --dry-run
  sudo netns-kit gc

Only runs whose owner process is gone and that were not applied with `apply` (which
persists) are collected; a namespace is removed only if it is provably that run's.")]
pub struct Args {
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

/// Finds (and unless dry-running, removes) leftovers of runs whose owner is gone.
pub fn run(args: Args, state_dir: &Path) -> Outcome {
    privilege::require("gc")?;
    let found = gc::gc_in(state_dir, args.dry_run).map_err(|e| CliError::Runtime(e.to_string()))?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    if found.is_empty() {
        println!("nothing to collect");
    }
    for item in &found {
        let what = match item {
            Leftover::Namespace { run, run_id, name } => {
                format!("namespace {name} (run {run}, id {run_id})")
            }
            Leftover::HostLink { run, ifname } => format!("host link {ifname} (run {run})"),
            Leftover::StateFile { run, path } => {
                format!("state file {} (run {run})", path.display())
            }
        };
        println!("{verb} {what}");
    }
    Ok(0)
}
