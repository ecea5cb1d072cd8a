//! `netns-kit status NAME [--json]`: compare a running topology with what it declared.

use std::path::Path;

use netns_kit::topology::live;

use super::{not_found_is_bad_input, privilege, CliError, Outcome};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sudo netns-kit status lab
  sudo netns-kit status lab --json | jq .differences

Exits 0 when the run is exactly as declared, 3 when it has drifted (differences listed),
1 when the comparison itself failed, 2 on bad input: `netns-kit status lab || rebuild`.")]
pub struct Args {
    /// The run's name (as given to `apply --name`; see `netns-kit list`).
    pub name: String,
    /// Print JSON: {"name", "ok", "differences": [...]}.
    #[arg(long)]
    pub json: bool,
}

/// Exit code of `status` when the live run differs from its declaration (distinct from 1, a
/// failure to compare, so scripts can tell "drifted" from "broken").
pub const DRIFTED: u8 = 3;

/// Lists every difference; exits 0 when there is none, [`DRIFTED`] otherwise.
pub fn run(args: Args, state_dir: &Path) -> Outcome {
    super::check_run_name(&args.name)?;
    privilege::require("status")?;
    let diffs = live::status_in(state_dir, &args.name)
        .map_err(|e| not_found_is_bad_input(e, &args.name))?;
    if args.json {
        let doc = serde_json::json!({
            "name": args.name,
            "ok": diffs.is_empty(),
            "differences": diffs,
        });
        let text =
            serde_json::to_string_pretty(&doc).map_err(|e| CliError::Runtime(e.to_string()))?;
        println!("{text}");
    } else if diffs.is_empty() {
        println!("{}: up, exactly as declared", args.name);
    } else {
        println!(
            "{}: {} difference(s) from the declaration:",
            args.name,
            diffs.len()
        );
        for d in &diffs {
            println!("  {d}");
        }
    }
    Ok(if diffs.is_empty() { 0 } else { DRIFTED })
}
