//! `netns-kit exec NAME NODE -- CMD…`: run a command inside a node of an applied topology.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;

use netns_kit::error::Error;
use netns_kit::netns::Netns;
use netns_kit::topology::plan::FABRIC;

use super::{privilege, CliError, Outcome};

/// Arguments of `exec`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topology's run name (as given to `apply --name`).
    pub name: String,
    /// The node (or the router) to run in.
    pub node: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<OsString>,
}

/// The /run/netns name of `key` in run `name` (the naming `apply` uses).
pub fn ns_name(name: &str, key: &str) -> String {
    format!("{name}-{key}")
}

/// Runs the command with inherited stdio; returns its exit code (128 + signal if killed).
pub fn run(args: Args) -> Outcome {
    privilege::require("exec")?;
    for (what, value) in [("name", &args.name), ("node", &args.node)] {
        if !netns_kit::topology::names::is_valid_name(value) {
            return Err(CliError::BadInput(format!(
                "{what} {value:?} is invalid: expected letters, digits, '-' or '_'"
            )));
        }
    }
    let not_found = |e: &Error| matches!(e, Error::NotFound { .. });
    if let Err(e) = Netns::open(&ns_name(&args.name, FABRIC)) {
        return Err(if not_found(&e) {
            CliError::BadInput(format!(
                "no topology named {:?} is applied (see `netns-kit list`)",
                args.name
            ))
        } else {
            CliError::Runtime(e.to_string())
        });
    }
    let ns = Netns::open(&ns_name(&args.name, &args.node)).map_err(|e| {
        if not_found(&e) {
            CliError::BadInput(format!(
                "topology {:?} has no node {:?}",
                args.name, args.node
            ))
        } else {
            CliError::Runtime(e.to_string())
        }
    })?;
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| CliError::BadInput("missing command after `--`".to_string()))?;
    let status = ns
        .command(program)
        .args(rest)
        .status()
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    };
    Ok(u8::try_from(code).unwrap_or(1))
}
