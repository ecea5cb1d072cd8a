//! The state file of a named run: `/run/netns-kit/<name>.json`. It records the run id, the
//! owner (pid + start time, so a reused pid is not mistaken for the owner), whether the run
//! outlives its owner, what was created, and what was declared (for `status`).
//!
//! Crash consistency: the file is written (temporary file, fsync, atomic rename, fsync of
//! the directory; later rewrites atomic but not fsync'd, see [`RunState::write`]) BEFORE
//! the first object of the run exists, listing every name the run is
//! about to create; the objects themselves carry the run id (link aliases, a tagged `lo`,
//! a tagged mount point under /run/netns). Whatever moment a SIGKILL hits, `gc` finds the
//! run here and can prove each object it finds is this run's. Every write happens under the
//! run's lock ([`RunLock`], flock on `<name>.lock`), held for the whole of an apply,
//! destroy or gc of that run.
//!
//! [`RunState::phase`] is the one classification `list`, `status` and `gc` share.
//!
//! Anonymous runs (tests) have no state file: what they create dies with their owner,
//! except a namespace a process inside keeps alive, whose `lo` names the run and its owner
//! (see [`crate::runs::gc`]).

use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where state files live.
pub const STATE_DIR: &str = "/run/netns-kit";

/// The process that applied a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Its pid.
    pub pid: u32,
    /// Its start time (clock ticks after boot, field 22 of `/proc/<pid>/stat`).
    pub start_time: u64,
}

impl Owner {
    /// The calling process.
    pub fn current() -> Result<Owner> {
        let pid = std::process::id();
        let start_time = start_time_of(pid).ok_or_else(|| Error::State {
            path: PathBuf::from("/proc/self/stat"),
            detail: "cannot read this process's start time".to_string(),
        })?;
        Ok(Owner { pid, start_time })
    }

    /// Whether this exact process (same pid, same start time) is still running.
    pub fn is_alive(&self) -> bool {
        start_time_of(self.pid) == Some(self.start_time)
    }
}

/// This boot's id (a random UUID the kernel picks at boot), if readable.
pub fn current_boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Field 22 (starttime) of /proc/<pid>/stat; None if the process is gone.
fn start_time_of(pid: u32) -> Option<u64> {
    crate::procfs::Stat::of(pid).map(|s| s.start_time)
}

/// A namespace of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsRecord {
    /// Plan key ("fabric", the router, a node).
    pub key: String,
    /// Name under /run/netns.
    pub name: String,
    /// Inode once created (identifies it even if the name were reused).
    pub inode: Option<u64>,
}

/// A link the run declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// Namespace key.
    pub ns: String,
    /// Interface name.
    pub ifname: String,
}

/// An address the run declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrRecord {
    /// Namespace key.
    pub ns: String,
    /// Interface name.
    pub ifname: String,
    /// Address.
    pub ip: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

/// A route the run declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    /// Namespace key.
    pub ns: String,
    /// Destination (None = default).
    pub dest: Option<(IpAddr, u8)>,
    /// Gateway.
    pub via: Option<IpAddr>,
}

/// An nftables table the run declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRecord {
    /// Namespace key.
    pub ns: String,
    /// Table name (family inet).
    pub table: String,
}

/// What the run declared, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declared {
    /// Links (all expected up).
    pub links: Vec<LinkRecord>,
    /// Addresses.
    pub addresses: Vec<AddrRecord>,
    /// Routes.
    pub routes: Vec<RouteRecord>,
    /// nftables tables.
    pub tables: Vec<TableRecord>,
}

