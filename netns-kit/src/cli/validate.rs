//! `netns-kit validate FILE`: the complete pure check of a topology file.

use std::path::PathBuf;

use netns_kit::topology::Topology;

use super::Outcome;

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topology file (TOML).
    pub file: PathBuf,
}

/// Validates the file and prints a one-line summary.
pub fn run(args: Args) -> Outcome {
    let t = Topology::from_path(&args.file)?;
    let rules: usize = t.policy.len() + t.host.as_ref().map_or(0, |h| h.allow.len());
    println!(
        "{}: ok: topology {:?}: {} networks, {} nodes, {}, {} policy rules{}",
        args.file.display(),
        t.name,
        t.networks.len(),
        t.nodes.len(),
        if t.router.is_some() {
            "a router"
        } else {
            "no router"
        },
        rules,
        if t.host.is_some() {
            ", host link (lab mode)"
        } else {
            ""
        },
    );
    Ok(0)
}
