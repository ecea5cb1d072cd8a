//! `netns-kit plan FILE [--name NAME]`: print what `apply` would build, as JSON (pure).

use std::path::PathBuf;

use netns_kit::topology::{Naming, Plan, Topology};

use super::{CliError, Outcome};

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The topology file (TOML).
    pub file: PathBuf,
    /// Plan a named run (as `apply --name NAME` would); default: the topology's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Plan an anonymous test run instead (no /run/netns names, no host link).
    #[arg(long, conflicts_with = "name")]
    pub anonymous: bool,
    /// Print only the nftables JSON document of this namespace (e.g. "router").
    #[arg(long, value_name = "NS")]
    pub nft: Option<String>,
}

/// Validates the file and prints the resolved plan.
pub fn run(args: Args) -> Outcome {
    let t = Topology::from_path(&args.file)?;
    let naming = if args.anonymous {
        Naming::Anonymous
    } else {
        Naming::Named {
            prefix: args.name.clone().unwrap_or_else(|| t.name.clone()),
        }
    };
    let plan = Plan::for_run(&t, "plan", naming)?;
    if let Some(ns) = &args.nft {
        let fw = plan.firewalls.iter().find(|f| &f.ns == ns).ok_or_else(|| {
            CliError::BadInput(format!("namespace {ns:?} has no firewall in this plan"))
        })?;
        println!("{}", fw.ruleset.to_nft_json());
        return Ok(0);
    }
    let text = serde_json::to_string_pretty(&plan).map_err(|e| CliError::Runtime(e.to_string()))?;
    println!("{text}");
    Ok(0)
}
