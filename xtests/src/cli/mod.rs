//! The `lab` command: `up`, `down`, `status`, `logs`, `scale`, `backup`, `restore` — one file
//! per verb. The lab is named (namespaces `<name>-<node>` under /run/netns, so `ip netns exec`
//! works), its processes outlive the command, and `<dir>/state.json` remembers them.

pub mod backup;
pub mod bench;
pub mod down;
pub mod layout;
pub mod logs;
pub mod scale;
pub mod status;
pub mod summary;
pub mod up;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::LabError;
use crate::ns::NsHandle;
use crate::process::Lifetime;
use crate::stack::{Stack, StackConfig};
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

    /// The lab's saved state, or an error saying the lab is not up.
    pub fn state(&self) -> Result<LabState, LabError> {
        LabState::load(&self.dir)?.ok_or_else(|| LabError::Invalid {
            what: "lab state".into(),
            value: LabState::path(&self.dir).display().to_string(),
            expected: "a lab brought up with `just up`".into(),
        })
    }
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
    };
    let enabled = state
        .components
        .iter()
        .filter(|c| state.enabled.contains(&c.name))
        .cloned()
        .collect();
    let mut stack = Stack::new(config, namespaces, enabled)?;
    stack.adopt(&state.pids);
    Ok(stack)
}
