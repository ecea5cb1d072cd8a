//! The scenarios on the VM backend: for each declaration file, boot the cluster once
//! ([`VmDeployment::start`]: one QEMU VM per placement host) and run every scenario on it,
//! one line per scenario, then a summary; exit 1 on any failure or on a QEMU process or run
//! directory left behind.
//!
//! `cargo test -p xtests --test scenarios_vm [FILTER…]` runs `three-tier.toml` then
//! `three-tier-wide.toml` (both under ecomm-services/deploy/); `ECOMM_TOPOLOGY=FILE` runs one
//! file. Without QEMU or the built binaries it skips, unless `ECOMM_REQUIRE_ALL=1`. With
//! `VM_BENCH_JSON=path` it also measures one VM booting alone and writes boot and
//! per-scenario times as JSON.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xtests::backend::vm::{self as vm_backend, Bins, VmDeployment};
use xtests::scenarios::{self, Outcome, Scenario};

fn require_all() -> bool {
    std::env::var("ECOMM_REQUIRE_ALL").as_deref() == Ok("1")
}

fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The declaration files to run: `$ECOMM_TOPOLOGY`, else both environment files.
fn files() -> Vec<PathBuf> {
    match std::env::var_os("ECOMM_TOPOLOGY") {
        Some(f) => vec![PathBuf::from(f)],
        None => ["three-tier.toml", "three-tier-wide.toml"]
            .iter()
            .map(|f| workspace().join("ecomm-services/deploy").join(f))
            .collect(),
    }
}

/// What one file's run measured.
struct FileRun {
    file: PathBuf,
    accel: String,
    boot: Vec<(String, Duration)>,
    setup: Duration,
    results: Vec<(String, Duration, Outcome)>,
    total: Duration,
    leaked: Option<String>,
}

impl FileRun {
    fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r.2, Outcome::Failed(_)))
            .count()
            + usize::from(self.leaked.is_some())
    }
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<Scenario> = scenarios::all()
        .into_iter()
        .filter(|s| filter.is_empty() || filter.iter().any(|f| s.name.contains(f.as_str())))
        .collect();
    if selected.is_empty() {
        println!("scenarios_vm: no scenario matches {filter:?}");
        return;
    }
    let bins = match vm_backend::available() {
        Ok(b) => b,
        Err(e) if require_all() => {
            println!(
                "scenarios_vm: FAILED: ECOMM_REQUIRE_ALL=1 but the VM backend cannot run: {e}"
            );
            std::process::exit(1);
        }
        Err(e) => {
            println!("scenarios_vm: skipping: {e}");
            return;
        }
    };
    // The bench also measures one VM booting alone (the 8 s budget is per VM, uncontended).
    let solo_boot = std::env::var_os("VM_BENCH_JSON").and_then(|_| solo_boot(&bins));
    let mut runs = Vec::new();
    let mut not_started = Vec::new();
    for file in files() {
        match run_file(&file, &bins, &selected) {
            Ok(run) => runs.push(run),
            Err(e) => {
                println!("scenarios_vm {}: FAILED to start: {e}", file.display());
                not_started.push(file);
            }
        }
    }
    let failed: usize = runs.iter().map(FileRun::failed).sum::<usize>() + not_started.len();
    println!("\nscenarios_vm: host load average {}", loadavg());
    for run in &runs {
        let count = |f: fn(&Outcome) -> bool| run.results.iter().filter(|r| f(&r.2)).count();
        println!(
            "  {}: {} passed, {} failed, {} not applicable; setup {:.1}s, total {:.1}s ({}){}",
            run.file.display(),
            count(|o| matches!(o, Outcome::Passed)),
            run.failed(),
            count(|o| matches!(o, Outcome::NotApplicable(_))),
            run.setup.as_secs_f64(),
            run.total.as_secs_f64(),
            run.accel,
            run.leaked
                .as_deref()
                .map(|l| format!("; LEAKED {l}"))
                .unwrap_or_default()
        );
    }
    for file in &not_started {
        println!("  {}: FAILED to start", file.display());
    }
    if let Some(path) = std::env::var_os("VM_BENCH_JSON") {
        write_bench(Path::new(&path), solo_boot, &runs);
    }
    if failed > 0 {
        std::process::exit(1);
    }
}

