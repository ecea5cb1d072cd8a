//! `just bench-topology`: apply + destroy of the three-tier topology with netns-kit against
//! the seeds' shell script (scripts/seeds-three-tier.sh: one `ip`/`nft` command per object),
//! and 10/100/1000 nodes on one bridge. Prints a table and writes target/bench/topology.json.
//!
//! It also measures the command-line tool whole-process, as a user runs it: `netns-kit apply
//! three-tier.toml --name X` then `netns-kit destroy X`, each a fresh process (host link
//! included), against the script's `up`/`down`, with an idle pause before each command
//! (latency) and back-to-back (throughput), and prints where the CLI's time goes (from the
//! `NETNS_KIT_TIMINGS=1` lines: process start, parsing, each crash point, exit).
//!
//! Needs root. The benchmark first moves itself into a network namespace of its own, so the
//! CLI's host link lands there: everything is built in namespaces this run creates; the
//! root namespace is never touched. Run in release mode (`just bench-topology`):
//! `cargo build --release -p netns-kit --bin netns-kit --example bench_topology` and run
//! target/release/examples/bench_topology (`NETNS_KIT_BIN` overrides the binary).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use netns_kit::runid::RunId;
use netns_kit::topology::live::{ApplyOptions, LiveTopology};
use netns_kit::topology::plan::{Naming, Plan};
use netns_kit::topology::Topology;

