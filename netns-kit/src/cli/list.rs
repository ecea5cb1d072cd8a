//! `netns-kit list`: the topologies applied with `apply` (and leftovers `gc` would remove).

use std::path::Path;

use netns_kit::topology::live;

use super::{CliError, Outcome};

/// Arguments of `list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints one line per recorded run.
pub fn run(args: Args, state_dir: &Path) -> Outcome {
    let runs = live::list_in(state_dir).map_err(|e| CliError::Runtime(e.to_string()))?;
    if args.json {
        let text =
            serde_json::to_string_pretty(&runs).map_err(|e| CliError::Runtime(e.to_string()))?;
        println!("{text}");
        return Ok(0);
    }
    if runs.is_empty() {
        println!("no topologies applied");
        return Ok(0);
    }
    println!(
        "{:<20} {:<16} {:<12} {:>10}  STATE",
        "NAME", "TOPOLOGY", "RUN-ID", "NAMESPACES"
    );
    for r in runs {
        // The same classification `gc` acts on: "dead run" exactly when gc removes it.
        let state = r.phase.to_string();
        println!(
            "{:<20} {:<16} {:<12} {:>10}  {state}",
            r.name, r.topology, r.run_id, r.namespaces
        );
    }
    Ok(0)
}