/// One named run, as recorded on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// The run's name (the namespace prefix).
    pub name: String,
    /// Its run id (also in every link alias: `netns-kit:<id>`).
    pub run_id: String,
    /// The topology's name.
    pub topology: String,
    /// The process that applied it.
    pub owner: Owner,
    /// True if it stays up after the owner exits (CLI/lab); once complete, gc never
    /// touches it.
    pub persistent: bool,
    /// True once apply finished.
    pub complete: bool,
    /// The process tearing the run down (`destroy`), recorded before it removes anything:
    /// if it dies mid-way, the run is garbage and the next `destroy` or `gc` finishes.
    #[serde(default)]
    pub destroying: Option<Owner>,
    /// Seconds since the Unix epoch when apply started.
    pub created_unix: u64,
    /// The kernel's boot id when apply started (/proc/sys/kernel/random/boot_id). After a
    /// reboot nothing the run made can exist, whatever its phase said: it is garbage.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// Namespaces, in creation order.
    pub namespaces: Vec<NsRecord>,
    /// The host link's name in the root namespace (lab mode), if any.
    pub host_link: Option<String>,
    /// What was declared.
    pub declared: Declared,
}

impl RunState {
    /// The state file of run `name` under `dir`.
    pub fn path(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.json"))
    }

    /// The temporary file [`RunState::write`] renames into place.
    pub fn temp_path(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!(".{name}.json.tmp"))
    }

    /// Write atomically under `dir`: temporary file, rename over the old file; the first
    /// write (a new file) is also durable: fsync of the file before the rename and of the
    /// directory after it. A reader or a killed process sees the old file or the new one,
    /// never a torn one; after a power loss the first write is there (a later one may not
    /// be: the run is dead by its boot id either way). Only the holder of the run's `lock`
    /// writes (the temporary file's name is the run's, not the process's).
    pub fn write(&self, dir: &Path, lock: &RunLock) -> Result<PathBuf> {
        let path = RunState::path(dir, &self.name);
        if lock.path != RunLock::path(dir, &self.name) {
            return Err(Error::State {
                path,
                detail: format!("written under the lock {}", lock.path.display()),
            });
        }
        let tmp = RunState::temp_path(dir, &self.name);
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::State {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let write = || -> std::io::Result<()> {
            let new = !path.exists();
            let mut f = File::create(&tmp)?;
            f.write_all(&text)?;
            // Only the first write is made durable (file, then the new name): it lists
            // every name the run is about to create, which is what `gc` needs after any
            // crash. A rewrite (complete, destroying) replaces the file atomically without
            // fsync: against a killed process the rename is enough (the page cache is
            // shared), and after a power loss every run is dead by its boot id, so the old
            // version serves `gc` as well as the new one. Two fsyncs fewer per apply and
            // destroy (each ~5-15 ms on a disk-backed /run).
            if new {
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &path)?;
            if new {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| Error::io("write state file", path.display().to_string(), e))?;
        Ok(path)
    }

    /// What the run is doing now; `list`, `status` and `gc` all decide by this.
    pub fn phase(&self) -> Phase {
        if self.boot_id.is_some() && self.boot_id != current_boot_id() {
            return Phase::Dead {
                reason: DeadReason::PreviousBoot,
            };
        }
        if let Some(d) = &self.destroying {
            return if d.is_alive() {
                Phase::Destroying { pid: d.pid }
            } else {
                Phase::Dead {
                    reason: DeadReason::DestroyInterrupted,
                }
            };
        }
        match (self.complete, self.persistent, self.owner.is_alive()) {
            (false, _, true) => Phase::Applying {
                pid: self.owner.pid,
            },
            (false, _, false) => Phase::Dead {
                reason: DeadReason::ApplyInterrupted,
            },
            (true, true, _) => Phase::Up,
            (true, false, true) => Phase::Owned {
                pid: self.owner.pid,
            },
            (true, false, false) => Phase::Dead {
                reason: DeadReason::OwnerExited,
            },
        }
    }

    /// Read the state file at `path`.
    pub fn read(path: &Path) -> Result<RunState> {
        let text = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                kind: "run",
                name: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            },
            _ => Error::io("read state file", path.display().to_string(), e),
        })?;
        serde_json::from_slice(&text).map_err(|e| Error::State {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// Read the state of run `name` under `dir`.
    pub fn load(dir: &Path, name: &str) -> Result<RunState> {
        crate::netns::check_name(name)?;
        RunState::read(&RunState::path(dir, name))
    }

    /// Every state file under `dir` (unreadable ones are returned as errors).
    pub fn all(dir: &Path) -> Result<Vec<(PathBuf, Result<RunState>)>> {
        Ok(runs(dir)?
            .into_iter()
            .filter_map(|r| r.state.map(|st| (RunState::path(dir, &r.name), st)))
            .collect())
    }

    /// Remove the state file of this run under `dir`, its temporary file and its lock file
    /// (absent is fine). The caller holds `lock`, which is released with it.
    pub fn remove(&self, dir: &Path, lock: RunLock) -> Result<()> {
        remove_files(dir, &self.name, lock)
    }
}

/// The files of run `name` under `dir` that exist: state, temporary state, lock and
/// temporary lock files.
pub fn files_of(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut files = vec![
        RunState::path(dir, name),
        RunState::temp_path(dir, name),
        RunLock::path(dir, name),
    ];
    let prefix = format!(".{name}.lock-");
    if let Ok(rd) = std::fs::read_dir(dir) {
        files.extend(
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path()),
        );
    }
    files.retain(|p| p.exists());
    files
}

