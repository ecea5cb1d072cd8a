//! The lab's view of a live topology (netns-kit's `LiveTopology`): apply anonymous (tests) or
//! named and persistent (`lab up`, with the host link), hand out namespace handles, destroy.

use std::collections::BTreeMap;

use netns_kit::topology::Topology;

use crate::error::LabError;
use crate::ns::NsHandle;
use crate::state::LabState;

/// How the namespaces of a run are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Held by file descriptor only, no host link: test fixtures (parallel-safe).
    Anonymous,
    /// `<prefix>-<node>` under /run/netns, with the host link: `lab up`.
    Named {
        /// The lab's name.
        prefix: String,
    },
}

/// A topology applied for one run.
pub struct LiveLab {
    namespaces: BTreeMap<String, NsHandle>,
    names: BTreeMap<String, String>,
    host_link: Option<String>,
}

impl LiveLab {
    /// Applies `topology` for run `run_id`; on failure nothing is left behind.
    pub fn apply(topology: &Topology, mode: Mode, run_id: &str) -> Result<LiveLab, LabError> {
        let _ = (topology, mode, run_id);
        Err(LabError::Topology(
            "netns-kit's live topology is not available yet".into(),
        ))
    }

    /// Handles on every namespace: node names, the router's name and "fabric".
    pub fn namespaces(&self) -> Result<BTreeMap<String, NsHandle>, LabError> {
        Ok(self.namespaces.clone())
    }

    /// Namespace key → /run/netns name (named runs).
    pub fn namespace_names(&self) -> BTreeMap<String, String> {
        self.names.clone()
    }

    /// The host link in words, if the run has one.
    pub fn host_link_summary(&self) -> Option<String> {
        self.host_link.clone()
    }

    /// Leaves a named run up after this process exits (`lab down` destroys it by name).
    pub fn persist(self) {}

    /// Tears everything down and reports what could not be removed.
    pub fn destroy(self) -> Result<(), LabError> {
        Ok(())
    }
}

/// Destroys the named run `prefix` if it exists; true if something was removed.
pub fn destroy_named(prefix: &str) -> Result<bool, LabError> {
    let _ = prefix;
    Ok(false)
}

/// True while the namespaces recorded in `state` exist.
pub fn named_exists(state: &LabState) -> bool {
    !state.namespaces.is_empty()
        && state
            .namespaces
            .values()
            .all(|n| std::path::Path::new("/run/netns").join(n).exists())
}
