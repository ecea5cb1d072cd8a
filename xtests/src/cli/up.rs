//! `lab up`: apply the topology with named namespaces and the host link, start PostgreSQL and
//! Redis, then the registry, the product and order instances and the gateway, each waited for
//! until ready. Safe to run twice: a lab that is up is checked and converged (anything not
//! running is started again), never duplicated. On failure everything is undone.

use std::path::PathBuf;

use super::{attach, fault_point, require_root, summary, LabDir};
use crate::component::{Component, Kind};
use crate::error::LabError;
use crate::live::{self, LiveLab, Mode};
use crate::pinned::PinnedRoots;
use crate::stack::Progress;
use crate::state::LabState;
use crate::topology_file;

/// Settings of `lab up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The topology file (default: the shared three-tier.toml).
    pub topology: PathBuf,
    /// The `ecomm` binary the services run.
    pub ecomm: PathBuf,
    /// Product slots to provision (the file's instances plus spares for `scale`); default 3.
    pub product_slots: u8,
    /// Product instances to start (default 2, as ARCHITECTURE.md's address plan).
    pub products: u8,
    /// Run every process over the pinned images' trees (`--pinned`, see [`crate::pinned`]).
    pub pinned: bool,
}

/// Brings the lab up (or converges a lab that is up).
///
/// Crash-safe: the state file names the run, its namespaces and its host link before the
/// topology is applied, and each process's pid right after it is spawned (see
/// [`super::attach`]), so a `lab up` killed at any moment leaves nothing `lab down` cannot
/// find. A lab whose driver died before the topology was complete is taken down and applied
/// afresh; one whose driver died later is converged (the data directory is kept either way).
pub fn run(lab: &LabDir, opts: &UpOptions) -> Result<(), LabError> {
    require_root()?;
    if let Some(state) = LabState::load(&lab.dir)? {
        if state.applied && live::named_exists(&state) {
            if state.pinned.is_some() != opts.pinned {
                return Err(LabError::Invalid {
                    what: "lab up option".into(),
                    value: if opts.pinned {
                        "--pinned"
                    } else {
                        "(no --pinned)"
                    }
                    .into(),
                    expected: format!(
                        "the mode the lab is up in ({}); run `just down` first to switch",
                        if state.pinned.is_some() {
                            "--pinned"
                        } else {
                            "host programs"
                        }
                    ),
                });
            }
            return converge(lab, state);
        }
        println!(
            "lab: found state of run {} but {}; cleaning up first",
            state.run_id,
            if state.applied {
                "its namespaces are gone"
            } else {
                "its topology was never completed"
            }
        );
        super::down::run(lab)?;
    } else if super::down::has_leftovers(lab) {
        println!(
            "lab: removing leftovers of an earlier lab named {:?}",
            lab.name
        );
        super::down::run(lab)?;
    }
    let pinned = if opts.pinned {
        println!(
            "lab: building the pinned images from images.lock (the first build fetches the locked packages) …"
        );
        let started = std::time::Instant::now();
        let roots = PinnedRoots::build(&opts.ecomm)?;
        for r in [&roots.services, &roots.redis, &roots.postgres] {
            println!("  image    {:<15} sha256:{}", r.role, r.image_sha256);
        }
        println!("  built in {:.1}s", started.elapsed().as_secs_f64());
        Some(roots)
    } else {
        None
    };
    let run_id = crate::datastores::random_hex(4)?;
    let (_, topology) = topology_file::load(&opts.topology, opts.product_slots)?;
    let mode = Mode::Named {
        prefix: lab.name.clone(),
    };
    let intent = live::intent(&topology, mode.clone(), &run_id)?;
    let components: Vec<Component> = crate::component::from_topology(&topology)?;
    let enabled = components
        .iter()
        .filter(|c| c.kind != Kind::Product || product_number(&c.name) <= opts.products)
        .map(|c| c.name.clone())
        .collect();
    let mut state = LabState {
        name: lab.name.clone(),
        run_id: run_id.clone(),
        topology: std::fs::canonicalize(&opts.topology).unwrap_or_else(|_| opts.topology.clone()),
        product_slots: opts.product_slots,
        ecomm: opts.ecomm.clone(),
        components,
        enabled,
        namespaces: intent.namespaces,
        pids: Default::default(),
        host_link: intent.host_link,
        host_ifname: intent.host_ifname,
        applied: false,
        pinned,
    };
    state.save(&lab.dir)?;
    fault_point("intent");
    println!(
        "lab: applying {} as {:?} (run {run_id}) …",
        opts.topology.display(),
        lab.name
    );
    let applied = match LiveLab::apply(&topology, mode, &run_id) {
        Ok(applied) => applied,
        Err(e) => {
            // Apply undid what it made; if netns-kit still records the run, `down` finishes.
            if live::recorded(&lab.name).is_none() {
                let _ = LabState::remove(&lab.dir);
            }
            return Err(e);
        }
    };
    applied.persist();
    fault_point("applied");
    state.applied = true;
    state.save(&lab.dir)?;
    let mut stack = attach(lab, &state)?;
    stack.on_progress(Box::new(progress_with_faults));
    println!("lab: starting PostgreSQL and Redis, then registry, products, order, gateway");
    if let Err(e) = stack.start_all() {
        let first = e.to_string();
        eprintln!(
            "lab: up failed ({}); undoing everything …",
            first.lines().next().unwrap_or("")
        );
        stack.stop_all();
        drop(stack);
        let _ = super::down::run(lab);
        return Err(e);
    }
    state.pids = stack.pids();
    state.save(&lab.dir)?;
    let picture = summary::render_picture(&lab.dir, &topology);
    summary::print(lab, &state, &mut stack, picture.as_deref());
    Ok(())
}

