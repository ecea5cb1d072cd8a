//! `lab scale product N`: run product-1 … product-N. New instances start in their node's
//! namespace (a provisioned slot on the backend bridge), register with the registry, and the
//! gateway, which watches the registry, sends them traffic without a restart. Scaling down
//! stops the highest-numbered instances gracefully (they deregister first).

use std::time::{Duration, Instant};

use super::up::{print_progress, product_number};
use super::{attach, require_root, LabDir};
use crate::error::LabError;
use crate::http::Request;

/// Scales `service` (only "product" has slots) to `count` instances.
pub fn run(lab: &LabDir, service: &str, count: u8) -> Result<(), LabError> {
    require_root()?;
    let mut state = lab.state()?;
    if service != "product" {
        return Err(LabError::Invalid {
            what: "service to scale".into(),
            value: service.to_string(),
            expected: "product (the only service with spare slots in the topology)".into(),
        });
    }
    if count < 1 || count > state.product_slots {
        return Err(LabError::Invalid {
            what: "instance count".into(),
            value: count.to_string(),
            expected: format!(
                "1..={} (slots provisioned by `lab up --product-slots`)",
                state.product_slots
            ),
        });
    }
    let wanted: Vec<String> = (1..=count).map(|n| format!("product-{n}")).collect();
    let surplus: Vec<String> = state
        .enabled
        .iter()
        .filter(|n| n.starts_with("product-") && product_number(n) > count)
        .cloned()
        .collect();
    if !surplus.is_empty() {
        let mut stack = attach(lab, &state)?;
        for name in &surplus {
            println!("  stopping {name}");
            stack.stop(name)?;
        }
        state.enabled.retain(|n| !surplus.contains(n));
        state.pids = stack.pids();
        state.save(&lab.dir)?;
    }
    for name in &wanted {
        if !state.enabled.contains(name) {
            state.enabled.push(name.clone());
        }
    }
    let mut stack = attach(lab, &state)?;
    stack.on_progress(Box::new(print_progress));
    for name in &wanted {
        stack.start(name)?;
    }
    state.pids = stack.pids();
    state.save(&lab.dir)?;
    // The registry is the gateway's source of truth: show what it resolves now.
    let registry = stack.component("registry")?.addr;
    let ns = stack.ns("registry")?.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ids = Request::get("/v1/services/product")
            .send(&ns, registry)
            .ok()
            .and_then(|r| r.json().ok())
            .map(|j| {
                j["instances"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| {
                        Some(format!(
                            "{} ({}:{})",
                            i["id"].as_str()?,
                            i["address"].as_str()?,
                            i["port"]
                        ))
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if ids.len() == usize::from(count) || Instant::now() > deadline {
            println!("registry resolves product → {}", ids.join(", "));
            println!(
                "the gateway watches the registry: new instances take traffic without a restart"
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
