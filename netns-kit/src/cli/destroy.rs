//! `netns-kit destroy`.

use super::{privilege, CliError, Outcome};

/// Arguments of `destroy`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Pending the kernel layer's live API.
pub fn run(_args: Args) -> Outcome {
    privilege::require("destroy")?;
    Err(CliError::Runtime(
        "destroy is not available yet".to_string(),
    ))
}
