//! `gc`: remove the leftovers of dead runs and nothing else.
//!
//! Which runs are dead is decided by [`RunState::phase`] — the same function `list` shows —
//! so `list` marks a run "dead" exactly when `gc` removes it: an apply or destroy whose
//! process died, or a complete non-persistent run whose owner exited. A complete persistent
//! run is a live lab, whether or not the process that applied it still runs.
//!
//! Within a dead run, an object is removed only if it is provably that run's: a namespace
//! at a recorded name whose `lo` carries the run's alias (a recorded inode is no proof:
//! inode numbers are reused); a mount point under /run/netns never mounted but tagged with the run id (or
//! still under its temporary name, which carries the run id); a host link with the run's
//! alias. A look-alike name is never enough. Each run is collected under its lock, so a
//! concurrent `apply` or `destroy` of the same name is never raced.
//!
//! Anonymous runs (tests: namespaces held by file descriptor, no state file) die with
//! their owner unless a process inside keeps a namespace alive; such a namespace's `lo`
//! names the run and the owner (pid + start time), so gc finds it among the namespaces of
//! running processes and, the owner being provably dead, kills what pins it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::netns;
use crate::netns::Netns;
use crate::runid::RunId;
use crate::runs::live::host_link_is_ours;
use crate::runs::ownership::{orphan_of, pinned_namespaces, recorded_entries, Recorded};
use crate::runs::registry::remove_recorded;
use crate::runs::state::{self, RunLock, RunState, STATE_DIR};

/// Something gc found (and removed unless dry-running).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Leftover {
    /// A namespace of a dead run.
    Namespace {
        /// The run's name.
        run: String,
        /// The run id.
        run_id: String,
        /// Name under /run/netns.
        name: String,
    },
    /// A file under /run/netns a dead run created but never mounted a namespace on.
    MountPoint {
        /// The run's name.
        run: String,
        /// Its path.
        path: PathBuf,
    },
    /// A namespace of a dead run that lost its /run/netns name but is kept alive by
    /// processes inside (found by its tagged `lo`); gc kills them, which frees it.
    PinnedNamespace {
        /// The run's name.
        run: String,
        /// The namespace's inode.
        inode: u64,
        /// The processes inside.
        pids: Vec<i32>,
    },
    /// A namespace of an anonymous run (a test's, held by file descriptor, no state file)
    /// whose owner died while processes inside kept it alive: its `lo` names the run and
    /// the dead owner. gc kills the processes, which frees it and everything in it.
    OrphanNamespace {
        /// The run id.
        run_id: String,
        /// The namespace's inode.
        inode: u64,
        /// The processes inside.
        pids: Vec<i32>,
    },
    /// The host link of a dead run (its host routes go with it).
    HostLink {
        /// The run's name.
        run: String,
        /// Interface name in the root namespace.
        ifname: String,
    },
    /// The state file (and lock file) of a dead run.
    StateFile {
        /// The run's name.
        run: String,
        /// Its path.
        path: PathBuf,
    },
}

impl std::fmt::Display for Leftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leftover::Namespace { run, run_id, name } => {
                write!(f, "namespace {name} (run {run}, id {run_id})")
            }
            Leftover::MountPoint { run, path } => {
                write!(f, "unmounted namespace file {} (run {run})", path.display())
            }
            Leftover::PinnedNamespace { run, inode, pids } => write!(
                f,
                "unnamed namespace net:[{inode}] kept alive by pids {pids:?} (run {run})"
            ),
            Leftover::OrphanNamespace {
                run_id,
                inode,
                pids,
            } => write!(
                f,
                "namespace net:[{inode}] of a dead anonymous run (id {run_id}) kept alive by pids {pids:?}"
            ),
            Leftover::HostLink { run, ifname } => write!(f, "host link {ifname} (run {run})"),
            Leftover::StateFile { run, path } => {
                write!(f, "state file {} (run {run})", path.display())
            }
        }
    }
}

/// Find (and unless `dry_run`, remove) the leftovers of dead runs under /run/netns-kit.
pub fn gc(dry_run: bool) -> Result<Vec<Leftover>> {
    gc_in(Path::new(STATE_DIR), dry_run)
}