/// Remove the state, temporary and lock files of run `name` (the caller holds `lock`).
pub fn remove_files(dir: &Path, name: &str, lock: RunLock) -> Result<()> {
    let mut paths = vec![RunState::path(dir, name), RunState::temp_path(dir, name)];
    paths.extend(stale_lock_temps(dir, name));
    for path in paths {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::io(
                    "remove state file",
                    path.display().to_string(),
                    e,
                ))
            }
        }
    }
    lock.remove()
}

/// What a recorded run is doing, from its state file and whether the processes named there
/// still run. The single classification behind `list`, `status` and `gc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// `apply` is still running (the owner is alive, the run is not complete).
    Applying {
        /// The applying process.
        pid: u32,
    },
    /// Complete and persistent: a live lab, whether or not its owner still runs.
    Up,
    /// Complete, not persistent, its owner still runs (a test or library user).
    Owned {
        /// The owner.
        pid: u32,
    },
    /// `destroy` is running.
    Destroying {
        /// The destroying process.
        pid: u32,
    },
    /// Garbage: `gc` removes it.
    Dead {
        /// Why.
        reason: DeadReason,
    },
}

impl Phase {
    /// True when `gc` removes the run.
    pub fn is_garbage(&self) -> bool {
        matches!(self, Phase::Dead { .. })
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Applying { pid } => write!(f, "applying (pid {pid})"),
            Phase::Up => f.write_str("up"),
            Phase::Owned { pid } => write!(f, "up (owned by pid {pid})"),
            Phase::Destroying { pid } => write!(f, "destroying (pid {pid})"),
            Phase::Dead { reason } => {
                write!(f, "dead run ({reason}): `netns-kit gc` removes it")
            }
        }
    }
}

/// Why a run is garbage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    /// The applying process died before the run was complete (persistent or not).
    ApplyInterrupted,
    /// A complete, non-persistent run whose owner exited without tearing it down.
    OwnerExited,
    /// The destroying process died mid-way.
    DestroyInterrupted,
    /// It was applied before the machine last booted: its kernel objects died with that
    /// boot, only files are left.
    PreviousBoot,
    /// Only a lock or temporary file exists and no process holds the lock: the run died
    /// before its state file was first written, so nothing else exists.
    NothingRecorded,
}

impl std::fmt::Display for DeadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeadReason::ApplyInterrupted => "apply was interrupted",
            DeadReason::OwnerExited => "its owner exited",
            DeadReason::DestroyInterrupted => "destroy was interrupted",
            DeadReason::NothingRecorded => "killed before anything was created",
            DeadReason::PreviousBoot => "applied before the last reboot",
        })
    }
}

/// One run found under the state directory: its state file (if there is one) and phase.
#[derive(Debug)]
pub struct RunEntry {
    /// The run's name.
    pub name: String,
    /// Its state file, read; `None` when only a lock or temporary file exists.
    pub state: Option<Result<RunState>>,
    /// Its phase; `None` when the state file is unreadable (then nothing is proven and
    /// nothing is touched).
    pub phase: Option<Phase>,
}

