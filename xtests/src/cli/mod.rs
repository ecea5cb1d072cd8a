//! The `lab` command: `up`, `down`, `status`, `logs`, `scale`, `backup`, `restore` — one file
//! per verb. The lab is named (namespaces `<name>-<node>` under /run/netns, so `ip netns exec`
//! works), its processes outlive the command, and `<dir>/state.json` remembers them.

pub mod backup;
pub mod bench;
pub mod down;
pub mod layout;
pub mod logs;
pub mod scale;
pub mod scenarios;
pub mod status;
pub mod summary;
pub mod up;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::LabError;
use crate::ns::NsHandle;
use crate::process::Lifetime;
use crate::stack::{SpawnFn, Stack, StackConfig};
use crate::state::LabState;

/// Where the lab lives and what it is called.
#[derive(Debug, Clone)]
pub struct LabDir {
    /// The state directory (logs, data, state.json), e.g. ./.lab.
    pub dir: PathBuf,
    /// The lab's name: namespace prefix, e.g. "lab".
    pub name: String,
}

impl LabDir {
    /// Creates the state directory if needed and returns its absolute form.
    pub fn ensure(dir: &Path, name: &str) -> Result<Self, LabError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| LabError::io(format!("create {}", dir.display()), e))?;
        let dir = std::fs::canonicalize(dir)
            .map_err(|e| LabError::io(format!("resolve {}", dir.display()), e))?;
        Ok(Self {
            dir,
            name: name.to_string(),
        })
    }

    /// Takes the lab's lock (`<dir>/lab.lock`, flock): one `up`, `down`, `scale` or `restore`
    /// at a time, so a `down` never half-removes a lab an `up` is still building. Held until
    /// the returned guard drops; the kernel releases it when its holder dies, even by SIGKILL,
    /// so a killed driver never leaves a stale lock. Refuses (never waits) when it is taken.
    pub fn lock(&self) -> Result<LabLock, LabError> {
        use nix::fcntl::{Flock, FlockArg};
        let path = self.dir.join("lab.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| LabError::io(format!("open {}", path.display()), e))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(LabLock { _lock: lock }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LabError::Invalid {
                what: "lab".into(),
                value: self.name.clone(),
                expected: format!(
                    "no other `lab up`, `down`, `scale` or `restore` running on it ({} is locked); wait for that one to finish",
                    path.display()
                ),
            }),
            Err((_, e)) => Err(LabError::io(format!("lock {}", path.display()), e.into())),
        }
    }

    /// The lab's saved state, or an error saying the lab is not up.
    pub fn state(&self) -> Result<LabState, LabError> {
        LabState::load(&self.dir)?.ok_or_else(|| LabError::Invalid {
            what: "lab state".into(),
            value: LabState::path(&self.dir).display().to_string(),
            expected: "a lab brought up with `just up`".into(),
        })
    }
}

/// Holds the lab's lock (see [`LabDir::lock`]) until dropped.
#[derive(Debug)]
pub struct LabLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Fails with [`LabError::NotRoot`] unless running as root.
pub fn require_root() -> Result<(), LabError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

/// Opens the named namespaces of a lab that is up.
pub fn open_namespaces(state: &LabState) -> Result<BTreeMap<String, NsHandle>, LabError> {
    state
        .namespaces
        .iter()
        .map(|(node, name)| {
            let path = Path::new("/run/netns").join(name);
            NsHandle::open(node.clone(), &path).map(|h| (node.clone(), h))
        })
        .collect()
}

/// The supervisor over a lab that is up, attached to its running processes.
pub fn attach(lab: &LabDir, state: &LabState) -> Result<Stack, LabError> {
    let namespaces = open_namespaces(state)?;
    let config = StackConfig {
        run_id: state.run_id.clone(),
        dir: lab.dir.clone(),
        ecomm: state.ecomm.clone(),
        lifetime: Lifetime::Detached,
        ephemeral: false,
        pinned: state.pinned.clone(),
    };
    let enabled = state
        .components
        .iter()
        .filter(|c| state.enabled.contains(&c.name))
        .cloned()
        .collect();
    let mut stack = Stack::new(config, namespaces, enabled)?;
    stack.adopt(&state.pids);
    stack.on_spawn(pid_recorder(lab, state));
    Ok(stack)
}

/// Records each spawned process in the lab's state file the moment it exists (atomically, see
/// [`LabState::save`]): a driver killed right after leaves a state naming the process. The
/// `spawned:<component>` fault point fires just before, the window `lab down` covers by
/// stopping every process inside the lab's namespaces.
fn pid_recorder(lab: &LabDir, state: &LabState) -> SpawnFn {
    let dir = lab.dir.clone();
    let journal = Mutex::new(state.clone());
    Box::new(move |name, pid, start_time| {
        fault_point(&format!("spawned:{name}"));
        let mut st = journal.lock().map_err(|_| LabError::Panicked {
            what: "recording a pid in the lab state".into(),
        })?;
        st.record_pid(&dir, name, pid, start_time)
    })
}

/// The environment variable naming a fault point at which the `lab` driver SIGKILLs itself
/// (a test hook). `lab up`: `intent` (state written, nothing applied), `applied` (topology
/// up, not yet marked so), `spawned:<component>` (process started, pid not yet recorded),
/// `ready:<component>`. `lab down`: `down:stopped` (processes gone, namespaces not),
/// `down:removed` (everything gone but the state file).
pub const FAULT_ENV: &str = "LAB_FAULT_AFTER";

/// Dies at once by SIGKILL (no cleanup, no unwinding: what a killed terminal does) when
/// [`FAULT_ENV`] names `point`; does nothing otherwise.
pub fn fault_point(point: &str) {
    if std::env::var(FAULT_ENV).is_ok_and(|p| p == point) {
        eprintln!("lab: {FAULT_ENV}={point}: SIGKILL");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
