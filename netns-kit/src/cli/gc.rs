//! `netns-kit gc [--dry-run]`: remove what dead runs left behind, and nothing else.

use std::path::Path;

use netns_kit::topology::gc;

use super::{privilege, CliError, Outcome};

/// Arguments of `gc`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sudo netns-kit gc --dry-run
  sudo netns-kit gc

Collected: runs whose `apply` or `destroy` died mid-way, non-persistent runs whose owner
exited, runs applied before the last reboot — exactly the runs `netns-kit list` marks
\"dead run\". A complete run left up by `apply` is a live lab and is never collected.
Within a dead run, an object is removed only if it is provably that run's (its run-id
alias or tag), never because its name looks similar. Namespaces of anonymous (test) runs
whose owner died, kept alive by a process inside, are found by their tag and those
processes killed.")]
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
        println!("{verb} {item}");
    }
    Ok(0)
}