/// One measured configuration.
#[derive(serde::Serialize)]
struct Row {
    case: String,
    method: String,
    nodes: usize,
    iterations: usize,
    apply_ms_median: f64,
    destroy_ms_median: f64,
    total_ms_median: f64,
    apply_ms_min: f64,
    destroy_ms_min: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn row(case: &str, method: &str, nodes: usize, samples: &[(Duration, Duration)]) -> Row {
    let apply: Vec<f64> = samples.iter().map(|s| ms(s.0)).collect();
    let destroy: Vec<f64> = samples.iter().map(|s| ms(s.1)).collect();
    let total: Vec<f64> = samples.iter().map(|s| ms(s.0 + s.1)).collect();
    Row {
        case: case.to_string(),
        method: method.to_string(),
        nodes,
        iterations: samples.len(),
        apply_ms_median: median(apply.clone()),
        destroy_ms_median: median(destroy.clone()),
        total_ms_median: median(total),
        apply_ms_min: apply.iter().copied().fold(f64::INFINITY, f64::min),
        destroy_ms_min: destroy.iter().copied().fold(f64::INFINITY, f64::min),
    }
}

/// Live network namespaces in the kernel (the `net_namespace` slab), if readable.
fn live_namespaces() -> Option<u64> {
    let slab = std::fs::read_to_string("/proc/slabinfo").ok()?;
    let line = slab.lines().find(|l| l.starts_with("net_namespace "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Wait (at most 10 s) until the kernel has reclaimed destroyed namespaces (their cleanup is
/// asynchronous), so one iteration's cleanup does not slow the next one down. Untimed.
/// The slab count is only a proxy (SLUB counts objects cached per CPU as in use, so it
/// may never drop to the baseline): a count that has not moved for 1 s also ends the wait.
fn settle(baseline: Option<u64>) {
    let Some(base) = baseline else { return };
    let t = Instant::now();
    let (mut last, mut since) = (None, Instant::now());
    while t.elapsed() < Duration::from_secs(10) {
        match live_namespaces() {
            Some(n) if n > base => {
                if last != Some(n) {
                    (last, since) = (Some(n), Instant::now());
                } else if since.elapsed() >= Duration::from_secs(1) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => return,
        }
    }
}

/// Apply + destroy `topology` `n` times with netns-kit.
fn netns_kit(topology: &Topology, named: bool, n: usize) -> Vec<(Duration, Duration)> {
    let state_dir = std::env::temp_dir().join("netns-kit-bench-state");
    (0..n)
        .map(|_| {
            settle(live_namespaces());
            let run = RunId::new().expect("run id");
            let naming = if named {
                Naming::Named {
                    prefix: format!("nkb-{run}"),
                }
            } else {
                Naming::Anonymous
            };
            let mut plan = Plan::for_run(topology, run.as_str(), naming).expect("plan");
            if let Some(h) = plan.host_link.take() {
                // The benchmark never touches the root namespace.
                plan.addresses
                    .retain(|a| !(a.ns == h.peer_ns && a.ifname == h.peer_ifname));
            }
            let opts = ApplyOptions {
                state_dir: state_dir.clone(),
                ..ApplyOptions::default()
            };
            let t = Instant::now();
            let live = LiveTopology::apply(&plan, opts).expect("apply");
            let applied = t.elapsed();
            if std::env::var_os("BENCH_STEPS").is_some() {
                let mut in_steps = Duration::ZERO;
                for (step, d) in live.apply_timings() {
                    eprintln!("  {step:<40} {:>10.2} ms", ms(*d));
                    in_steps += *d;
                }
                eprintln!(
                    "  = apply {:.2} ms ({:.2} ms outside the steps)",
                    ms(applied),
                    ms(applied.saturating_sub(in_steps))
                );
            }
            let t = Instant::now();
            live.destroy().expect("destroy");
            let destroyed = t.elapsed();
            let base = live_namespaces().map(|n| n.saturating_sub(plan.namespaces.len() as u64));
            settle(base);
            (applied, destroyed)
        })
        .collect()
}

/// Apply + destroy with the seeds' script `n` times.
fn script(script: &Path, n: usize) -> Vec<(Duration, Duration)> {
    (0..n)
        .map(|_| {
            let base = live_namespaces();
            let prefix = format!("nks-{}", RunId::new().expect("run id"));
            let run = |action: &str| {
                let t = Instant::now();
                let st = Command::new("bash")
                    .arg(script)
                    .args([action, &prefix])
                    .status()
                    .expect("run the seeds' script");
                assert!(st.success(), "seeds script {action} failed");
                t.elapsed()
            };
            let sample = (run("up"), run("down"));
            settle(base);
            sample
        })
        .collect()
}

/// CLOCK_MONOTONIC in nanoseconds (the clock of the CLI's `NETNS_KIT_TIMINGS` lines).
fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid, exclusive pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// One whole-process run of the CLI: wall time from before the spawn to after the exit, and
/// its phases as (label, ms) — "process start" until `main`, then each timing line's
/// distance from the previous, then "exit" until the parent saw it.
fn cli_once(bin: &Path, args: &[&str], state: &Path) -> (Duration, Vec<(String, f64)>) {
    let t0 = monotonic_ns();
    let start = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .env("NETNS_KIT_STATE_DIR", state)
        .env("NETNS_KIT_TIMINGS", "1")
        .output()
        .expect("run netns-kit");
    let wall = start.elapsed();
    let t_end = monotonic_ns();
    assert!(
        out.status.success(),
        "netns-kit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut phases: Vec<(String, f64)> = Vec::new();
    let mut last = t0;
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        let Some(rest) = line.strip_prefix("netns-kit: timing ") else {
            continue;
        };
        let Some((ns, label)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(ns) = ns.parse::<u128>() else { continue };
        let ms = ns.saturating_sub(last) as f64 / 1e6;
        last = ns;
        // Each entry is the time from the previous line until this one's label.
        let name = if label == "main" {
            "process start (exec, dynamic linking) until main".to_string()
        } else if label.starts_with("mount point ") || label.starts_with("namespace ") {
            "each namespace's crash points (mount point reserved, created), summed".to_string()
        } else {
            format!("until: {label}")
        };
        match phases.last_mut() {
            Some((l, total)) if *l == name && name.starts_with("each ") => *total += ms,
            _ => phases.push((name, ms)),
        }
    }
    phases.push((
        "exit (after main returns, until the parent sees it)".to_string(),
        t_end.saturating_sub(last) as f64 / 1e6,
    ));
    (wall, phases)
}

/// The CLI's apply + destroy of `file`, `n` times; `pause`: an idle pause before each
/// command (latency) instead of back-to-back (throughput). Returns the samples and, per
/// command, the phases of every run.
#[allow(clippy::type_complexity)]
fn cli(
    bin: &Path,
    file: &Path,
    n: usize,
    pause: Option<Duration>,
) -> (
    Vec<(Duration, Duration)>,
    Vec<Vec<(String, f64)>>,
    Vec<Vec<(String, f64)>>,
) {
    let state = std::env::temp_dir().join("netns-kit-bench-cli");
    let file = file.to_str().expect("UTF-8 path");
    let (mut samples, mut applies, mut destroys) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let name = format!("nkc{}", &RunId::new().expect("run id").as_str()[..6]);
        if let Some(p) = pause {
            settle(live_namespaces());
            std::thread::sleep(p);
        }
        let (a, pa) = cli_once(bin, &["apply", file, "--name", &name], &state);
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
        let (d, pd) = cli_once(bin, &["destroy", &name], &state);
        samples.push((a, d));
        applies.push(pa);
        destroys.push(pd);
    }
    (samples, applies, destroys)
}

/// Median of each phase over runs (phases matched by position and label).
fn phase_medians(runs: &[Vec<(String, f64)>]) -> Vec<(String, f64)> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .enumerate()
        .map(|(i, (label, _))| {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.get(i).filter(|(l, _)| l == label).map(|(_, ms)| *ms))
                .collect();
            (label.clone(), median(v))
        })
        .collect()
}

/// The seeds' script `up`/`down`, `n` times, with an idle pause before each or back-to-back.
fn script_paced(script: &Path, n: usize, pause: Option<Duration>) -> Vec<(Duration, Duration)> {
    (0..n)
        .map(|_| {
            let prefix = format!("nks-{}", RunId::new().expect("run id"));
            if let Some(p) = pause {
                settle(live_namespaces());
                std::thread::sleep(p);
            }
            let run = |action: &str| {
                let t = Instant::now();
                let st = Command::new("bash")
                    .arg(script)
                    .args([action, &prefix])
                    .status()
                    .expect("run the seeds' script");
                assert!(st.success(), "seeds script {action} failed");
                t.elapsed()
            };
            let up = run("up");
            if let Some(p) = pause {
                std::thread::sleep(p);
            }
            (up, run("down"))
        })
        .collect()
}

/// The whole-process comparison: CLI against the seeds' script, paused and back-to-back,
/// and where the CLI's time goes. Returns the rows and the two speed-ups.
fn cli_comparison(three_tier_file: &Path, seeds: &Path, quick: bool) -> (Vec<Row>, f64, f64) {
    let bin = std::env::var_os("NETNS_KIT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let me = std::env::current_exe().expect("current exe");
            // target/<profile>/examples/bench_topology -> target/<profile>/netns-kit
            me.parent()
                .and_then(Path::parent)
                .map(|d| d.join("netns-kit"))
                .expect("target dir")
        });
    assert!(
        bin.exists(),
        "{} missing: cargo build --release -p netns-kit --bin netns-kit",
        bin.display()
    );
    let n = if quick { 5 } else { 20 };
    let pause = Some(Duration::from_millis(300));
    // Warm-up: page cache, the binary, first-namespace costs.
    let _ = cli(&bin, three_tier_file, 2, None);
    let _ = script_paced(seeds, 1, None);
    let (mut s_p, mut c_p, mut s_b, mut c_b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut applies, mut destroys) = (Vec::new(), Vec::new());
    let mut b2b = (Duration::ZERO, Duration::ZERO);
    let rounds = if quick { 1 } else { 4 };
    for _ in 0..rounds {
        s_p.extend(script_paced(seeds, n / rounds, pause));
        let (samples, a, d) = cli(&bin, three_tier_file, n / rounds, pause);
        c_p.extend(samples);
        applies.extend(a);
        destroys.extend(d);
        let t = Instant::now();
        s_b.extend(script_paced(seeds, n / rounds, None));
        b2b.0 += t.elapsed();
        let t = Instant::now();
        c_b.extend(cli(&bin, three_tier_file, n / rounds, None).0);
        b2b.1 += t.elapsed();
    }
    let rows = vec![
        row("cli paused", "seeds script (ip/nft)", 7, &s_p),
        row("cli paused", "netns-kit CLI", 8, &c_p),
        row("cli b2b", "seeds script (ip/nft)", 7, &s_b),
        row("cli b2b", "netns-kit CLI", 8, &c_b),
    ];
    let paused = rows[0].total_ms_median / rows[1].total_ms_median;
    // Throughput: whole loop time, apply + destroy back-to-back, settling included.
    let b2b_speedup = b2b.0.as_secs_f64() / b2b.1.as_secs_f64();
    for (what, runs) in [("apply", &applies), ("destroy", &destroys)] {
        println!("where a paused `netns-kit {what}` spends its time (medians, ms):");
        for (label, ms) in phase_medians(runs) {
            println!("  {ms:>8.2}  {label}");
        }
    }
    println!(
        "back-to-back loops of {} apply+destroy: seeds script {:.1} ms/iteration, CLI {:.1} ms/iteration",
        s_b.len(),
        ms(b2b.0) / s_b.len().max(1) as f64,
        ms(b2b.1) / c_b.len().max(1) as f64
    );
    (rows, paused, b2b_speedup)
}

/// Median time to load the three-tier router's ruleset into a fresh namespace, over netlink
/// (split into opening the socket inside the namespace and the transaction) and with nft.
fn firewall_loads(topology: &Topology, n: usize) {
    use netns_kit::firewall::apply as fw;
    use netns_kit::firewall::netlink::{Batch, NfSocket};
    use netns_kit::netns::Netns;
    let run = RunId::new().expect("run id");
    let plan = Plan::for_run(topology, run.as_str(), Naming::Anonymous).expect("plan");
    let ruleset = &plan.firewalls.first().expect("a router firewall").ruleset;
    let (mut open, mut commit, mut nft) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let ns = Netns::new_anonymous().expect("namespace");
        let t = Instant::now();
        let mut sock = NfSocket::open_in(&ns).expect("nfnetlink socket");
        open.push(ms(t.elapsed()));
        let t = Instant::now();
        let batch = Batch::replace_table(ruleset).expect("valid ruleset");
        sock.commit(batch.finish()).expect("netlink load");
        commit.push(ms(t.elapsed()));
        let ns = Netns::new_anonymous().expect("namespace");
        let t = Instant::now();
        fw::load_with_nft(&ns, ruleset).expect("nft load");
        nft.push(ms(t.elapsed()));
    }
    // The same, into the router of a freshly applied topology (without its firewall).
    let (mut r_open, mut r_commit) = (Vec::new(), Vec::new());
    for _ in 0..n.min(10) {
        settle(live_namespaces());
        let mut p = Plan::for_run(
            topology,
            RunId::new().expect("run id").as_str(),
            Naming::Anonymous,
        )
        .expect("plan");
        let fw = p.firewalls.remove(0);
        p.firewalls.clear();
        if let Some(h) = p.host_link.take() {
            p.addresses
                .retain(|a| !(a.ns == h.peer_ns && a.ifname == h.peer_ifname));
        }
        let opts = ApplyOptions {
            state_dir: std::env::temp_dir().join("netns-kit-bench-state"),
            ..ApplyOptions::default()
        };
        let live = LiveTopology::apply(&p, opts).expect("apply");
        let ns = live.netns(&fw.ns).expect("router namespace");
        let t = Instant::now();
        let mut sock = NfSocket::open_in(ns).expect("nfnetlink socket");
        r_open.push(ms(t.elapsed()));
        let t = Instant::now();
        sock.commit(Batch::replace_table(&fw.ruleset).expect("valid").finish())
            .expect("load");
        r_commit.push(ms(t.elapsed()));
        live.destroy().expect("destroy");
    }
    println!(
        "into a just-applied router: open socket {:.3} ms + transaction {:.3} ms",
        median(r_open),
        median(r_commit)
    );
    println!(
        "router ruleset ({} rules), median of {n}: netlink open socket {:.3} ms + transaction {:.3} ms; nft -j -f - {:.3} ms",
        ruleset.rules.len(),
        median(open),
        median(commit),
        median(nft)
    );
}

/// `n` nodes on one bridge (one /16), no router, no firewall.
fn one_bridge(n: usize) -> Topology {
    let mut toml = String::from(
        "name = \"one-bridge\"\n\n[[networks]]\nname = \"flat\"\nsubnet = \"10.60.0.0/16\"\n",
    );
    for i in 0..n {
        let host = i + 10;
        toml.push_str(&format!(
            "\n[[nodes]]\nname = \"n{i}\"\ninterfaces = [{{ network = \"flat\", address = \"10.60.{}.{}\" }}]\n",
            host / 256,
            host % 256
        ));
    }
    Topology::from_str(&toml).expect("one-bridge topology")
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("bench_topology needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)");
        std::process::exit(2);
    }
    // A network namespace of our own: the CLI's host link lands here, never in the host's.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let three_tier_file = root.join("ecomm-services/deploy/three-tier.toml");
    let three_tier = Topology::from_path(&three_tier_file).expect("three-tier.toml");
    let seeds = root.join("scripts/seeds-three-tier.sh");
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let (it_nk, it_script) = if quick { (5, 2) } else { (30, 10) };

    // BENCH_FIREWALL=1: only the router's ruleset, loaded into fresh namespaces over netlink
    // and through `nft -j -f -` (the old way), for profiling that one step.
    if std::env::var_os("BENCH_FIREWALL").is_some() {
        firewall_loads(&three_tier, if quick { 10 } else { 50 });
        return;
    }

    // BENCH_NODES=1000 (comma-separated sizes): only the one-bridge scale rows, printed,
    // for profiling one size without the whole comparison.
    if let Ok(sizes) = std::env::var("BENCH_NODES") {
        for n in sizes
            .split(',')
            .filter_map(|s| s.trim().parse::<usize>().ok())
        {
            let topo = one_bridge(n);
            for named in [false, true] {
                let r = row(
                    "one bridge",
                    if named {
                        "netns-kit named"
                    } else {
                        "netns-kit anonymous"
                    },
                    n,
                    &netns_kit(&topo, named, if quick { 1 } else { 3 }),
                );
                println!(
                    "{:<12} {:<24} {:>6} {:>5} apply {:>10.2} ms  destroy {:>10.2} ms",
                    r.case, r.method, r.nodes, r.iterations, r.apply_ms_median, r.destroy_ms_median
                );
            }
        }
        return;
    }

    // BENCH_CLI=1: only the whole-process CLI comparison.
    let cli_only = std::env::var_os("BENCH_CLI").is_some();
    let (cli_rows, cli_paused, cli_b2b) = cli_comparison(&three_tier_file, &seeds, quick);
    if cli_only {
        for r in &cli_rows {
            println!(
                "{:<12} {:<24} apply {:>8.2} ms  destroy {:>8.2} ms  total {:>8.2} ms",
                r.case, r.method, r.apply_ms_median, r.destroy_ms_median, r.total_ms_median
            );
        }
        println!(
            "CLI speed-up over the seeds' script: {cli_paused:.1}x with pauses (goal >= 10x), {cli_b2b:.1}x back-to-back (goal >= 5x)"
        );
        return;
    }

    let mut rows = Vec::new();
    // Warm-up (page cache, binaries, first-namespace costs) for both sides.
    let _ = netns_kit(&three_tier, false, 2);
    let _ = script(&seeds, 1);

    // Interleaved, so that both ways see the same machine load.
    let (mut s_samples, mut a_samples, mut n_samples) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..it_nk {
        if i < it_script {
            s_samples.extend(script(&seeds, 1));
        }
        a_samples.extend(netns_kit(&three_tier, false, 1));
        n_samples.extend(netns_kit(&three_tier, true, 1));
    }
    rows.push(row("three-tier", "seeds script (ip/nft)", 7, &s_samples));
    rows.push(row("three-tier", "netns-kit anonymous", 7, &a_samples));
    rows.push(row("three-tier", "netns-kit named", 7, &n_samples));
    for (n, it) in [
        (10, if quick { 3 } else { 10 }),
        (100, if quick { 2 } else { 5 }),
        (1000, if quick { 1 } else { 3 }),
    ] {
        let topo = one_bridge(n);
        rows.push(row(
            "one bridge",
            "netns-kit anonymous",
            n,
            &netns_kit(&topo, false, it),
        ));
        rows.push(row(
            "one bridge",
            "netns-kit named",
            n,
            &netns_kit(&topo, true, it),
        ));
    }

    rows.extend(cli_rows);
    let script_total = rows[0].total_ms_median;
    let nk_total = rows[1].total_ms_median;
    let nk_named_total = rows[2].total_ms_median;
    println!(
        "{:<12} {:<24} {:>6} {:>5} {:>12} {:>12} {:>12}",
        "case", "method", "nodes", "runs", "apply ms", "destroy ms", "total ms"
    );
    for r in &rows {
        println!(
            "{:<12} {:<24} {:>6} {:>5} {:>12.2} {:>12.2} {:>12.2}",
            r.case,
            r.method,
            r.nodes,
            r.iterations,
            r.apply_ms_median,
            r.destroy_ms_median,
            r.total_ms_median
        );
    }
    println!(
        "(medians; min apply/destroy in the JSON; load average at end: {})",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "three-tier speed-up over the seeds' script: {:.1}x anonymous, {:.1}x named (target >= 20x)",
        script_total / nk_total,
        script_total / nk_named_total
    );
    println!(
        "CLI (whole process, host link included) speed-up over the seeds' script: {cli_paused:.1}x with pauses (goal >= 10x), {cli_b2b:.1}x back-to-back (goal >= 5x)"
    );

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    let json = serde_json::json!({
        "benchmark": "topology",
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "loadavg_at_end": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "speedup_three_tier_anonymous": script_total / nk_total,
        "speedup_three_tier_named": script_total / nk_named_total,
        "speedup_cli_paused": cli_paused,
        "speedup_cli_back_to_back": cli_b2b,
        "rows": rows,
    });
    let path = dir.join("topology.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json")).expect("write json");
    println!("wrote {}", path.display());
}
