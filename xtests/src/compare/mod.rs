//! `lab bench-compare` (`just bench-compare`): the seeds' comparison — namespaces against
//! Docker Compose, `ab -n 1000 -c 50` — reproduced in one run, with the one-node Swarm stack
//! as a third side and a wrk run beside the seeds' measurement.
//!
//! 1. Brings up, concurrently, from the same declaration and the same `ecomm` binary (the
//!    Docker images are built from it; the services seed the same data): the netns lab in lab
//!    mode ([`lab_side`]), the Compose project and the Swarm stack ([`docker_side`]).
//! 2. Checks that all three serve the same body on the measured path, then warms each up.
//! 3. Runs `rounds` interleaved rounds — lab, compose, swarm, lab, compose, swarm, … — each
//!    one `ab -n 1000 -c 50` then `wrk -t2 -c50 -d<s>s --latency` per side ([`measure`]),
//!    so every side sees the same machine.
//! 4. Tears everything down (also after an error, Ctrl-C or SIGTERM) and checks that nothing
//!    is left: namespaces, links, containers, networks, volumes, services.
//! 5. Prints the table beside the seeds' figures and writes the JSON ([`report`]).

pub mod docker_side;
pub mod error;
pub mod lab_side;
pub mod measure;
pub mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

pub use error::CompareError;

use docker_side::{ComposeSide, SwarmSide};
use lab_side::{LabInputs, LabSide};
use measure::{Place, Sample};
use report::{Machine, Report, SideRuns, Timings};

/// Settings of `lab bench-compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareOptions {
    /// Interleaved rounds; each runs ab and wrk once on every side.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub rounds: u32,
    /// wrk's duration per side and round, seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=300))]
    pub wrk_seconds: u32,
    /// The path measured on every side (the seeds': the product list).
    #[arg(long, default_value = "/api/products")]
    pub path: String,
    /// Where the JSON report goes.
    #[arg(long, default_value = "target/bench/compare.json")]
    pub out: PathBuf,
    /// Where the netns lab's state directory goes (`<dir>/cmp<run>`: logs, data, state.json;
    /// removed after a clean teardown, kept after a failed one).
    #[arg(long, default_value = "target/bench/compare-lab")]
    pub lab_dir: PathBuf,
    /// The declaration (default: ecomm-services/deploy/three-tier.toml). The Docker sides run
    /// the committed files generated from it (a test keeps them equal).
    #[arg(long, env = "ECOMM_TOPOLOGY")]
    pub topology: Option<PathBuf>,
    /// The `ecomm` binary for the lab and the images (default: next to this `lab` binary).
    #[arg(long, env = "ECOMM_BIN")]
    pub ecomm: Option<PathBuf>,
}

/// The three sides while they are up; whatever is `Some` is torn down.
#[derive(Default)]
struct Sides {
    lab: Option<LabSide>,
    compose: Option<ComposeSide>,
    swarm: Option<SwarmSide>,
}

/// What the measuring phase produced.
struct Measured {
    runs: Vec<SideRuns>,
    body_bytes: usize,
    setup_s: f64,
    rounds_s: f64,
    loadavg_start: String,
}

/// Runs the whole comparison (root): up, check, rounds, teardown, table, JSON.
pub fn run(opts: &CompareOptions) -> Result<(), CompareError> {
    crate::cli::require_root()?;
    if !opts.path.starts_with('/') || opts.path.contains(char::is_whitespace) {
        return Err(CompareError::Invalid {
            what: "--path".into(),
            value: opts.path.clone(),
            expected: "an absolute request path without spaces, e.g. /api/products".into(),
        });
    }
    let lab_bin =
        std::env::current_exe().map_err(|e| crate::LabError::io("find the lab binary", e))?;
    let ecomm = opts
        .ecomm
        .clone()
        .unwrap_or_else(|| lab_bin.with_file_name("ecomm"));
    if !ecomm.is_file() {
        return Err(CompareError::Invalid {
            what: "ecomm binary".into(),
            value: ecomm.display().to_string(),
            expected: "`cargo build --release -p ecomm-services --bin ecomm` first, or --ecomm"
                .into(),
        });
    }
    let topology = opts
        .topology
        .clone()
        .unwrap_or_else(crate::topology_file::shared_file);
    let dir = std::env::current_dir().map_err(|e| crate::LabError::io("current directory", e))?;
    let inputs = LabInputs {
        lab_bin,
        ecomm: ecomm.clone(),
        topology,
        dir: dir.join(&opts.lab_dir),
    };
    // The Docker images carry the very binary the lab runs (crate::lab::ecomm_binary reads it).
    std::env::set_var("ECOMM_BIN", &ecomm);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| crate::LabError::io("start the tokio runtime", e))?;
    runtime.block_on(run_async(opts, &inputs))
}

