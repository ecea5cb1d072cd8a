//! The runs recorded on disk, as the CLI sees them: [`list`], [`destroy_by_name`] (tearing
//! down only what is provably the run's), [`exec_in`]. Applying is [`super::live`]; `gc` is
//! [`super::gc`]; the proofs of ownership are [`super::ownership`].

use std::collections::HashSet;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fault;
use crate::netns::{self, Netns};
use crate::runid::RunId;
use crate::runs::live::{busy_detail, delete_host_link, LOCK_WAIT};
use crate::runs::ownership::{pinned_namespaces, recorded_entries, Recorded};
use crate::runs::state::{Owner, Phase, RunLock, RunState, STATE_DIR};

/// A run recorded on disk, as `netns-kit list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    /// The run's name.
    pub name: String,
    /// Its run id (empty when nothing was recorded).
    pub run_id: String,
    /// The topology's name (empty when nothing was recorded).
    pub topology: String,
    /// Owner pid (0 when nothing was recorded).
    pub owner_pid: u32,
    /// Whether the owner is still running.
    pub owner_alive: bool,
    /// Whether it outlives its owner.
    pub persistent: bool,
    /// Whether apply completed.
    pub complete: bool,
    /// Number of namespaces.
    pub namespaces: usize,
    /// Seconds since the Unix epoch when it was applied.
    pub created_unix: u64,
    /// What it is doing; [`Phase::Dead`] exactly when `gc` removes it.
    pub phase: Phase,
}

/// Every run recorded under /run/netns-kit.
pub fn list() -> Result<Vec<RunSummary>> {
    list_in(Path::new(STATE_DIR))
}

/// Every run recorded under `dir` (a run whose state file is unreadable is left out, as
/// `gc` leaves it alone).
pub fn list_in(dir: &Path) -> Result<Vec<RunSummary>> {
    Ok(crate::runs::state::runs(dir)?
        .into_iter()
        .filter_map(|r| {
            let phase = r.phase?;
            Some(match r.state {
                Some(Ok(st)) => RunSummary {
                    owner_alive: st.owner.is_alive(),
                    name: st.name,
                    run_id: st.run_id,
                    topology: st.topology,
                    owner_pid: st.owner.pid,
                    persistent: st.persistent,
                    complete: st.complete,
                    namespaces: st.namespaces.len(),
                    created_unix: st.created_unix,
                    phase,
                },
                _ => RunSummary {
                    name: r.name,
                    run_id: String::new(),
                    topology: String::new(),
                    owner_pid: 0,
                    owner_alive: false,
                    persistent: false,
                    complete: false,
                    namespaces: 0,
                    created_unix: 0,
                    phase,
                },
            })
        })
        .collect())
}

/// Tear down the run recorded as `name` (processes inside, namespaces, host link, state),
/// waiting up to [`LOCK_WAIT`] for an `apply` of that name still running to finish.
pub fn destroy_by_name(name: &str) -> Result<()> {
    destroy_by_name_in(Path::new(STATE_DIR), name)
}

/// [`destroy_by_name`] with state files under `dir`.
pub fn destroy_by_name_in(dir: &Path, name: &str) -> Result<()> {
    crate::netns::check_name(name)?;
    if crate::runs::state::files_of(dir, name).is_empty() {
        return Err(Error::NotFound {
            kind: "run",
            name: name.to_string(),
        });
    }
    let lock = RunLock::acquire_within(dir, name, LOCK_WAIT)?.ok_or_else(|| Error::Busy {
        name: name.to_string(),
        detail: busy_detail(dir, name),
    })?;
    destroy_locked(dir, name, lock)
}

/// [`destroy_by_name_in`] for a caller that already holds the run's lock.
///
/// Crash-consistent: first the state file records this process as destroying the run
/// (so if it dies, the run is garbage and the next `destroy` or `gc` finishes the job),
/// then processes inside are killed, the host link and the namespaces removed, and last
/// the state and lock files.
pub fn destroy_locked(dir: &Path, name: &str, lock: RunLock) -> Result<()> {
    let mut st = match RunState::load(dir, name) {
        Ok(st) => st,
        Err(e) if RunState::path(dir, name).exists() => return Err(e),
        Err(_) => {
            // No state file: only the lock and temporary files of a run that died before
            // recording anything (nothing else of it exists). Removing them destroys it.
            return crate::runs::state::remove_files(dir, name, lock);
        }
    };
    st.destroying = Some(Owner::current()?);
    st.write(dir, &lock)?;
    fault::point("destroy: intent recorded");
    let leftovers = remove_recorded(&st, fault::point);
    if leftovers.is_empty() {
        st.remove(dir, lock)
    } else {
        Err(Error::State {
            path: RunState::path(dir, name),
            detail: format!("destroy left behind: {}", leftovers.join("; ")),
        })
    }
}

