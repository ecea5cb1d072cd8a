//! `gc`: remove the leftovers of dead runs — runs whose owner process is gone and that are
//! not persistent — and nothing else. A namespace is removed only if a state file lists it
//! AND it is provably that run's (same inode as recorded, or its `lo` carries the run's
//! alias); a look-alike name is never enough.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::netns::Netns;
use crate::runid::RunId;
use crate::topology::live::{host_link_is_ours, namespace_is_ours, remove_recorded};
use crate::topology::state::{RunState, STATE_DIR};

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
    /// The host link of a dead run.
    HostLink {
        /// The run's name.
        run: String,
        /// Interface name in the root namespace.
        ifname: String,
    },
    /// The state file of a dead run.
    StateFile {
        /// The run's name.
        run: String,
        /// Its path.
        path: PathBuf,
    },
}

/// Find (and unless `dry_run`, remove) the leftovers of dead runs under /run/netns-kit.
pub fn gc(dry_run: bool) -> Result<Vec<Leftover>> {
    gc_in(Path::new(STATE_DIR), dry_run)
}

/// [`gc`] with state files under `dir`.
pub fn gc_in(dir: &Path, dry_run: bool) -> Result<Vec<Leftover>> {
    let mut found = Vec::new();
    for (path, st) in RunState::all(dir)? {
        // An unreadable state file is not proof of anything: leave it alone.
        let Ok(st) = st else { continue };
        if st.persistent || st.owner.is_alive() {
            continue;
        }
        let Ok(run_id) = RunId::parse(&st.run_id) else {
            continue;
        };
        for rec in &st.namespaces {
            if let Ok(ns) = Netns::open(&rec.name) {
                if namespace_is_ours(&ns, rec, &run_id) {
                    found.push(Leftover::Namespace {
                        run: st.name.clone(),
                        run_id: st.run_id.clone(),
                        name: rec.name.clone(),
                    });
                }
            }
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
        found.push(Leftover::StateFile {
            run: st.name.clone(),
            path: path.clone(),
        });
        if !dry_run {
            let leftovers = remove_recorded(&st);
            if leftovers.is_empty() {
                st.remove(dir)?;
            }
        }
    }
    Ok(found)
}