/// [`gc`] with state files under `dir`.
pub fn gc_in(dir: &Path, dry_run: bool) -> Result<Vec<Leftover>> {
    let mut found = Vec::new();
    for entry in state::runs(dir)? {
        // An unreadable state file is not proof of anything: leave it alone.
        if !entry.phase.is_some_and(|p| p.is_garbage()) {
            continue;
        }
        let name = entry.name;
        // Collect under the run's lock; a run someone holds is being applied or destroyed.
        let lock = if dry_run {
            None
        } else {
            match RunLock::try_acquire(dir, &name)? {
                Some(l) => Some(l),
                None => continue,
            }
        };
        // Re-read under the lock: the run may have changed since it was listed.
        let st = match RunState::load(dir, &name) {
            Ok(st) if st.phase().is_garbage() => Some(st),
            Ok(_) => continue,
            Err(_) if RunState::path(dir, &name).exists() => continue,
            Err(_) => None,
        };
        let files = state::files_of(dir, &name)
            .into_iter()
            .map(|path| Leftover::StateFile {
                run: name.clone(),
                path,
            });
        match st {
            None => {
                // Died before its state file was first written: nothing else exists.
                found.extend(files);
                if let Some(lock) = lock {
                    state::remove_files(dir, &name, lock)?;
                }
            }
            Some(st) => {
                found.extend(leftovers_of(&st));
                found.extend(files);
                if let Some(lock) = lock {
                    if remove_recorded(&st, |_| {}).is_empty() {
                        st.remove(dir, lock)?;
                    }
                }
            }
        }
    }
    found.extend(orphans(dry_run));
    Ok(found)
}

/// Namespaces of dead anonymous runs that processes keep alive (their `lo` names the dead
/// owner); unless `dry_run`, their processes are killed, which frees them.
fn orphans(dry_run: bool) -> Vec<Leftover> {
    let root = Netns::current_process().map(|n| n.inode()).ok();
    let mut found = Vec::new();
    for (inode, pids) in netns::processes_by_namespace() {
        if Some(inode) == root {
            continue;
        }
        let ns = pids
            .iter()
            .find_map(|p| Netns::open_path(Path::new(&format!("/proc/{p}/ns/net"))).ok())
            .filter(|ns| ns.inode() == inode);
        let Some(run_id) = ns.as_ref().and_then(orphan_of) else {
            continue;
        };
        if !dry_run {
            netns::kill_processes_in(&HashSet::from([inode]));
        }
        found.push(Leftover::OrphanNamespace {
            run_id: run_id.to_string(),
            inode,
            pids,
        });
    }
    found
}

/// What of a dead run's recorded objects still exists and is provably its own.
fn leftovers_of(st: &RunState) -> Vec<Leftover> {
    let mut found = Vec::new();
    let Ok(run_id) = RunId::parse(&st.run_id) else {
        return found;
    };
    let mut named = HashSet::new();
    for (rec, entry) in st.namespaces.iter().zip(recorded_entries(st, &run_id)) {
        match entry {
            Recorded::Ours(ns) => {
                named.insert(ns.inode());
                found.push(Leftover::Namespace {
                    run: st.name.clone(),
                    run_id: st.run_id.clone(),
                    name: rec.name.clone(),
                })
            }
            Recorded::UnmountedOurs => found.push(Leftover::MountPoint {
                run: st.name.clone(),
                path: Path::new(netns::NETNS_RUN_DIR).join(&rec.name),
            }),
            Recorded::NotOurs => {}
        }
    }
    // Only if a recorded name is missing can a namespace of the run have lost its name.
    let pinned = if named.len() < st.namespaces.len() {
        pinned_namespaces(&run_id, &named)
    } else {
        Vec::new()
    };
    for (inode, pids) in pinned {
        found.push(Leftover::PinnedNamespace {
            run: st.name.clone(),
            inode,
            pids,
        });
    }
    for f in netns::mount_point_temps(&run_id) {
        found.push(Leftover::MountPoint {
            run: st.name.clone(),
            path: Path::new(netns::NETNS_RUN_DIR).join(f),
        });
    }
    if let Some(h) = st
        .host_link
        .as_ref()
        .filter(|h| host_link_is_ours(h, &run_id))
    {
        found.push(Leftover::HostLink {
            run: st.name.clone(),
            ifname: h.clone(),
        });
    }
    found
}
