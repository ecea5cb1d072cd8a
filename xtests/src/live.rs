//! The lab's view of a live topology (netns-kit's `LiveTopology`): apply anonymous (tests) or
//! named and persistent (`lab up`, with the host link), hand out namespace handles, destroy.

use std::collections::BTreeMap;

use netns_kit::topology::live::{self, ApplyOptions, LiveTopology};
use netns_kit::topology::state::{RunState, STATE_DIR};
use netns_kit::topology::{Naming, Plan, Topology};

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
    live: Option<LiveTopology>,
    namespaces: BTreeMap<String, NsHandle>,
    names: BTreeMap<String, String>,
    host_link: Option<String>,
}

impl LiveLab {
    /// Applies `topology` for run `run_id`; on failure nothing is left behind.
    pub fn apply(topology: &Topology, mode: Mode, run_id: &str) -> Result<LiveLab, LabError> {
        let persist = matches!(mode, Mode::Named { .. });
        let plan = plan(topology, mode, run_id)?;
        let opts = ApplyOptions {
            persist,
            ..ApplyOptions::default()
        };
        let live =
            LiveTopology::apply(&plan, opts).map_err(|e| LabError::Topology(e.to_string()))?;
        let mut namespaces = BTreeMap::new();
        for (key, ns) in live.namespaces() {
            let fd = ns.fd().try_clone_to_owned().map_err(|e| {
                LabError::io(format!("duplicate the descriptor of namespace {key}"), e)
            })?;
            namespaces.insert(key.clone(), NsHandle::from_fd(key.clone(), fd));
        }
        let names = plan
            .namespaces
            .iter()
            .filter_map(|n| Some((n.key.clone(), n.name.clone()?)))
            .collect();
        let host_link = host_link_words(&plan);
        Ok(LiveLab {
            live: Some(live),
            namespaces,
            names,
            host_link,
        })
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
    pub fn persist(mut self) {
        if let Some(live) = self.live.take() {
            live.leak();
        }
    }

    /// Tears everything down and reports what could not be removed.
    pub fn destroy(mut self) -> Result<(), LabError> {
        self.namespaces.clear();
        match self.live.take() {
            Some(live) => live
                .destroy()
                .map_err(|e| LabError::Topology(e.to_string())),
            None => Ok(()),
        }
    }
}

/// What a run will create, known before anything exists: `lab up` records it first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// Namespace key → /run/netns name.
    pub namespaces: BTreeMap<String, String>,
    /// The host link's interface name in the root namespace, if the run has one.
    pub host_ifname: Option<String>,
    /// The host link in words.
    pub host_link: Option<String>,
}

/// The names and host link `LiveLab::apply(topology, mode, run_id)` will create.
pub fn intent(topology: &Topology, mode: Mode, run_id: &str) -> Result<Intent, LabError> {
    let plan = plan(topology, mode, run_id)?;
    Ok(Intent {
        namespaces: plan
            .namespaces
            .iter()
            .filter_map(|n| Some((n.key.clone(), n.name.clone()?)))
            .collect(),
        host_ifname: plan.host_link.as_ref().map(|h| h.host_ifname.clone()),
        host_link: host_link_words(&plan),
    })
}

fn plan(topology: &Topology, mode: Mode, run_id: &str) -> Result<Plan, LabError> {
    let naming = match mode {
        Mode::Anonymous => Naming::Anonymous,
        Mode::Named { prefix } => Naming::Named { prefix },
    };
    Plan::for_run(topology, run_id, naming).map_err(|e| LabError::Topology(e.to_string()))
}

fn host_link_words(plan: &Plan) -> Option<String> {
    plan.host_link.as_ref().map(|h| {
        let routes: Vec<String> = h
            .host_routes
            .iter()
            .map(|r| match r.via {
                Some(via) => format!("{} via {via}", r.dest),
                None => r.dest.to_string(),
            })
            .collect();
        format!(
            "{} {} on the host, {} in {}; host route {}",
            h.host_ifname,
            h.host_addr,
            h.peer_addr,
            plan.namespace(&h.peer_ns)
                .and_then(|n| n.name.clone())
                .unwrap_or_else(|| h.peer_ns.clone()),
            routes.join(", ")
        )
    })
}

/// What netns-kit's own run registry (/run/netns-kit/<name>.json) records for the named run
/// `name`: its run id, namespace names and host link. Written before netns-kit creates
/// anything, so it names what a driver killed mid-apply left behind.
pub fn recorded(name: &str) -> Option<RunState> {
    RunState::load(std::path::Path::new(STATE_DIR), name).ok()
}

/// Destroys the named run `prefix` if netns-kit knows it; true if something was removed.
pub fn destroy_named(prefix: &str) -> Result<bool, LabError> {
    let runs = live::list().map_err(|e| LabError::Topology(e.to_string()))?;
    if !runs.iter().any(|r| r.name == prefix) {
        return Ok(false);
    }
    live::destroy_by_name(prefix).map_err(|e| LabError::Topology(e.to_string()))?;
    Ok(true)
}

/// True while the namespaces recorded in `state` exist.
pub fn named_exists(state: &LabState) -> bool {
    !state.namespaces.is_empty()
        && state
            .namespaces
            .values()
            .all(|n| std::path::Path::new("/run/netns").join(n).exists())
}
