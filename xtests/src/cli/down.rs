//! `lab down`: stop every process, then remove every namespace, link, rule and the host link
//! and route, and check that nothing of the lab remains. Data (PostgreSQL's directory) stays
//! in the state directory for the next `up`; remove the directory to forget it.
//!
//! It works whatever state a killed `lab up` left: the run is found from the lab's state file
//! (written before the topology is applied, and again after every spawn), from netns-kit's own
//! run registry (written before netns-kit creates anything), and from the lab's namespace
//! names (`<name>-<node>` of the declaration). Processes are stopped by namespace, component
//! by component in reverse start order, whether or not their pids were recorded — e.g.
//! PostgreSQL's backends, which lead sessions of their own, or a server spawned a moment before
//! its driver died — and each is signalled through a pidfd after its namespace is checked, so a
//! recorded pid now reused by an unrelated process is never touched. The state file is
//! removed last, only when nothing is left: a `down` that fails can simply be run again.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use netns_kit::netns::Netns;
use netns_kit::runid::RunId;
use nix::sys::signal::Signal;

use super::{fault_point, require_root, LabDir};
use crate::component::{Component, Kind};
use crate::error::LabError;
use crate::live;
use crate::process::{processes_in_namespaces, stop_all_in};
use crate::stack::{postgres_dir, stop_signals, STOP_GRACE};
use crate::state::LabState;
use crate::topology_file;

/// Takes the lab down; reports what it removed and anything it could not.
pub fn run(lab: &LabDir) -> Result<(), LabError> {
    require_root()?;
    let state = LabState::load(&lab.dir)?;
    let found = Found::search(lab, state.as_ref());
    let postgres_data = postgres_dir(&lab.dir).join("data");
    let mut problems = Vec::new();
    // Component by component, gateway first and data stores last (as `up` started them, in
    // reverse), whether or not `up` lived to record their pids: everything inside a node's
    // namespace is that node's component and nothing else.
    let mut stopped = 0;
    for (kind, ns_name) in &found.stop_order {
        let Some(inode) = inode_of(ns_name) else {
            continue;
        };
        let inodes = BTreeSet::from([inode]);
        match stop_all_in(
            &inodes,
            stop_signals(*kind, &inodes, &postgres_data),
            STOP_GRACE,
        ) {
            Ok(0) => {}
            Ok(_) => stopped += 1,
            Err(left) => problems.push(format!("processes {left:?} in {ns_name} survive SIGKILL")),
        }
    }
    // Then anything else in any of the lab's namespaces (the router, the fabric, a `psql`…).
    let inodes = found.inodes();
    let stray = match stop_all_in(&inodes, |_| Some(Signal::SIGTERM), STOP_GRACE) {
        Ok(n) => n,
        Err(left) => {
            problems.push(format!("processes {left:?} survive SIGKILL"));
            0
        }
    };
    fault_point("down:stopped");
    let removed = match live::destroy_named(&lab.name) {
        Ok(removed) => removed,
        Err(e) => {
            problems.push(e.to_string());
            false
        }
    };
    let mut extra = 0;
    for name in &found.recorded {
        if !Path::new("/run/netns").join(name).exists() {
            continue;
        }
        match remove_if_empty(name) {
            Ok(true) => extra += 1,
            Ok(false) => problems.push(format!(
                "/run/netns/{name} holds interfaces or processes netns-kit cannot prove this run's; left alone"
            )),
            Err(e) => problems.push(format!("/run/netns/{name}: {e}")),
        }
    }
    let host_link_removed = match remove_host_link(&found) {
        Ok(removed) => removed,
        Err(e) => {
            problems.push(e.to_string());
            false
        }
    };
    if let Some(untagged) = wait_host_links_gone(&found, Duration::from_secs(5)) {
        eprintln!(
            "lab: warning: host link {untagged} still exists and carries no run id of this lab; left alone"
        );
    }
    problems.extend(found.leftovers(&inodes));
    if !problems.is_empty() {
        return Err(LabError::Unhealthy(format!(
            "lab {:?} is not completely down (state kept in {}; run `just down` again): {}",
            lab.name,
            lab.dir.display(),
            problems.join("; ")
        )));
    }
    fault_point("down:removed");
    LabState::remove(&lab.dir)?;
    if state.is_none() && stopped == 0 && !removed && stray == 0 && extra == 0 && !host_link_removed
    {
        println!("lab: nothing to take down (no lab named {:?})", lab.name);
    } else {
        println!(
            "lab: down — stopped {stopped} components{}, removed the namespaces, links, rules and the host route",
            if stray > 0 { format!(" and {stray} other processes") } else { String::new() }
        );
        println!(
            "lab: data kept in {} (rm -rf it to start from scratch)",
            lab.dir.display()
        );
    }
    Ok(())
}

