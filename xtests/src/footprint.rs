//! What one lab run put on the machine, and what of it is still there after teardown.
//!
//! A run's footprint: its run id, the inodes of its namespaces, the processes it started and
//! its /run/netns names. After teardown [`Footprint::leftovers`] must be empty: no process in
//! (or holding) one of its namespaces, no process carrying its run id, no /run/netns entry,
//! no interface or nftables table in the host's namespace naming the run id.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::process::{processes_of_run, start_time};

/// Everything a run created that could outlive it.
#[derive(Debug, Clone, Default)]
pub struct Footprint {
    /// The run id.
    pub run_id: String,
    /// Inodes of the run's network namespaces.
    pub ns_inodes: BTreeSet<u64>,
    /// Processes started: (pid, start time).
    pub pids: Vec<(i32, u64)>,
    /// Names under /run/netns (named runs only).
    pub named: Vec<String>,
}

impl Footprint {
    /// Every trace of the run still present, one line each (empty = clean).
    pub fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (pid, start) in &self.pids {
            if start_time(*pid) == Some(*start) && !is_zombie(*pid) {
                found.push(format!("process {pid} still running"));
            }
        }
        for pid in processes_of_run(&self.run_id) {
            found.push(format!("process {pid} carries run id {}", self.run_id));
        }
        let live = live_inodes();
        for (pid, inode, how) in namespace_holders() {
            // A namespace number freed by this run may already belong to a newer live lab.
            if self.ns_inodes.contains(&inode) && !live.contains(&inode) {
                found.push(format!(
                    "process {pid} {how} namespace net:[{inode}] of the run"
                ));
            }
        }
        for name in &self.named {
            if std::path::Path::new("/run/netns").join(name).exists() {
                found.push(format!("/run/netns/{name} still exists"));
            }
        }
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.contains(&self.run_id) {
                    found.push(format!("/run/netns/{name} names the run"));
                }
            }
        }
        if let Ok(out) = std::process::Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
        {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if line.contains(&self.run_id) {
                    found.push(format!("host interface: {line}"));
                }
            }
        }
        if let Ok(out) = std::process::Command::new("nft")
            .args(["list", "tables"])
            .output()
        {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if line.contains(&self.run_id) {
                    found.push(format!("host nftables: {line}"));
                }
            }
        }
        found
    }
}

/// Namespace inodes of labs alive in this process (namespace numbers are reused once freed).
static LIVE: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

/// Records namespaces of a lab that is alive in this process.
pub fn register_live(inodes: &BTreeSet<u64>) {
    if let Ok(mut live) = LIVE.lock() {
        live.extend(inodes.iter().copied());
    }
}

/// Forgets namespaces of a lab that was torn down.
pub fn unregister_live(inodes: &BTreeSet<u64>) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|i| !inodes.contains(i));
    }
}

fn live_inodes() -> BTreeSet<u64> {
    LIVE.lock().map(|l| l.clone()).unwrap_or_default()
}

fn is_zombie(pid: i32) -> bool {
    u32::try_from(pid)
        .ok()
        .and_then(netns_kit::procfs::Stat::of)
        .is_some_and(|s| s.state == 'Z')
}

/// (pid, namespace inode, "is in" | "holds") for every process in or holding a namespace.
fn namespace_holders() -> Vec<(i32, u64, &'static str)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for pid in dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        if let Some(inode) = ns_inode_of_link(&format!("/proc/{pid}/ns/net")) {
            out.push((pid, inode, "is in"));
        }
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.filter_map(Result::ok) {
                if let Some(inode) = ns_inode_of_link(&fd.path().to_string_lossy()) {
                    out.push((pid, inode, "holds"));
                }
            }
        }
    }
    out
}

/// The inode of a "net:[4026532000]" symlink.
fn ns_inode_of_link(path: &str) -> Option<u64> {
    let target = std::fs::read_link(path).ok()?;
    let t = target.to_str()?;
    t.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}
