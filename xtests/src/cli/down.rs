//! `lab down`: stop every process, then remove every namespace, link, rule and the host link
//! and route, and check that nothing of the lab remains. Data (PostgreSQL's directory) stays
//! in the state directory for the next `up`; remove the directory to forget it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{attach, require_root, LabDir};
use crate::error::LabError;
use crate::live;
use crate::process::Process;
use crate::state::LabState;
use crate::topology_file;

/// Takes the lab down; reports what it removed and anything it could not.
pub fn run(lab: &LabDir) -> Result<(), LabError> {
    require_root()?;
    let state = LabState::load(&lab.dir)?;
    let mut stopped = 0;
    if let Some(state) = &state {
        match attach(lab, state) {
            Ok(mut stack) => {
                stopped = stack.pids().len();
                stack.stop_all();
            }
            Err(_) => {
                for (pid, start) in state.pids.values() {
                    if let Some(mut p) = Process::adopt(*pid, *start) {
                        p.stop(Signal::SIGTERM, Duration::from_secs(10));
                        stopped += 1;
                    }
                }
            }
        }
    }
    let names = namespace_names(lab, state.as_ref());
    let stray = kill_processes_in(&names);
    let removed = live::destroy_named(&lab.name)?;
    let left: Vec<&String> = names
        .iter()
        .filter(|n| Path::new("/run/netns").join(n).exists())
        .collect();
    LabState::remove(&lab.dir)?;
    if !left.is_empty() {
        return Err(LabError::Topology(format!(
            "namespaces still present after destroy: {}",
            left.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if state.is_none() && !removed && stray == 0 {
        println!("lab: nothing to take down (no lab named {:?})", lab.name);
    } else {
        println!(
            "lab: down — stopped {stopped} components{}, removed the namespaces, links, rules and the host route",
            if stray > 0 { format!(" and {stray} stray processes") } else { String::new() }
        );
        println!(
            "lab: data kept in {} (rm -rf it to start from scratch)",
            lab.dir.display()
        );
    }
    Ok(())
}

/// The lab's namespace names: from the state file, else derived from the topology file.
fn namespace_names(lab: &LabDir, state: Option<&LabState>) -> BTreeSet<String> {
    if let Some(s) = state {
        return s.namespaces.values().cloned().collect();
    }
    let Ok((_, topology)) = topology_file::load(&topology_file::shared_file(), 9) else {
        return BTreeSet::new();
    };
    let mut names: BTreeSet<String> = topology
        .nodes
        .iter()
        .map(|n| format!("{}-{}", lab.name, n.name))
        .collect();
    names.insert(format!("{}-fabric", lab.name));
    if let Some(r) = &topology.router {
        names.insert(format!("{}-{}", lab.name, r.name));
    }
    names
}

/// SIGTERM (then SIGKILL) to every process inside one of the named namespaces; how many.
fn kill_processes_in(names: &BTreeSet<String>) -> usize {
    let inodes: BTreeSet<u64> = names
        .iter()
        .filter_map(|n| std::fs::metadata(Path::new("/run/netns").join(n)).ok())
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .collect();
    let inside = || -> Vec<i32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::metadata(format!("/proc/{pid}/ns/net"))
                    .is_ok_and(|m| inodes.contains(&std::os::unix::fs::MetadataExt::ino(&m)))
            })
            .collect()
    };
    let found = inside();
    for pid in &found {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !inside().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in inside() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    found.len()
}