/// True if anything of a lab named like `lab` is on the machine: netns-kit records a run of
/// that name, or one of its namespace names exists.
pub fn has_leftovers(lab: &LabDir) -> bool {
    let found = Found::search(lab, None);
    live::recorded(&lab.name).is_some() || found.existing().next().is_some()
}

/// What of a lab is (or may be) on the machine.
struct Found {
    /// Namespace names recorded before they were created (lab state, netns-kit's registry).
    recorded: BTreeSet<String>,
    /// Namespace names the lab's naming implies (`<name>-<node>` of the declaration).
    derived: BTreeSet<String>,
    /// Run ids of the lab (state file and netns-kit's record; normally one).
    run_ids: BTreeSet<String>,
    /// Host link interface names recorded for the run.
    host_links: BTreeSet<String>,
    /// (kind, namespace name) of every component, in stop order: reverse start stages.
    stop_order: Vec<(Kind, String)>,
}

impl Found {
    fn search(lab: &LabDir, state: Option<&LabState>) -> Self {
        let mut found = Found {
            recorded: BTreeSet::new(),
            derived: BTreeSet::new(),
            run_ids: BTreeSet::new(),
            host_links: BTreeSet::new(),
            stop_order: Vec::new(),
        };
        if let Some(s) = state {
            found.recorded.extend(s.namespaces.values().cloned());
            found.run_ids.insert(s.run_id.clone());
            found.host_links.extend(s.host_ifname.clone());
        }
        if let Some(r) = live::recorded(&lab.name) {
            found
                .recorded
                .extend(r.namespaces.iter().map(|n| n.name.clone()));
            found.run_ids.insert(r.run_id.clone());
            found.host_links.extend(r.host_link.clone());
        }
        let topology = state
            .map(|s| s.topology.clone())
            .unwrap_or_else(topology_file::shared_file);
        let slots = state.map_or(9, |s| s.product_slots.max(1));
        let mut components: Vec<Component> =
            state.map(|s| s.components.clone()).unwrap_or_default();
        if let Ok((_, t)) = topology_file::load(&topology, slots) {
            if components.is_empty() {
                components = crate::component::from_topology(&t).unwrap_or_default();
            }
            let keys = t
                .nodes
                .iter()
                .map(|n| n.name.clone())
                .chain(t.router.iter().map(|r| r.name.clone()))
                .chain(["fabric".to_string()]);
            found
                .derived
                .extend(keys.map(|k| format!("{}-{k}", lab.name)));
        }
        components.sort_by_key(|c| std::cmp::Reverse(c.stage()));
        found.stop_order = components
            .into_iter()
            .map(|c| {
                let ns = state
                    .and_then(|s| s.namespaces.get(&c.name).cloned())
                    .unwrap_or_else(|| format!("{}-{}", lab.name, c.name));
                (c.kind, ns)
            })
            .collect();
        found
    }

    /// Recorded and derived names that exist under /run/netns.
    fn existing(&self) -> impl Iterator<Item = &String> {
        self.recorded
            .union(&self.derived)
            .filter(|n| Path::new("/run/netns").join(n).exists())
    }

    /// Inodes of the lab's namespaces that exist.
    fn inodes(&self) -> BTreeSet<u64> {
        self.existing().filter_map(|n| inode_of(n)).collect()
    }

    /// What is still there: namespace names, processes in the lab's namespaces, host links.
    fn leftovers(&self, inodes: &BTreeSet<u64>) -> Vec<String> {
        let mut left: Vec<String> = self
            .existing()
            .map(|n| format!("/run/netns/{n} still exists"))
            .collect();
        let pids = processes_in_namespaces(inodes);
        if !pids.is_empty() {
            left.push(format!("processes {pids:?} still in the lab's namespaces"));
        }
        for ifname in &self.host_links {
            if let Ok(Some(alias)) = host_link_alias(ifname) {
                if self.owns(alias.as_deref()) {
                    left.push(format!("host link {ifname} still exists"));
                }
            }
        }
        left
    }

