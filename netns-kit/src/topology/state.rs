//! The state file of a named run: /run/netns-kit/<name>.json. It records the run id, the
//! owner (pid + start time, so a reused pid is not mistaken for the owner), whether the run
//! outlives its owner, what was created, and what was declared (for `status`).
//!
//! It is written before the first namespace is created (so `gc` can find the leftovers of a
//! run killed mid-apply) and again when apply completes.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where state files live.
pub const STATE_DIR: &str = "/run/netns-kit";

/// The process that applied a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Its pid.
    pub pid: u32,
    /// Its start time (clock ticks after boot, field 22 of /proc/<pid>/stat).
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

/// Field 22 (starttime) of /proc/<pid>/stat; None if the process is gone.
fn start_time_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts with field 3 (state); starttime is field 22.
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
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
    /// True if it stays up after the owner exits (CLI/lab); gc never touches it.
    pub persistent: bool,
    /// True once apply finished.
    pub complete: bool,
    /// Seconds since the Unix epoch when apply started.
    pub created_unix: u64,
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

    /// Write atomically (temporary file + rename) under `dir`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("create", dir.display().to_string(), e))?;
        let path = RunState::path(dir, &self.name);
        let tmp = dir.join(format!(".{}.json.tmp-{}", self.name, std::process::id()));
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::State {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            // No fsync: the rename alone makes the switch atomic for readers, and what the
            // file describes (namespaces) does not survive a crash anyway. Two fsyncs per
            // apply were most of a small named run's overhead.
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| Error::io("write state file", path.display().to_string(), e))?;
        Ok(path)
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
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", dir.display().to_string(), e)),
        };
        let mut paths: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        paths.sort();
        Ok(paths
            .into_iter()
            .map(|p| {
                let st = RunState::read(&p);
                (p, st)
            })
            .collect())
    }

    /// Remove the state file of this run under `dir` (absent is fine).
    pub fn remove(&self, dir: &Path) -> Result<()> {
        let path = RunState::path(dir, &self.name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(
                "remove state file",
                path.display().to_string(),
                e,
            )),
        }
    }
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
