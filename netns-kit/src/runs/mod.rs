//! Runs: a [`crate::topology::Plan`] applied to the kernel and what follows from it.
//!
//! - [`live`]: the apply transaction ([`live::LiveTopology::apply`], undone completely on any
//!   failure) and the live topology it returns (torn down on drop);
//! - [`state`]: the durable record of a named run (written before anything exists), its lock
//!   and its phase;
//! - [`registry`]: the recorded runs as the CLI sees them (list, destroy by name, exec);
//! - [`ownership`]: the proofs that an object is a run's (tagged `lo`, link aliases);
//! - [`status`]: a run compared with its declaration; [`gc`]: the leftovers of dead runs.
//!
//! The same modules are reachable as `netns_kit::topology::{live, state, status, gc}`.

pub mod gc;
pub mod live;
pub(crate) mod ownership;
pub mod registry;
pub mod state;
pub mod status;
