//! `netns-kit destroy NAME`: tear down a topology applied with `apply`.

use std::path::Path;

use netns_kit::topology::live;
use netns_kit::topology::state::RunLock;

use super::CliError;

use super::{not_found_is_bad_input, privilege, Outcome};

/// Arguments of `destroy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run's name (as given to `apply --name`; see `netns-kit list`).
    pub name: String,
}

/// Removes the run's processes, namespaces, host link and state file. While an `apply`
/// of the same name is still running, waits for it (up to a minute), then refuses.
pub fn run(args: Args, state_dir: &Path) -> Outcome {
    super::check_run_name(&args.name)?;
    privilege::require("destroy")?;
    if netns_kit::topology::state::files_of(state_dir, &args.name).is_empty() {
        return Err(not_found_is_bad_input(
            netns_kit::error::Error::NotFound {
                kind: "run",
                name: args.name.clone(),
            },
            &args.name,
        ));
    }
    let lock = match RunLock::try_acquire(state_dir, &args.name) {
        Ok(Some(l)) => l,
        Ok(None) => {
            eprintln!(
                "netns-kit: waiting for run {:?}: {}",
                args.name,
                live::busy_detail(state_dir, &args.name)
            );
            RunLock::acquire_within(state_dir, &args.name, live::LOCK_WAIT)
                .map_err(|e| CliError::Runtime(e.to_string()))?
                .ok_or_else(|| {
                    CliError::BadInput(format!(
                        "run {:?} is still busy after {} s: {}; nothing was removed",
                        args.name,
                        live::LOCK_WAIT.as_secs(),
                        live::busy_detail(state_dir, &args.name)
                    ))
                })?
        }
        Err(e) => return Err(CliError::Runtime(e.to_string())),
    };
    netns_kit::fault::timing("cli: run locked");
    live::destroy_locked(state_dir, &args.name, lock)
        .map_err(|e| not_found_is_bad_input(e, &args.name))?;
    println!("destroyed {:?}", args.name);
    Ok(0)
}
