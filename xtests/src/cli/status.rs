//! `lab status`: each component's process and readiness, checked from inside its namespace.

use super::{attach, require_root, summary, LabDir};
use crate::component::Health;
use crate::error::LabError;
use crate::live;
use crate::state::LabState;

/// Prints the status table; fails (exit 1) when the lab is down or a component is not ready.
pub fn run(lab: &LabDir) -> Result<(), LabError> {
    require_root()?;
    let Some(state) = LabState::load(&lab.dir)? else {
        println!(
            "lab: down (no lab named {:?}; start it with `just up`)",
            lab.name
        );
        return Err(LabError::Invalid {
            what: "lab".into(),
            value: lab.name.clone(),
            expected: "a lab that is up".into(),
        });
    };
    if !state.applied {
        return Err(LabError::Unhealthy(format!(
            "the `lab up` of run {} stopped before its topology was complete; `just up` starts afresh, `just down` removes what it made",
            state.run_id
        )));
    }
    if !live::named_exists(&state) {
        return Err(LabError::Topology(format!(
            "state of run {} exists but its namespaces are gone; run `just down` then `just up`",
            state.run_id
        )));
    }
    let mut stack = attach(lab, &state)?;
    println!(
        "lab {:?} (run {}), state in {}",
        state.name,
        state.run_id,
        lab.dir.display()
    );
    summary::print_table(&state, &mut stack);
    if let Some(link) = &state.host_link {
        println!("host link: {link}");
    }
    let mut bad = Vec::new();
    for name in &state.enabled {
        if !stack.is_running(name) || stack.check(name).ok() != Some(Health::Ready) {
            bad.push(name.clone());
        }
    }
    if bad.is_empty() {
        println!("all {} components ready", state.enabled.len());
        Ok(())
    } else {
        Err(LabError::Unhealthy(format!(
            "not ready: {} (see `just logs <component>`; `just up` restarts what stopped)",
            bad.join(", ")
        )))
    }
}