/// A lab that is up: start whatever is not running, wait for readiness, report.
fn converge(lab: &LabDir, mut state: LabState) -> Result<(), LabError> {
    let mut stack = attach(lab, &state)?;
    let before = stack.pids();
    stack.on_progress(Box::new(progress_with_faults));
    stack.start_all()?;
    let after = stack.pids();
    let restarted: Vec<&String> = after
        .iter()
        .filter(|(name, pid)| before.get(*name) != Some(pid))
        .map(|(name, _)| name)
        .collect();
    if restarted.is_empty() {
        println!(
            "lab: already up (run {}); every component is ready",
            state.run_id
        );
    } else {
        println!(
            "lab: was up but {} had stopped; started again",
            restarted
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    state.pids = after;
    state.save(&lab.dir)?;
    let topology = topology_file::load(&state.topology, state.product_slots)
        .map(|(_, t)| t)
        .ok();
    let picture = topology.and_then(|t| summary::render_picture(&lab.dir, &t));
    summary::print(lab, &state, &mut stack, picture.as_deref());
    Ok(())
}

/// "product-3" → 3 (0 for names without a number).
pub fn product_number(name: &str) -> u8 {
    name.rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

/// Prints one progress line, then honours a `ready:<component>` fault point.
fn progress_with_faults(p: &Progress) {
    print_progress(p);
    if let Progress::Ready { name, .. } = p {
        fault_point(&format!("ready:{name}"));
    }
}

/// Prints one progress line.
pub fn print_progress(p: &Progress) {
    match p {
        Progress::Started { name, pid } => println!("  started  {name:<10} pid {pid}"),
        Progress::Waiting {
            name,
            elapsed,
            last,
        } => println!(
            "  waiting  {name:<10} {:>4.1}s  ({})",
            elapsed.as_secs_f64(),
            last.lines().next().unwrap_or("")
        ),
        Progress::Ready { name, elapsed } => {
            println!("  ready    {name:<10} after {:.1}s", elapsed.as_secs_f64())
        }
    }
}
