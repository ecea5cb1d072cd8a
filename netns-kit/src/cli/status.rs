//! `netns-kit status`.

use super::{privilege, CliError, Outcome};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Pending the kernel layer's live API.
pub fn run(_args: Args) -> Outcome {
    privilege::require("status")?;
    Err(CliError::Runtime("status is not available yet".to_string()))
}
