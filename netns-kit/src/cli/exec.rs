//! `netns-kit exec NAME NODE -- CMD…`: run a command inside a node of an applied topology.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;

use netns_kit::error::Error;
use netns_kit::topology::live;

use super::{privilege, CliError, Outcome};

/// Arguments of `exec`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sudo netns-kit exec lab gateway -- ip -br addr
  sudo netns-kit exec lab order-1 -- curl -s http://172.21.0.10:8500/livez
  sudo netns-kit exec lab router -- nft list ruleset

Exits with the command's exit code.")]
pub struct Args {
    /// The topology's run name (as given to `apply --name`).
    pub name: String,
    /// The node (or the router) to run in.
    pub node: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<OsString>,
}

/// Runs the command in place of this process; only returns (with an error) if it cannot start.
pub fn run(args: Args, state_dir: &Path) -> Outcome {
    privilege::require("exec")?;
    super::check_run_name(&args.name)?;
    if !netns_kit::topology::names::is_valid_name(&args.node) {
        return Err(CliError::BadInput(format!(
            "node {:?} is invalid: expected letters, digits, '-' or '_'",
            args.node
        )));
    }
    let ns = live::exec_in_dir(state_dir, &args.name, &args.node).map_err(|e| match e {
        Error::NotFound { kind: "node", .. } => CliError::BadInput(format!(
            "topology {:?} has no node {:?}",
            args.name, args.node
        )),
        other => super::not_found_is_bad_input(other, &args.name),
    })?;
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| CliError::BadInput("missing command after `--`".to_string()))?;
    // Replace this process with the command (entering the namespace between the checks
    // above and exec): its exit code and signals are the command's own.
    let mut cmd = ns.command(program);
    cmd.args(rest);
    let err = cmd.as_command_mut().exec();
    Err(match err.kind() {
        std::io::ErrorKind::NotFound => CliError::BadInput(format!(
            "command {:?} not found in node {:?}",
            program, args.node
        )),
        _ => CliError::Runtime(format!(
            "cannot run {program:?} in node {:?}: {err}",
            args.node
        )),
    })
}
