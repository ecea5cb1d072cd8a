//! `netns-kit apply FILE [--name NAME]`: build a topology and leave it up after exit.

use std::path::{Path, PathBuf};

use netns_kit::error::Error;
use netns_kit::runid::RunId;
use netns_kit::topology::live::{self, ApplyError, ApplyOptions, LiveTopology};
use netns_kit::topology::plan::VxlanPeer;
use netns_kit::topology::{Naming, Plan, Topology};

use super::{privilege, CliError, Outcome};

/// Arguments of `apply`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sudo netns-kit apply ecomm-services/deploy/three-tier.toml --name lab
  sudo netns-kit apply my-topology.toml          # run named after the topology
  sudo netns-kit apply --host vm2 three-tier.toml # only vm2's share of a [placement]

Namespaces are named <NAME>-<node> (see `ip netns list`); a [host] section adds a veth
and host routes in the root namespace. The run stays up until `netns-kit destroy NAME`.")]
pub struct Args {
    /// The topology file (TOML).
    pub file: PathBuf,
    /// The run's name: namespaces become `<NAME>-<node>` under /run/netns; default: the
    /// topology's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Build only this host's share of the file's [placement]: its nodes, the networks they
    /// touch, the derived VXLANs, and the router, policy and host link if placed here.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
}

/// Validates (pure), checks privileges and the name, applies with `persist`, and prints
/// what it created.
pub fn run(args: Args, state_dir: &Path) -> Outcome {
    let t = Topology::from_path(&args.file)?;
    let t = match &args.host {
        Some(host) => t.for_host(host)?,
        None => t,
    };
    let name = args.name.clone().unwrap_or_else(|| t.name.clone());
    // Resolve once with a placeholder id so a bad name is reported before anything else.
    Plan::for_run(
        &t,
        "check",
        Naming::Named {
            prefix: name.clone(),
        },
    )?;
    netns_kit::fault::timing("cli: file read and validated");
    privilege::require("apply")?;
    let runs = live::list_in(state_dir).map_err(|e| CliError::Runtime(e.to_string()))?;
    if let Some(r) = runs.iter().find(|r| r.name == name) {
        return Err(CliError::BadInput(format!(
            "a topology named {name:?} is already applied ({}): `netns-kit destroy {name}` first, or pick another --name",
            r.phase
        )));
    }
    let run_id = RunId::new().map_err(|e| CliError::Runtime(e.to_string()))?;
    let plan = Plan::for_run(
        &t,
        run_id.as_str(),
        Naming::Named {
            prefix: name.clone(),
        },
    )?;
    let opts = ApplyOptions {
        persist: true,
        name: Some(name.clone()),
        state_dir: state_dir.to_path_buf(),
        ..ApplyOptions::default()
    };
    netns_kit::fault::timing("cli: runs listed, plan resolved");
    let live = LiveTopology::apply(&plan, opts).map_err(|e| match e {
        ApplyError::Topology(t) => CliError::BadInput(t.to_string()),
        ApplyError::NameInUse { .. } => CliError::BadInput(e.to_string()),
        ApplyError::Failed { ref source, .. } if matches!(**source, Error::NotPrivileged(_)) => {
            CliError::BadInput(e.to_string())
        }
        other => CliError::Runtime(other.to_string()),
    })?;
    print_summary(&plan, &name);
    drop(live); // persistent: the run stays up
    Ok(0)
}

fn print_summary(plan: &Plan, name: &str) {
    println!(
        "applied topology {:?} as {name:?} (run id {})",
        plan.topology, plan.run_id
    );
    for ns in &plan.namespaces {
        let addrs: Vec<String> = plan
            .addresses
            .iter()
            .filter(|a| a.ns == ns.key)
            .map(|a| format!("{} {}", a.ifname, a.addr))
            .collect();
        println!(
            "  namespace {:<24} {:<7} {}",
            ns.name.as_deref().unwrap_or(&ns.key),
            format!("{:?}", ns.role).to_lowercase(),
            addrs.join(", ")
        );
    }
    for b in &plan.bridges {
        let ports = plan
            .veths
            .iter()
            .filter(|v| v.b.master.as_ref() == Some(&b.ifname))
            .count();
        println!(
            "  bridge    {:<24} network {} ({ports} ports)",
            b.ifname, b.network
        );
    }
    for v in &plan.vxlans {
        let peer = match v.peer {
            VxlanPeer::Remote(a) => format!("remote {a}"),
            VxlanPeer::Group(a) => format!("group {a}"),
        };
        println!(
            "  vxlan     {:<24} vni {} {peer} port {} ({} underlay)",
            v.ifname,
            v.vni,
            v.port,
            v.underlay.as_str()
        );
    }
    for r in &plan.routes {
        let via = r.via.map(|v| format!(" via {v}")).unwrap_or_default();
        println!("  route     {:<24} {}{via}", r.ns, r.dest);
    }
    for f in &plan.firewalls {
        println!(
            "  firewall  {:<24} table inet {} ({} rules, forward policy {:?})",
            f.ns,
            f.ruleset.table,
            f.ruleset.rules.len(),
            f.ruleset.forward
        );
    }
    for i in &plan.impairments {
        println!("  netem     {:<24} {} {:?}", i.ns, i.ifname, i.netem);
    }
    if let Some(h) = &plan.host_link {
        println!(
            "  host link {:<24} {} <-> {} {} in {}",
            h.host_ifname, h.host_addr, h.peer_ifname, h.peer_addr, h.peer_ns
        );
        for r in &h.host_routes {
            println!(
                "  host route {} via {}",
                r.dest,
                r.via.map(|v| v.to_string()).unwrap_or_default()
            );
        }
    }
    println!("tear down with: netns-kit destroy {name}");
}