/// Boots the declaration `file`, runs `selected` on it, tears it down and checks that no
/// QEMU process and no run directory is left.
fn run_file(file: &Path, bins: &Bins, selected: &[Scenario]) -> Result<FileRun, String> {
    println!(
        "\nscenarios_vm: {} ({} scenarios)",
        file.display(),
        selected.len()
    );
    let started = Instant::now();
    let d = VmDeployment::start(file, bins.clone()).map_err(|e| e.to_string())?;
    let setup = started.elapsed();
    eprintln!(
        "[vm] setup of {}: {:.2}s",
        file.display(),
        setup.as_secs_f64()
    );
    let mut results = Vec::new();
    for s in selected {
        let (outcome, took) = scenarios::run_one(s, &d);
        match &outcome {
            Outcome::Passed => println!("test {} ... ok ({:.1}s)", s.name, took.as_secs_f64()),
            Outcome::NotApplicable(why) => println!("test {} ... not applicable: {why}", s.name),
            Outcome::Failed(why) => {
                println!(
                    "test {} ... FAILED ({:.1}s): {why}",
                    s.name,
                    took.as_secs_f64()
                );
                d.dump();
            }
        }
        results.push((s.name.to_string(), took, outcome));
    }
    let total = started.elapsed();
    let accel = d.cluster().accel().name().to_string();
    let boot = d.cluster().boot_times().to_vec();
    // Nothing outlives the deployment: every QEMU process and the run directory are gone.
    let pids: Vec<u32> = d
        .cluster()
        .vms()
        .iter()
        .filter_map(|vm| vm.qemu_pid())
        .collect();
    let dir = d.cluster().run_dir().to_path_buf();
    drop(d);
    let alive: Vec<&u32> = pids
        .iter()
        .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
        .collect();
    let leaked = (!alive.is_empty() || dir.exists()).then(|| {
        format!(
            "qemu pids {alive:?}, run dir {} exists: {}",
            dir.display(),
            dir.exists()
        )
    });
    Ok(FileRun {
        file: file.to_path_buf(),
        accel,
        boot,
        setup,
        results,
        total,
        leaked,
    })
}

/// One VM booting alone (no other VM competing for the cores).
fn solo_boot(bins: &Bins) -> Option<Duration> {
    let cluster = vm::Cluster::start(
        // As the backend boots each guest: from the pinned stack image.
        vm::ClusterSpec::new()
            .agent(&bins.agent)
            .stack_root(&bins.netns_kit, &bins.ecomm)
            .vm(vm::VmSpec::new("solo").memory_mib(1024)),
    )
    .ok()?;
    cluster.boot_times().first().map(|b| b.1)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Prints the boot, setup and per-scenario times and writes them as JSON to `path`.
fn write_bench(path: &Path, solo_boot: Option<Duration>, runs: &[FileRun]) {
    println!("\nbench-vm: host load average {}", loadavg());
    if let Some(d) = solo_boot {
        println!("  boot solo {:>6.2}s (one VM alone)", d.as_secs_f64());
    }
    let mut files = Vec::new();
    for run in runs {
        println!("  {} ({})", run.file.display(), run.accel);
        for (vm, d) in &run.boot {
            println!("    boot {vm:<4} {:>6.2}s", d.as_secs_f64());
        }
        println!("    setup     {:>6.2}s", run.setup.as_secs_f64());
        for (name, d, outcome) in &run.results {
            let verdict = match outcome {
                Outcome::Passed => "ok",
                Outcome::Failed(_) => "FAILED",
                Outcome::NotApplicable(_) => "n/a",
            };
            println!("    test {name:<60} {:>6.2}s {verdict}", d.as_secs_f64());
        }
        println!("    total     {:>6.2}s", run.total.as_secs_f64());
        files.push(serde_json::json!({
            "file": run.file.display().to_string(),
            "accelerator": run.accel,
            "boot": run.boot.iter().map(|(vm, d)| serde_json::json!({"vm": vm, "boot_seconds": d.as_secs_f64()})).collect::<Vec<_>>(),
            "setup_seconds": run.setup.as_secs_f64(),
            "tests": run.results.iter().map(|(name, d, o)| serde_json::json!({
                "test": name, "seconds": d.as_secs_f64(), "passed": matches!(o, Outcome::Passed)
            })).collect::<Vec<_>>(),
            "total_seconds": run.total.as_secs_f64(),
        }));
    }
    let doc = serde_json::json!({
        "solo_boot_seconds": solo_boot.map(|d| d.as_secs_f64()),
        "host_loadavg": loadavg(),
        "host_cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "files": files,
    });
    match serde_json::to_vec_pretty(&doc)
        .map_err(|e| e.to_string())
        .and_then(|j| std::fs::write(path, j).map_err(|e| e.to_string()))
    {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => println!("bench-vm: could not write {}: {e}", path.display()),
    }
}
