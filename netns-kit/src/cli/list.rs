//! `netns-kit list`.

use super::{privilege, CliError, Outcome};

/// Arguments of `list`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Pending the kernel layer's live API.
pub fn run(_args: Args) -> Outcome {
    privilege::require("list")?;
    Err(CliError::Runtime("list is not available yet".to_string()))
}
