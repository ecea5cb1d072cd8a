//! Test fixture: start a cluster, or skip when VMs cannot run here (unless
//! ECOMM_REQUIRE_ALL=1, where a missing capability fails the test).

#![allow(dead_code)] // each test binary uses a part of the fixture

use vm::{Cluster, ClusterSpec};

/// The guest agent built alongside these tests.
pub const AGENT: &str = env!("CARGO_BIN_EXE_vm-agent");

/// Whether missing capabilities must fail instead of skip.
pub fn require_all() -> bool {
    std::env::var("ECOMM_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Boots `spec`, or returns None (after saying why) when QEMU or the kernel is unavailable.
pub fn start(spec: ClusterSpec) -> Option<Cluster> {
    if let Err(e) = vm::available() {
        if require_all() {
            panic!("ECOMM_REQUIRE_ALL=1 but VMs cannot run: {e}");
        }
        eprintln!("skipping: {e}");
        return None;
    }
    match Cluster::start(spec.agent(AGENT)) {
        Ok(c) => Some(c),
        Err(e) => panic!("cluster failed to start: {e}"),
    }
}