/// Every run under `dir`: one entry per name that has a state, temporary or lock file,
/// sorted by name.
pub fn runs(dir: &Path) -> Result<Vec<RunEntry>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir.display().to_string(), e)),
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|f| {
            let n = f
                .strip_suffix(".json")
                .filter(|n| !n.starts_with('.'))
                .or_else(|| f.strip_suffix(".lock"))
                .or_else(|| {
                    f.strip_prefix('.')
                        .and_then(|f| f.strip_suffix(".json.tmp"))
                })
                .or_else(|| {
                    let f = f.strip_prefix('.')?;
                    f.rfind(".lock-").map(|i| &f[..i])
                })?;
            crate::netns::check_name(n).ok().map(|()| n.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .map(|name| {
            let path = RunState::path(dir, &name);
            let (state, phase) = if path.exists() {
                let st = RunState::read(&path);
                let phase = st.as_ref().ok().map(RunState::phase);
                (Some(st), phase)
            } else {
                let phase = match RunLock::holder(dir, &name) {
                    Some(pid) => Phase::Applying { pid },
                    _ => Phase::Dead {
                        reason: DeadReason::NothingRecorded,
                    },
                };
                (None, Some(phase))
            };
            RunEntry { name, state, phase }
        })
        .collect())
}

/// The lock of one run name: an exclusive flock on `<dir>/<name>.lock`, held by `apply`
/// for its whole duration and by `destroy` and `gc` while they remove the run. The kernel
/// releases it when the holder dies, however it dies; who holds it is read from
/// /proc/locks, so looking never takes it.
///
/// A lock file is born locked: it is created under a private temporary name
/// (`.<name>.lock-<pid>-<n>`), locked, then hard-linked into place. So an unlocked lock
/// file with no state file next to it is always a leftover of a dead process, never a run
/// starting up.
#[derive(Debug)]
pub struct RunLock {
    file: Flock<File>,
    path: PathBuf,
}

impl RunLock {
    /// The lock file of run `name` under `dir`.
    pub fn path(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.lock"))
    }

    /// Take the lock if no other process holds it: `Ok(None)` when one does.
    pub fn try_acquire(dir: &Path, name: &str) -> Result<Option<RunLock>> {
        RunLock::acquire_within(dir, name, Duration::ZERO)
    }

    /// Take the lock, waiting up to `wait` for its holder to finish: `Ok(None)` if it
    /// still holds it then.
    pub fn acquire_within(dir: &Path, name: &str, wait: Duration) -> Result<Option<RunLock>> {
        /// Between two attempts while waiting.
        const POLL: Duration = Duration::from_millis(10);
        static TEMPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        crate::netns::check_name(name)?;
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("create", dir.display().to_string(), e))?;
        let path = RunLock::path(dir, name);
        let io = |e| Error::io("lock", path.display().to_string(), e);
        let deadline = Instant::now() + wait;
        loop {
            let file = match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let n = TEMPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let tmp = dir.join(format!(".{name}.lock-{}-{n}", std::process::id()));
                    let f = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(&tmp)
                        .map_err(io)?;
                    let file = Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| {
                        let _ = std::fs::remove_file(&tmp);
                        io(e.into())
                    })?;
                    crate::fault::point(&format!("lock of run {name}: under its temporary name"));
                    let linked = std::fs::hard_link(&tmp, &path);
                    let _ = std::fs::remove_file(&tmp);
                    match linked {
                        Ok(()) => return Ok(Some(RunLock { file, path })),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(io(e)),
                    }
                }
                Err(e) => return Err(io(e)),
            };
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(file) => {
                    // The holder before us may have removed the file while we opened it:
                    // a lock on an unlinked inode protects nothing. Retry on the new one.
                    let same = match (file.metadata(), std::fs::metadata(&path)) {
                        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                        _ => false,
                    };
                    if same {
                        return Ok(Some(RunLock { file, path }));
                    }
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    std::thread::sleep(POLL);
                }
                Err((_, e)) => return Err(io(e.into())),
            }
        }
    }

    /// The pid of the process holding the lock of run `name` right now, if any.
    pub fn holder(dir: &Path, name: &str) -> Option<u32> {
        flock_holder(&RunLock::path(dir, name))
    }

    /// Remove the lock file, then release the lock (a waiter then finds the file gone and
    /// retries on a fresh one).
    pub fn remove(self) -> Result<()> {
        let RunLock { file, path } = self;
        let removed = match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove lock file", path.display().to_string(), e)),
        };
        drop(file);
        removed
    }
}

