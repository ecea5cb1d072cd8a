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
//!
//! Until the shared scenarios land in `xtests::scenarios::all()`, the four scenarios the VM
//! suite always ran (isolation across hosts, routing to every backend host, partition and
//! kill of a backend host under load) run here, written against the same
//! [`Deployment`] trait; once `all()` has scenarios, those run instead.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xtests::backend::vm::{self as vm_backend, Bins, VmDeployment};
use xtests::deployment::Deployment;
use xtests::http::Request;
use xtests::ns::TcpOutcome;
use xtests::scenarios::{self, Needs, Outcome, Scenario};

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
    let shared = scenarios::all();
    let all = if shared.is_empty() {
        stopgap::all()
    } else {
        shared
    };
    let selected: Vec<Scenario> = all
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

/// The four scenarios the VM suite ran before the shared ones existed, on the trait; every
/// node, address, port and host comes from [`Deployment::topology`].
mod stopgap {
    use super::*;

    /// A port nothing declared listens on, for [`Deployment::listen`] probes.
    const PROBE_PORT: u16 = 9000;
    /// After this long, a dead or partitioned instance gets no more requests.
    const EJECTION_BOUND: Duration = Duration::from_secs(2);
    /// How long load keeps running after a fault: the bound plus a stretch in which every
    /// request must succeed.
    const AFTER_FAULT: Duration = Duration::from_secs(10);

    pub fn all() -> Vec<Scenario> {
        vec![
            Scenario {
                name: "isolation::tier_policy_holds_across_hosts",
                needs: Needs::default(),
                run: tier_policy_holds_across_hosts,
            },
            Scenario {
                name: "routing::gateway_reaches_every_backend_host_and_orders_land_in_postgres",
                needs: Needs::default(),
                run: gateway_reaches_every_backend_host_and_orders_land_in_postgres,
            },
            Scenario {
                name: "failover::partitioning_a_backend_host_loses_no_request_after_ejection",
                needs: Needs {
                    partitions: true,
                    ..Needs::default()
                },
                run: partitioning_a_backend_host_loses_no_request_after_ejection,
            },
            Scenario {
                name: "failover::killing_a_backend_host_loses_no_request_after_ejection",
                needs: Needs {
                    host_faults: true,
                    ..Needs::default()
                },
                run: killing_a_backend_host_loses_no_request_after_ejection,
            },
        ]
    }

    fn e(err: impl std::fmt::Display) -> String {
        err.to_string()
    }

    /// The nodes running service `service`, in declared order.
    fn instances(d: &dyn Deployment, service: &str) -> Result<Vec<String>, String> {
        let s = d
            .topology()
            .service(service)
            .ok_or_else(|| format!("the declaration has no service {service:?}"))?;
        Ok(s.instances.iter().map(|i| i.node.clone()).collect())
    }

    /// The one node running service `service`.
    fn node_of(d: &dyn Deployment, service: &str) -> Result<String, String> {
        instances(d, service)?
            .into_iter()
            .next()
            .ok_or_else(|| format!("service {service} has no instance"))
    }

    /// The placement host carrying `node`.
    fn host_of(d: &dyn Deployment, node: &str) -> Result<String, String> {
        d.topology()
            .placement
            .as_ref()
            .and_then(|p| p.host_of(node))
            .map(str::to_string)
            .ok_or_else(|| format!("node {node} is not placed"))
    }

    /// Where the instance on `node` of `service` listens.
    fn listen_of(d: &dyn Deployment, service: &str, node: &str) -> Result<SocketAddr, String> {
        d.topology()
            .service(service)
            .and_then(|s| s.listen(node))
            .ok_or_else(|| format!("no {service} instance with a port on {node}"))
    }

    /// `node`'s declared address at `port`.
    fn at(d: &dyn Deployment, node: &str, port: u16) -> Result<SocketAddr, String> {
        d.topology()
            .node(node)
            .and_then(|n| n.interfaces.first())
            .map(|i| SocketAddr::new(i.address, port))
            .ok_or_else(|| format!("no node {node} with an address"))
    }

    /// The database the declaration gives `service`.
    fn database(d: &dyn Deployment, service: &str) -> Result<String, String> {
        d.topology()
            .service(service)
            .and_then(|s| s.data.get("database").cloned())
            .ok_or_else(|| format!("service {service} declares no data.database"))
    }

