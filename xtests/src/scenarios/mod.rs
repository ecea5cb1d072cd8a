//! The scenarios, written once against [`Deployment`] and run on every backend.
//!
//! Each [`Scenario`] reads the shape it checks (instances, ports, policy, databases) from
//! [`Deployment::topology`]. [`run_one`] runs one and turns a panic or an error into
//! [`Outcome::Failed`]; a scenario whose needs the backend's [`Capabilities`] do not meet is
//! [`Outcome::NotApplicable`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::deployment::{Capabilities, Deployment};

/// Fails the scenario with a formatted message unless `cond` holds.
macro_rules! check {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

pub mod failover;
pub mod host;
pub mod load;
pub mod outages;
pub mod policy;
pub mod routing;
pub mod shape;
pub mod shop;

/// What a scenario needs beyond the common operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Host kill / restart (VM only).
    pub host_faults: bool,
    /// Partitions (VM only).
    pub partitions: bool,
}

impl Needs {
    /// True when `caps` provides everything this needs.
    pub fn met_by(self, caps: Capabilities) -> bool {
        (!self.host_faults || caps.host_faults) && (!self.partitions || caps.partitions)
    }
}

/// One scenario: a name (`group::what_it_proves`), its needs, and the check itself.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// `group::what_it_proves`, e.g. `routing::reads_round_robin_over_every_product_instance`.
    pub name: &'static str,
    /// What the backend must be able to do.
    pub needs: Needs,
    /// The check; `Err` (or a panic) is a failure with its message.
    pub run: fn(&dyn Deployment) -> Result<(), String>,
}

/// How one scenario ended on one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every assertion held.
    Passed,
    /// Why it failed.
    Failed(String),
    /// Why it does not apply to this backend.
    NotApplicable(String),
}

/// Every scenario, in the order the runner runs them.
pub fn all() -> Vec<Scenario> {
    [
        policy::ALL.as_slice(),
        routing::ALL.as_slice(),
        failover::ALL.as_slice(),
        outages::ALL.as_slice(),
        host::ALL.as_slice(),
    ]
    .concat()
}

/// The scenarios whose name contains one of `filters` (all of them when `filters` is empty).
pub fn matching(filters: &[String]) -> Vec<Scenario> {
    all()
        .into_iter()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str())))
        .collect()
}

/// Polls `cond` every `every` until it holds or `limit` passes; true if it held (checked
/// once more at the end).
pub fn eventually(limit: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(every);
    }
    cond()
}

/// Runs `s` on `d`: [`Outcome::NotApplicable`] if `d` lacks what it needs, otherwise its
/// result (a panic counts as a failure), with the time it took.
pub fn run_one(s: &Scenario, d: &dyn Deployment) -> (Outcome, Duration) {
    let started = Instant::now();
    if !s.needs.met_by(d.capabilities()) {
        return (
            Outcome::NotApplicable(format!(
                "the {} backend has no host faults/partitions",
                d.backend()
            )),
            Duration::ZERO,
        );
    }
    let outcome = match catch_unwind(AssertUnwindSafe(|| (s.run)(d))) {
        Ok(Ok(())) => Outcome::Passed,
        Ok(Err(why)) => Outcome::Failed(why),
        Err(panic) => Outcome::Failed(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into()),
        ),
    };
    (outcome, started.elapsed())
}
