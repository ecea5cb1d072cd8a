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

/// The `netns-kit` CLI the guests run (visible through the 9p root): `$NETNS_KIT_BIN`,
/// else `$CARGO_TARGET_DIR/debug/netns-kit`, else `target/debug/netns-kit`. None (after
/// saying why) when it is not built, unless ECOMM_REQUIRE_ALL=1 (then the test fails).
pub fn netns_kit_bin() -> Option<std::path::PathBuf> {
    workspace_bin("netns-kit", "NETNS_KIT_BIN", "netns-kit")
}

/// The `ecomm` services binary, found as [`netns_kit_bin`] finds netns-kit (`$ECOMM_BIN`).
pub fn ecomm_bin() -> Option<std::path::PathBuf> {
    workspace_bin("ecomm", "ECOMM_BIN", "ecomm-services")
}

fn workspace_bin(name: &str, env: &str, package: &str) -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = [
        std::env::var_os(env).map(PathBuf::from),
        std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("debug").join(name)),
        Some(workspace.join("target/debug").join(name)),
    ];
    if let Some(found) = candidates.into_iter().flatten().find(|p| p.is_file()) {
        return std::fs::canonicalize(&found).ok().or(Some(found));
    }
    let why = format!("{name} is not built (cargo build -p {package} --bins, or set {env})");
    if require_all() {
        panic!("ECOMM_REQUIRE_ALL=1 but {why}");
    }
    eprintln!("skipping: {why}");
    None
}