async fn run_async(opts: &CompareOptions, inputs: &LabInputs) -> Result<(), CompareError> {
    let started = Instant::now();
    let run = crate::docker::run::new_run_id();
    println!(
        "bench-compare: run {run}: netns lab cmp{run}, Compose and Swarm stacks ecomm<id>; {} rounds",
        opts.rounds
    );
    let mut sides = Sides::default();
    let outcome = tokio::select! {
        r = measure_all(opts, inputs, &run, &mut sides) => r,
        s = interrupted() => {
            eprintln!("bench-compare: {s}; tearing everything down");
            Err(CompareError::Interrupted)
        }
    };
    let teardown_started = Instant::now();
    println!("bench-compare: tearing down");
    let left = teardown(sides, &run).await;
    let teardown_s = teardown_started.elapsed().as_secs_f64();
    let wall_s = started.elapsed().as_secs_f64();
    let measured = match outcome {
        Ok(m) => m,
        Err(e) => {
            if let Err(left) = &left {
                eprintln!("bench-compare: {left}");
            }
            return Err(e);
        }
    };
    let report = Report {
        path: opts.path.clone(),
        rounds: opts.rounds as usize,
        wrk_seconds: opts.wrk_seconds,
        body_bytes: measured.body_bytes,
        sides: measured.runs,
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            loadavg_start: measured.loadavg_start,
            loadavg_end: loadavg(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        },
        tools: tools().await,
        timings: Timings {
            setup_s: measured.setup_s,
            rounds_s: measured.rounds_s,
            teardown_s,
            wall_s,
        },
    };
    println!();
    print!("{}", report.table());
    if let Some(parent) = opts.out.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| crate::LabError::io(format!("create {}", parent.display()), e))?;
    }
    let text = serde_json::to_string_pretty(&report.json()).unwrap_or_default();
    std::fs::write(&opts.out, text + "\n")
        .map_err(|e| crate::LabError::io(format!("write {}", opts.out.display()), e))?;
    println!("written to {}", opts.out.display());
    left
}

/// Brings the sides up (into `sides`, so that teardown finds them whatever happens), checks
/// them, warms them up and runs the interleaved rounds.
async fn measure_all(
    opts: &CompareOptions,
    inputs: &LabInputs,
    run: &str,
    sides: &mut Sides,
) -> Result<Measured, CompareError> {
    let setup_started = Instant::now();
    let t = netns_kit::topology::Topology::from_path(&inputs.topology)
        .map_err(|e| crate::LabError::Topology(e.to_string()))?;
    let gateway_port =
        t.service("gateway")
            .and_then(|s| s.port)
            .ok_or_else(|| CompareError::Invalid {
                what: "declaration".into(),
                value: inputs.topology.display().to_string(),
                expected: "a `gateway` service with a port".into(),
            })?;
    let replicas: Vec<(String, usize)> = t
        .services
        .iter()
        .filter(|s| s.name != "gateway")
        .map(|s| (s.name.clone(), s.instances.len()))
        .collect();

    println!(
        "bench-compare: building the images from {}",
        inputs.ecomm.display()
    );
    crate::docker::images::ensure_images().await?;
    println!("bench-compare: bringing up the netns lab, the Compose project and the Swarm stack");
    let (lab, compose, swarm) = tokio::join!(
        LabSide::up(run, inputs),
        ComposeSide::up(&inputs.topology),
        SwarmSide::up(&replicas, gateway_port, &opts.path),
    );
    // Keep every side that came up, so teardown removes it even when another failed.
    let lab = lab.map(|s| sides.lab.insert(s));
    let compose = compose.map(|s| sides.compose.insert(s));
    let swarm = swarm.map(|s| sides.swarm.insert(s));
    let (lab, compose, swarm) = (&*lab?, &*compose?, &*swarm?);
    println!(
        "bench-compare: up after {:.0} s: lab {} ({}), compose {}, swarm {}",
        setup_started.elapsed().as_secs_f64(),
        lab.gateway,
        lab.client,
        compose.gateway,
        swarm.gateway
    );

    // The same thing on every side, or the numbers do not compare.
    let (status, expected) = lab.get(&opts.path).await?;
    if status != 200 {
        return Err(CompareError::Mismatch {
            side: "lab".into(),
            got: format!(
                "status {status}: {}",
                crate::process::last_lines(&expected, 3)
            ),
            expected: "status 200".into(),
        });
    }
    for (name, addr) in [("compose", compose.gateway), ("swarm", swarm.gateway)] {
        let (status, body) = docker_side::fetch(addr, &opts.path).await?;
        if status != 200 || !same_data(&body, &expected) {
            return Err(CompareError::Mismatch {
                side: name.into(),
                got: format!("status {status}, {} bytes", body.len()),
                expected: format!(
                    "status 200 and the same data as the lab's {} bytes (timestamps aside)",
                    expected.len()
                ),
            });
        }
    }

    let order: Vec<(&str, Place, String, String)> = vec![
        ("lab", lab.place(), lab.url(&opts.path), lab.reached()),
        (
            "compose",
            Place::Host,
            format!("http://{}{}", compose.gateway, opts.path),
            compose.reached(),
        ),
        (
            "swarm",
            Place::Host,
            format!("http://{}{}", swarm.gateway, opts.path),
            swarm.reached(),
        ),
    ];
    for (name, place, url, _) in &order {
        let warm = measure::ab_with(place, url, 500, measure::CONCURRENCY).await?;
        println!(
            "bench-compare: warm-up {name:<8} {url}: {:.0} req/s",
            warm.rps.unwrap_or(0.0)
        );
    }
    let setup_s = setup_started.elapsed().as_secs_f64();

    let loadavg_start = loadavg();
    let rounds_started = Instant::now();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); order.len()];
    for round in 1..=opts.rounds {
        for ((name, place, url, _), samples) in order.iter().zip(&mut samples) {
            let ab = measure::ab(place, url).await?;
            let wrk = measure::wrk(place, url, opts.wrk_seconds).await?;
            println!(
                "round {round}/{} {name:<8} ab {:>7.0} req/s mean {:>6.2} ms p99 {:>4.0} ms ok {:>5.1} %{} | wrk {:>7.0} req/s p50 {:>6.2} ms p99 {:>6.2} ms",
                opts.rounds,
                ab.rps.unwrap_or(0.0),
                ab.mean_ms.unwrap_or(0.0),
                ab.p99_ms.unwrap_or(0.0),
                ab.success_pct(),
                ab.aborted.as_deref().map(|a| format!(" (aborted: {a})")).unwrap_or_default(),
                wrk.rps,
                wrk.p50_ms,
                wrk.p99_ms,
            );
            samples.push(Sample { ab, wrk });
        }
    }
    let rounds_s = rounds_started.elapsed().as_secs_f64();
    let runs = order
        .into_iter()
        .zip(samples)
        .map(|((name, _, url, reached), samples)| SideRuns {
            name: name.to_string(),
            url,
            reached,
            samples,
        })
        .collect();
    Ok(Measured {
        runs,
        body_bytes: expected.len(),
        setup_s,
        rounds_s,
        loadavg_start,
    })
}

