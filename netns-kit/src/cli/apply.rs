//! `netns-kit apply FILE [--name NAME]`: build a topology and leave it up.

use std::path::PathBuf;

use super::{privilege, CliError, Outcome};

/// Arguments of `apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topology file (TOML).
    pub file: PathBuf,
    /// The run's name: namespaces become `<NAME>-<node>`; default: the topology's name.
    #[arg(long)]
    pub name: Option<String>,
}

/// Validates, then applies (pending the kernel layer's live API).
pub fn run(args: Args) -> Outcome {
    let _t = netns_kit::topology::Topology::from_path(&args.file)?;
    privilege::require("apply")?;
    Err(CliError::Runtime("apply is not available yet".to_string()))
}