    /// True if `alias` is the link alias of one of the lab's run ids.
    fn owns(&self, alias: Option<&str>) -> bool {
        self.run_ids
            .iter()
            .filter_map(|id| RunId::parse(id).ok())
            .any(|id| alias == Some(id.alias().as_str()))
    }
}

/// The inode of namespace `name` under /run/netns, if it exists.
fn inode_of(name: &str) -> Option<u64> {
    std::fs::metadata(Path::new("/run/netns").join(name))
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
}

/// Removes a recorded namespace name netns-kit did not prove its own, but only when there is
/// nothing in it to lose: a name that was never mounted (an empty file: the driver died between
/// creating and mounting it), or a namespace with no interface but `lo` and no process (it
/// died before the first link). True if removed.
fn remove_if_empty(name: &str) -> Result<bool, LabError> {
    let path = Path::new("/run/netns").join(name);
    let fs = nix::sys::statfs::statfs(&path)
        .map_err(|e| LabError::io(format!("statfs {}", path.display()), e.into()))?;
    if fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        let meta = std::fs::metadata(&path)
            .map_err(|e| LabError::io(format!("stat {}", path.display()), e))?;
        if !meta.is_file() || meta.len() != 0 {
            return Ok(false);
        }
        std::fs::remove_file(&path)
            .map_err(|e| LabError::io(format!("remove {}", path.display()), e))?;
        return Ok(true);
    }
    let ns = Netns::open(name).map_err(|e| LabError::Topology(e.to_string()))?;
    if !processes_in_namespaces(&BTreeSet::from([ns.inode()])).is_empty() {
        return Ok(false);
    }
    let mut nl = ns
        .netlink()
        .map_err(|e| LabError::Topology(e.to_string()))?;
    let links = netns_kit::link::list(&mut nl).map_err(|e| LabError::Topology(e.to_string()))?;
    drop(nl);
    if links.iter().any(|l| l.name != "lo") {
        return Ok(false);
    }
    ns.delete().map_err(|e| LabError::Topology(e.to_string()))?;
    Ok(true)
}

/// The alias of interface `ifname` in the root namespace: `None` if there is no such link.
fn host_link_alias(ifname: &str) -> Result<Option<Option<String>>, LabError> {
    let root = Netns::current_process().map_err(|e| LabError::Topology(e.to_string()))?;
    let mut nl = root
        .netlink()
        .map_err(|e| LabError::Topology(e.to_string()))?;
    let link =
        netns_kit::link::by_name(&mut nl, ifname).map_err(|e| LabError::Topology(e.to_string()))?;
    Ok(link.map(|l| l.alias))
}

/// Waits (at most `limit`) until no recorded host link is left. A namespace's interfaces go
/// after its last reference, in the kernel's own time: a host link the driver had created but
/// not yet tagged (it is deleted with the router's namespace) may outlive `destroy` by a
/// moment. The name of one still there at the end, if any.
fn wait_host_links_gone(found: &Found, limit: Duration) -> Option<String> {
    let until = std::time::Instant::now() + limit;
    loop {
        let present = found
            .host_links
            .iter()
            .find(|ifname| matches!(host_link_alias(ifname), Ok(Some(_))))
            .cloned();
        match present {
            None => return None,
            Some(ifname) if std::time::Instant::now() >= until => return Some(ifname),
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Deletes the host link (and with it the host route) when it is still there and carries one
/// of the lab's run ids: normally it goes with the router's namespace already. True if removed.
fn remove_host_link(found: &Found) -> Result<bool, LabError> {
    let mut removed = false;
    for ifname in &found.host_links {
        let root = Netns::current_process().map_err(|e| LabError::Topology(e.to_string()))?;
        let mut nl = root
            .netlink()
            .map_err(|e| LabError::Topology(e.to_string()))?;
        let Some(link) = netns_kit::link::by_name(&mut nl, ifname)
            .map_err(|e| LabError::Topology(e.to_string()))?
        else {
            continue;
        };
        if found.owns(link.alias.as_deref()) {
            netns_kit::link::delete(&mut nl, link.index)
                .map_err(|e| LabError::Topology(format!("delete host link {ifname}: {e}")))?;
            removed = true;
        }
    }
    Ok(removed)
}
