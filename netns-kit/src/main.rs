//! The `netns-kit` command-line tool: apply, inspect and tear down declarative topologies.
//!
//! Exit codes: 0 ok, 1 runtime failure, 2 bad input (including missing privileges), 3 `status`
//! found the run drifted from its declaration.
//! Every error is one line on stderr: `netns-kit: error: …`.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