/// Removes every side that is up, concurrently, and checks that nothing of this run is left.
async fn teardown(sides: Sides, run: &str) -> Result<(), CompareError> {
    let Sides {
        lab,
        compose,
        swarm,
    } = sides;
    let (l, c, s) = tokio::join!(
        async {
            match lab {
                Some(lab) => lab.down().await.map(|()| Vec::new()),
                None => Ok(Vec::new()),
            }
        },
        async {
            match compose {
                Some(c) => c.down().await,
                None => Ok(Vec::new()),
            }
        },
        async {
            match swarm {
                Some(s) => s.remove().await,
                None => Ok(Vec::new()),
            }
        },
    );
    let mut left = Vec::new();
    let mut errors = Vec::new();
    for r in [l, c, s] {
        match r {
            Ok(found) => left.extend(found),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let lab_name = format!("cmp{run}");
    left.extend(LabSide::leftovers(&lab_name));
    left.extend(links_named(&lab_name));
    if left.is_empty() && errors.is_empty() {
        println!("bench-compare: teardown complete, nothing left");
        return Ok(());
    }
    left.extend(errors.into_iter().map(|e| format!("teardown error: {e}")));
    Err(CompareError::Leftovers(left.join("\n")))
}

/// Links in this (the host's) namespace whose name mentions `needle`: a lab whose host link
/// landed here by mistake would show up.
fn links_named(needle: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(needle))
                .map(|n| format!("link {n}"))
                .collect()
        })
        .unwrap_or_default()
}

/// The same data: equal bytes, or equal JSON once timestamps (keys ending in `_at`, set when
/// each side seeded its database) are left out.
pub fn same_data(a: &str, b: &str) -> bool {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !k.ends_with("_at"));
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    if a == b {
        return true;
    }
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(mut x), Ok(mut y)) => {
            strip(&mut x);
            strip(&mut y);
            x == y
        }
        _ => false,
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, naming which.
async fn interrupted() -> String {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C".to_string(),
            _ = term.recv() => "SIGTERM".to_string(),
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C".to_string()
        }
    }
}

/// The three load averages of /proc/loadavg.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The versions of what was measured with and on.
async fn tools() -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("ab".into(), measure::version("ab", &["-V"]).await);
    v.insert("wrk".into(), measure::version("wrk", &["-v"]).await);
    v.insert(
        "docker".into(),
        measure::version("docker", &["version", "--format", "{{.Server.Version}}"]).await,
    );
    v.insert(
        "docker-compose".into(),
        measure::version("docker-compose", &["version", "--short"]).await,
    );
    v
}

#[cfg(test)]
mod tests {
    use super::same_data;

    #[test]
    fn the_same_products_seeded_at_other_times_are_the_same_data() {
        let lab = r#"{"items":[{"id":1,"price_cents":4999,"updated_at":"2026-12-02T02:26:40Z"}]}"#;
        let docker =
            r#"{"items":[{"id":1,"price_cents":4999,"updated_at":"2026-12-02T02:26:44Z"}]}"#;
        assert!(same_data(lab, docker));
        assert!(!same_data(lab, &lab.replace("4999", "5000")));
        assert!(!same_data("not json", "not json either"));
    }
}