/// Remove what a state file records, and only what is provably this run's: namespaces at
/// the recorded names whose `lo` carries the run's alias, mount points under /run/netns never mounted but tagged with the run id (or
/// carrying it in their temporary name), a host link carrying the run's alias (its routes
/// go with it). `progress` is called between the phases (the crash points of destroy).
pub(crate) fn remove_recorded(st: &RunState, mut progress: impl FnMut(&str)) -> Vec<String> {
    let mut leftovers = Vec::new();
    let Ok(run_id) = RunId::parse(&st.run_id) else {
        return vec![format!("run id {:?} is not netns-kit's", st.run_id)];
    };
    // Deleting the host link waits for the kernel's RCU grace periods (about 20 ms, more on a
    // busy machine): it runs on a thread of its own while the namespaces are proven ours and
    // their processes killed, and is joined before the crash point that says it is gone.
    let host_link = st.host_link.clone().map(|host| {
        let id = run_id.clone();
        let name = host.clone();
        let thread = std::thread::Builder::new()
            .name("nk-host-link".to_string())
            .spawn(move || delete_host_link(&name, &id));
        (host, thread)
    });
    let mut ours = Vec::new();
    for (rec, found) in st.namespaces.iter().zip(recorded_entries(st, &run_id)) {
        match found {
            Recorded::Ours(ns) => ours.push(ns),
            Recorded::UnmountedOurs => {
                if let Err(e) = netns::remove_unmounted(&rec.name, &run_id) {
                    leftovers.push(format!("mount point {}: {e}", rec.name));
                }
            }
            Recorded::NotOurs => {}
        }
    }
    fault::timing("destroy: namespaces proven ours");
    for f in netns::mount_point_temps(&run_id) {
        if let Err(e) = netns::remove_mount_point_temp(&f) {
            leftovers.push(format!("mount point {f}: {e}"));
        }
    }
    let mut inodes: HashSet<u64> = ours.iter().map(Netns::inode).collect();
    // Namespaces of the run that lost their name (`ip netns delete` while a service ran
    // inside) but are pinned by a process: found by their tagged `lo`.
    inodes.extend(
        pinned_namespaces(&run_id, &inodes)
            .into_iter()
            .map(|(i, _)| i),
    );
    fault::timing("destroy: pinned namespaces found");
    netns::kill_processes_in(&inodes);
    fault::timing("destroy: processes killed");
    if let Some((host, thread)) = host_link {
        let deleted = match thread {
            Ok(t) => t.join().unwrap_or_else(|_| {
                Err(Error::Invalid {
                    kind: "host link removal",
                    value: host.clone(),
                    expected: "a thread that does not panic",
                })
            }),
            // No thread to be had: delete it here.
            Err(_) => delete_host_link(&host, &run_id),
        };
        if let Err(e) = deleted {
            leftovers.push(format!("host link {host}: {e}"));
        }
    }
    progress("destroy: processes killed, host link removed");
    let rest = ours.split_off(ours.len() / 2);
    for (label, e) in Netns::delete_all(ours) {
        leftovers.push(format!("namespace {label}: {e}"));
    }
    progress("destroy: first half of the namespaces removed");
    for (label, e) in Netns::delete_all(rest) {
        leftovers.push(format!("namespace {label}: {e}"));
    }
    progress("destroy: all namespaces removed");
    leftovers
}

/// The namespace of node `node` in the run recorded as `name` (for `netns-kit exec`).
pub fn exec_in(name: &str, node: &str) -> Result<Netns> {
    exec_in_dir(Path::new(STATE_DIR), name, node)
}

/// [`exec_in`] with state files under `dir`.
pub fn exec_in_dir(dir: &Path, name: &str, node: &str) -> Result<Netns> {
    let st = RunState::load(dir, name)?;
    let rec = st
        .namespaces
        .iter()
        .find(|r| r.key == node)
        .ok_or_else(|| Error::NotFound {
            kind: "node",
            name: format!("{node} (run {name})"),
        })?;
    Netns::open(&rec.name)
}
