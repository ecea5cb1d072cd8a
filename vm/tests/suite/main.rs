//! The multi-VM suite: three VMs, the three tiers in namespaces, the backend stretched
//! across VMs by VXLAN. A custom harness boots the lab once and runs each scenario as
//! its own named test (booting per scenario would blow the 5-minute TCG budget).
//!
//! `cargo test -p vm --test suite [FILTER]`; with `VM_BENCH_JSON=path` it also writes
//! boot and per-test times as JSON.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod failover;
mod isolation;
mod lab;
mod load;
mod routing;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use lab::{Bins, Lab};

/// A named scenario.
type Scenario = (&'static str, bool, fn(&Lab));

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let scenarios: Vec<Scenario> = vec![
        (
            "isolation::tier_policy_holds_across_hosts",
            false,
            isolation::tier_policy_holds_across_hosts,
        ),
        (
            "routing::gateway_reaches_both_backend_hosts_and_orders_land_in_postgres",
            true,
            routing::gateway_reaches_both_backend_hosts_and_orders_land_in_postgres,
        ),
        (
            "failover::partitioning_a_backend_vm_loses_no_request_after_ejection",
            true,
            failover::partitioning_a_backend_vm_loses_no_request_after_ejection,
        ),
        (
            "failover::killing_a_backend_vm_loses_no_request_after_ejection",
            true,
            failover::killing_a_backend_vm_loses_no_request_after_ejection,
        ),
    ];
    let selected: Vec<&Scenario> = scenarios
        .iter()
        .filter(|(name, _, _)| {
            filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
        })
        .collect();
    if selected.is_empty() {
        println!("suite: no scenario matches {filter:?}");
        return;
    }
    let bins = match Bins::find() {
        Ok(b) => b,
        Err(e) if common::require_all() => panic!("ECOMM_REQUIRE_ALL=1 but {e}"),
        Err(e) => {
            println!("suite: skipping: {e}");
            return;
        }
    };
    // The bench also measures one VM booting alone (the 8 s budget is per VM, uncontended).
    let solo_boot = std::env::var_os("VM_BENCH_JSON").and_then(|_| {
        let cluster = common::start(vm::ClusterSpec::new().vm(vm::VmSpec::new("solo")))?;
        Some(cluster.boot_times()[0].1)
    });
    let started = Instant::now();
    let Some(lab) = Lab::start(bins) else { return };
    let setup = started.elapsed();
    eprintln!("[vm] suite setup: {:.2}s", setup.as_secs_f64());
    let mut results = Vec::new();
    let mut failed = 0;
    println!("\nrunning {} scenarios", selected.len());
    for (name, needs_services, f) in selected {
        if *needs_services && !lab.bins.has_services {
            if common::require_all() {
                println!("test {name} ... FAILED (ecomm has no product/order subcommands)");
                failed += 1;
            } else {
                println!("test {name} ... skipped (ecomm has no product/order subcommands yet)");
            }
            continue;
        }
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&lab)));
        let took = t.elapsed();
        match outcome {
            Ok(()) => println!("test {name} ... ok ({:.1}s)", took.as_secs_f64()),
            Err(_) => {
                println!("test {name} ... FAILED ({:.1}s)", took.as_secs_f64());
                lab.cluster.dump();
                lab.dump_logs();
                failed += 1;
            }
        }
        results.push((name.to_string(), took, outcome.is_ok()));
    }
    let total = started.elapsed();
    println!(
        "\nsuite: {} passed, {failed} failed; {:.1}s total ({})",
        results.iter().filter(|r| r.2).count(),
        total.as_secs_f64(),
        lab.cluster.accel().name()
    );
    if let Some(path) = std::env::var_os("VM_BENCH_JSON") {
        write_bench(&path, &lab, solo_boot, setup, &results, total);
    }
    // Nothing outlives the lab: every QEMU process and the run directory are gone.
    let pids: Vec<u32> = lab
        .cluster
        .vms()
        .iter()
        .filter_map(|vm| vm.qemu_pid())
        .collect();
    let dir = lab.cluster.run_dir().to_path_buf();
    drop(lab);
    let leaked: Vec<&u32> = pids
        .iter()
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        .collect();
    if !leaked.is_empty() || dir.exists() {
        println!(
            "suite: LEAKED qemu pids {leaked:?}, run dir exists: {}",
            dir.exists()
        );
        failed += 1;
    }
    if failed > 0 {
        std::process::exit(1);
    }
}

fn write_bench(
    path: &std::ffi::OsStr,
    lab: &Lab,
    solo_boot: Option<std::time::Duration>,
    setup: std::time::Duration,
    results: &[(String, std::time::Duration, bool)],
    total: std::time::Duration,
) {
    let boots: Vec<serde_json::Value> = lab
        .cluster
        .boot_times()
        .iter()
        .map(|(vm, d)| serde_json::json!({"vm": vm, "boot_seconds": d.as_secs_f64()}))
        .collect();
    let tests: Vec<serde_json::Value> = results
        .iter()
        .map(|(name, d, ok)| serde_json::json!({"test": name, "seconds": d.as_secs_f64(), "passed": ok}))
        .collect();
    let doc = serde_json::json!({
        "accelerator": lab.cluster.accel().name(),
        "solo_boot_seconds": solo_boot.map(|d| d.as_secs_f64()),
        "host_loadavg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "host_cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "boot": boots,
        "setup_seconds": setup.as_secs_f64(),
        "tests": tests,
        "total_seconds": total.as_secs_f64(),
    });
    println!(
        "\nbench-vm: accelerator {}, host load average {}",
        lab.cluster.accel().name(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    if let Some(d) = solo_boot {
        println!("  boot solo {:>6.2}s (one VM alone)", d.as_secs_f64());
    }
    for (vm, d) in lab.cluster.boot_times() {
        println!("  boot {vm:<4} {:>6.2}s", d.as_secs_f64());
    }
    println!("  setup    {:>6.2}s", setup.as_secs_f64());
    for (name, d, ok) in results {
        println!(
            "  test {name:<55} {:>6.2}s {}",
            d.as_secs_f64(),
            if *ok { "ok" } else { "FAILED" }
        );
    }
    println!("  total    {:>6.2}s", total.as_secs_f64());
    std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    println!("wrote {}", std::path::Path::new(path).display());
}
