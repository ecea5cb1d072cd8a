//! `netns-kit destroy NAME`: tear down a topology applied with `apply`.

use std::path::Path;

use netns_kit::topology::live;

use super::{not_found_is_bad_input, privilege, Outcome};

/// Arguments of `destroy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run's name (as given to `apply --name`; see `netns-kit list`).
    pub name: String,
}

/// Removes the run's processes, namespaces, host link and state file.
pub fn run(args: Args, state_dir: &Path) -> Outcome {
    super::check_run_name(&args.name)?;
    privilege::require("destroy")?;
    live::destroy_by_name_in(state_dir, &args.name)
        .map_err(|e| not_found_is_bad_input(e, &args.name))?;
    println!("destroyed {:?}", args.name);
    Ok(0)
}