    /// The backend host a fault hits: the last placement host whose every node runs an
    /// instance of a service with another instance elsewhere (every service survives it).
    fn backend_host(d: &dyn Deployment) -> Result<String, String> {
        let t = d.topology();
        let placement = t
            .placement
            .as_ref()
            .ok_or("the declaration has no placement")?;
        placement
            .hosts
            .iter()
            .filter(|(host, nodes)| {
                nodes.iter().all(|node| {
                    t.services.iter().any(|s| {
                        s.instances.iter().any(|i| &i.node == node)
                            && s.instances
                                .iter()
                                .any(|i| placement.host_of(&i.node) != Some(host.as_str()))
                    })
                })
            })
            .map(|(host, _)| host.clone())
            .next_back()
            .ok_or_else(|| "no placement host whose loss every service survives".to_string())
    }

    /// The requests instance `node` served on routes starting with `route` (its metrics).
    fn served(d: &dyn Deployment, node: &str, route: &str) -> Result<u64, String> {
        let metrics = d.metrics(node).map_err(e)?;
        Ok(metrics
            .lines()
            .filter(|l| {
                l.starts_with("http_requests_total{") && l.contains(&format!("route=\"{route}"))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64)
    }

    /// A POST of an order for `customer@example.com` with Idempotency-Key `key`.
    fn order(key: &str) -> Request {
        Request::post_json(
            "/api/orders",
            &serde_json::json!({
                "customer": format!("{key}@example.com"),
                "items": [{"product_id": 1, "quantity": 1}],
            }),
        )
        .header("Idempotency-Key", key)
    }

    /// Probes every path from several threads (the VMs answer in parallel); returns those
    /// whose outcome is not `want` (an allowed path gets three tries: a loaded TCG guest
    /// can miss a deadline).
    fn mismatches(
        d: &dyn Deployment,
        paths: &[(String, SocketAddr)],
        want: TcpOutcome,
    ) -> Vec<String> {
        std::thread::scope(|s| {
            let handles: Vec<_> = paths
                .iter()
                .map(|(from, to)| {
                    s.spawn(move || {
                        let tries = if want == TcpOutcome::Reachable { 3 } else { 1 };
                        let mut last = Err(String::new());
                        for _ in 0..tries {
                            last = d.tcp_probe(from, *to, Duration::from_secs(3)).map_err(e);
                            if last == Ok(want) {
                                return None;
                            }
                        }
                        Some(format!("{from} -> {to}: {last:?}"))
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().unwrap_or_else(|_| Some("probe panicked".into())))
                .collect()
        })
    }

    /// Frontend reaches the backend's service ports only; backend nodes on different hosts
    /// reach each other freely; products reach Redis and PostgreSQL, orders PostgreSQL only;
    /// the frontend reaches no database; the database tier opens nothing.
    fn tier_policy_holds_across_hosts(d: &dyn Deployment) -> Result<(), String> {
        let gateway = node_of(d, "gateway")?;
        let (redis, postgres) = (node_of(d, "redis")?, node_of(d, "postgres")?);
        let order = node_of(d, "order")?;
        let products = instances(d, "product")?;
        let gateway_host = host_of(d, &gateway)?;
        // A product instance away from the gateway's host, and one on yet another host.
        let far = products
            .iter()
            .find(|p| host_of(d, p).is_ok_and(|h| h != gateway_host))
            .ok_or("no product instance off the gateway's host")?
            .clone();
        let other = products
            .iter()
            .find(|p| host_of(d, p).ok() != host_of(d, &far).ok())
            .ok_or("no product instance on a second host")?
            .clone();
        let _listeners = [&far, &other, &gateway]
            .iter()
            .map(|n| d.listen(n, PROBE_PORT))
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        let redis_at = listen_of(d, "redis", &redis)?;
        let postgres_at = listen_of(d, "postgres", &postgres)?;
        let allowed = vec![
            (gateway.clone(), listen_of(d, "product", &far)?),
            (far.clone(), at(d, &other, PROBE_PORT)?),
            (other.clone(), redis_at),
            (other.clone(), postgres_at),
            (order.clone(), postgres_at),
        ];
        let denied = vec![
            (gateway.clone(), at(d, &far, PROBE_PORT)?),
            (order.clone(), redis_at),
            (gateway.clone(), redis_at),
            (gateway.clone(), postgres_at),
            (redis.clone(), listen_of(d, "product", &far)?),
            (postgres.clone(), at(d, &gateway, PROBE_PORT)?),
        ];
        let closed = mismatches(d, &allowed, TcpOutcome::Reachable);
        if !closed.is_empty() {
            return Err(format!("allowed paths must connect: {closed:?}"));
        }
        let open = mismatches(d, &denied, TcpOutcome::TimedOut);
        if !open.is_empty() {
            return Err(format!("denied paths must be dropped: {open:?}"));
        }
        Ok(())
    }

    /// GETs through the gateway reach every product instance, on every backend host; an
    /// order lands in PostgreSQL exactly once.
    fn gateway_reaches_every_backend_host_and_orders_land_in_postgres(
        d: &dyn Deployment,
    ) -> Result<(), String> {
        let products = instances(d, "product")?;
        let before: Vec<u64> = products
            .iter()
            .map(|p| served(d, p, "/api/products"))
            .collect::<Result<_, _>>()?;
        for _ in 0..4 * products.len() {
            let resp = d.get("/api/products/1").map_err(e)?;
            if resp.status != 200 {
                return Err(format!(
                    "GET /api/products/1: {} {}",
                    resp.status,
                    resp.text()
                ));
            }
        }
        for (p, b) in products.iter().zip(&before) {
            let after = served(d, p, "/api/products")?;
            if after <= *b {
                return Err(format!(
                    "{p} on {} served nothing: {b} -> {after}",
                    host_of(d, p)?
                ));
            }
        }
        let key = format!("{}-routing", d.run_id());
        let resp = d.send(&order(&key)).map_err(e)?;
        let body = resp
            .json()
            .map_err(|err| format!("order response {:?}: {err}", resp.text()))?;
        if resp.status != 201 || body["status"] != "placed" {
            return Err(format!("order: {} {}", resp.status, resp.text()));
        }
        let id = body["id"]
            .as_str()
            .ok_or(format!("order without id: {body}"))?;
        let stored = d
            .sql(
                &database(d, "order")?,
                &format!("select count(*) from orders where id = '{id}'"),
            )
            .map_err(e)?;
        if stored != "1" {
            return Err(format!("order {id} stored {stored} times, expected once"));
        }
        Ok(())
    }

    /// One request the load made: when its answer (or failure) came, since the load began
    /// (a request answered after the bound must have succeeded, whenever it started), its order key
    /// (empty for GETs), its status (0 without a response).
    #[derive(Debug, Clone)]
    struct Attempt {
        at: Duration,
        key: String,
        status: u16,
    }

    /// How often the load starts a GET, and a new order.
    const CADENCE: (Duration, Duration) = (Duration::from_millis(250), Duration::from_millis(500));
    /// At most this many GETs, and orders, in flight at once (each guest has one agent,
    /// answering one command at a time; an order during a fault can take the gateway's
    /// whole retry budget, so more of them overlap).
    const IN_FLIGHT: (usize, usize) = (2, 4);

    /// GETs and orders through the gateway until `stop`, each started at a fixed cadence on
    /// its own thread (a request stuck on a fault does not hold back the ones after it);
    /// an order is retried with its key until acknowledged or stopped.
    fn load(
        d: &dyn Deployment,
        tag: &str,
        stop: &AtomicBool,
        start: Instant,
    ) -> (Vec<Attempt>, Vec<Attempt>) {
        let gets = Mutex::new(Vec::new());
        let orders = Mutex::new(Vec::new());
        let busy = (AtomicUsize::new(0), AtomicUsize::new(0));
        let record = |log: &Mutex<Vec<Attempt>>, at, key: &str, status| {
            let attempt = Attempt {
                at,
                key: key.to_string(),
                status,
            };
            log.lock().unwrap_or_else(|p| p.into_inner()).push(attempt);
        };
        let (gets_ref, orders_ref, busy_ref, record_ref) = (&gets, &orders, &busy, &record);
        std::thread::scope(|s| {
            let (mut next_get, mut next_order, mut i) = (Duration::ZERO, Duration::ZERO, 0);
            while !stop.load(Ordering::Relaxed) {
                let now = start.elapsed();
                if now >= next_get && busy.0.load(Ordering::Relaxed) < IN_FLIGHT.0 {
                    next_get = now + CADENCE.0;
                    busy.0.fetch_add(1, Ordering::Relaxed);
                    s.spawn(move || {
                        let status = d.get("/api/products/1").map_or(0, |r| r.status);
                        let at = start.elapsed();
                        record_ref(gets_ref, at, "", status);
                        busy_ref.0.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                if now >= next_order && busy.1.load(Ordering::Relaxed) < IN_FLIGHT.1 {
                    next_order = now + CADENCE.1;
                    i += 1;
                    let key = format!("{}-{tag}-{i}", d.run_id());
                    busy.1.fetch_add(1, Ordering::Relaxed);
                    s.spawn(move || {
                        loop {
                            let status = d.send(&order(&key)).map_or(0, |r| r.status);
                            let at = start.elapsed();
                            record_ref(orders_ref, at, &key, status);
                            if status == 201 || stop.load(Ordering::Relaxed) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        busy_ref.1.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let take = |m: Mutex<Vec<Attempt>>| m.into_inner().unwrap_or_else(|p| p.into_inner());
        (take(gets), take(orders))
    }

    /// Runs load, applies `fault` after 2 s, keeps the load [`AFTER_FAULT`] longer and checks
    /// the guarantees: after the ejection bound no request fails, orders are still
    /// acknowledged, every acknowledged order is stored exactly once.
    fn under_load(
        d: &dyn Deployment,
        tag: &str,
        fault: impl FnOnce() -> Result<(), String> + Send,
    ) -> Result<(), String> {
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        let (fault_at, (gets, orders)) = std::thread::scope(|s| {
            let faulter = s.spawn(|| {
                std::thread::sleep(Duration::from_secs(2));
                let at = start.elapsed();
                let result = fault();
                std::thread::sleep(AFTER_FAULT);
                stop.store(true, Ordering::Relaxed);
                result.map(|()| at)
            });
            let logs = load(d, tag, &stop, start);
            (
                faulter
                    .join()
                    .unwrap_or_else(|_| Err("the fault panicked".into())),
                logs,
            )
        });
        let bound = fault_at? + EJECTION_BOUND;
        let late = |log: &[Attempt], ok: u16| -> Vec<Attempt> {
            log.iter()
                .filter(|a| a.at > bound && a.status != ok)
                .cloned()
                .collect()
        };
        let failed_gets = late(&gets, 200);
        if !failed_gets.is_empty() {
            return Err(format!(
                "{tag}: GETs failed after the ejection bound: {failed_gets:?}"
            ));
        }
        if !gets.iter().any(|a| a.at > bound) {
            return Err(format!("{tag}: no GET ran after the bound"));
        }
        let failed_orders = late(&orders, 201);
        if !failed_orders.is_empty() {
            return Err(format!(
                "{tag}: orders failed after the ejection bound: {failed_orders:?}"
            ));
        }
        if !orders.iter().any(|a| a.at > bound && a.status == 201) {
            return Err(format!("{tag}: no order was acknowledged after the bound"));
        }
        let mut acked: Vec<&str> = orders
            .iter()
            .filter(|a| a.status == 201)
            .map(|a| a.key.as_str())
            .collect();
        acked.sort();
        acked.dedup();
        let stored = d
            .sql(
                &database(d, "order")?,
                &format!(
                    "select customer, count(*) from orders where customer like '{}-{tag}-%' group by customer",
                    d.run_id()
                ),
            )
            .map_err(e)?;
        for key in acked {
            let count = stored
                .lines()
                .find(|l| l.starts_with(&format!("{key}@example.com|")))
                .and_then(|l| l.rsplit('|').next());
            if count != Some("1") {
                return Err(format!(
                    "{tag}: acknowledged order {key} stored {count:?} times, expected once"
                ));
            }
        }
        Ok(())
    }

    /// Waits until every product and order instance on `host` serves gateway traffic again.
    fn wait_rejoined(d: &dyn Deployment, host: &str, tag: &str) -> Result<(), String> {
        let mut watched = Vec::new();
        for (service, route) in [("product", "/api/products"), ("order", "/api/orders")] {
            for node in instances(d, service)? {
                if host_of(d, &node)? == host {
                    let before = served(d, &node, route).unwrap_or(0);
                    watched.push((node, route, before));
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut n = 0;
        loop {
            let mut waiting = Vec::new();
            for (node, route, before) in &watched {
                if served(d, node, route).unwrap_or(0) <= *before {
                    waiting.push(node.as_str());
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{tag}: {waiting:?} on {host} did not rejoin"));
            }
            // Failures while the gateway re-admits the instances are fine here; only
            // rejoining is judged.
            // Four GETs and four fresh orders at once (they overlap in the guest).
            std::thread::scope(|s| {
                for _ in 0..4 {
                    n += 1;
                    let key = format!("{}-rejoin-{tag}-{n}", d.run_id());
                    s.spawn(|| d.get("/api/products/1").map(|_| ()));
                    s.spawn(move || d.send(&order(&key)).map(|_| ()));
                }
            });
        }
    }

    /// Kill a backend host outright under load; restart it and its instances rejoin.
    fn killing_a_backend_host_loses_no_request_after_ejection(
        d: &dyn Deployment,
    ) -> Result<(), String> {
        let host = backend_host(d)?;
        let guarantees = under_load(d, "kill", || d.kill_host(&host).map_err(e));
        // The host comes back whatever the verdict, for the scenarios after this one.
        d.restart_host(&host).map_err(e)?;
        guarantees?;
        wait_rejoined(d, &host, "kill")
    }

    /// Cut a backend host off the underlay under load (it keeps running); heal it and its
    /// instances rejoin.
    fn partitioning_a_backend_host_loses_no_request_after_ejection(
        d: &dyn Deployment,
    ) -> Result<(), String> {
        let host = backend_host(d)?;
        let guarantees = under_load(d, "partition", || d.partition_host(&host).map_err(e));
        d.heal_host(&host).map_err(e)?;
        guarantees?;
        wait_rejoined(d, &host, "partition")
    }
}