/// The pid holding a flock on the file at `path`, from /proc/locks (without taking it).
/// Matched by device and inode; by inode alone where the filesystem's stat device differs
/// from the one /proc/locks prints (btrfs subvolumes, overlayfs).
fn flock_holder(path: &Path) -> Option<u32> {
    let meta = std::fs::metadata(path).ok()?;
    let dev = format!(
        "{:02x}:{:02x}:{}",
        libc::major(meta.dev()),
        libc::minor(meta.dev()),
        meta.ino()
    );
    let ino = format!(":{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let holders: Vec<(u32, bool)> = locks
        .lines()
        .filter_map(|l| {
            // "1: FLOCK  ADVISORY  WRITE 29220 fe:00:5375254 0 EOF"; waiters have "->".
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [_, "FLOCK", _, _, pid, id, ..] if id.ends_with(&ino) => {
                    Some((pid.parse().ok()?, *id == dev))
                }
                _ => None,
            }
        })
        .collect();
    holders
        .iter()
        .find(|(_, exact)| *exact)
        .or(holders.first())
        .map(|(pid, _)| *pid)
}

/// Temporary lock files of run `name` (`.<name>.lock-<pid>-<n>`) no process holds: left
/// by a process killed while creating the lock file.
fn stale_lock_temps(dir: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!(".{name}.lock-");
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .filter(|p| flock_holder(p).is_none())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_its_own_live_owner_and_a_changed_start_time_is_not() {
        let me = Owner::current().unwrap();
        assert!(me.is_alive());
        let impostor = Owner {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!impostor.is_alive());
    }
}

#[cfg(test)]
mod phase_tests {
    use super::*;

    fn state(complete: bool, persistent: bool, owner: Owner) -> RunState {
        RunState {
            name: "t".to_string(),
            run_id: "0123abcd".to_string(),
            topology: "t".to_string(),
            owner,
            persistent,
            complete,
            destroying: None,
            created_unix: 0,
            boot_id: current_boot_id(),
            namespaces: Vec::new(),
            host_link: None,
            declared: Declared::default(),
        }
    }

    #[test]
    fn an_incomplete_run_whose_apply_died_is_garbage_even_if_persistent() {
        let me = Owner::current().unwrap();
        let dead = Owner {
            start_time: me.start_time + 1,
            ..me
        };
        let garbage = |c, p, o| state(c, p, o).phase().is_garbage();
        assert!(garbage(false, true, dead));
        assert!(garbage(false, false, dead));
        assert!(garbage(true, false, dead));
        assert!(
            !garbage(true, true, dead),
            "a complete persistent run is a live lab"
        );
        assert!(!garbage(false, true, me), "still applying");
        assert!(!garbage(true, false, me), "owned");
        let mut st = state(true, true, dead);
        st.destroying = Some(dead);
        assert_eq!(
            st.phase(),
            Phase::Dead {
                reason: DeadReason::DestroyInterrupted
            }
        );
        st.destroying = Some(me);
        assert_eq!(st.phase(), Phase::Destroying { pid: me.pid });
        // Whatever it says, a run from before the last boot is garbage.
        let mut old = state(true, true, me);
        old.boot_id = Some("00000000-0000-0000-0000-000000000000".to_string());
        assert_eq!(
            old.phase(),
            Phase::Dead {
                reason: DeadReason::PreviousBoot
            }
        );
        assert_eq!(
            serde_json::to_value(st.phase()).unwrap()["phase"],
            "destroying"
        );
        assert_eq!(
            serde_json::to_value(Phase::Dead {
                reason: DeadReason::ApplyInterrupted
            })
            .unwrap(),
            serde_json::json!({"phase": "dead", "reason": "apply_interrupted"})
        );
    }
}
