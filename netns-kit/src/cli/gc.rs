//! `netns-kit gc`.

use super::{privilege, CliError, Outcome};

/// Arguments of `gc`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Pending the kernel layer's live API.
pub fn run(_args: Args) -> Outcome {
    privilege::require("gc")?;
    Err(CliError::Runtime("gc is not available yet".to_string()))
}
