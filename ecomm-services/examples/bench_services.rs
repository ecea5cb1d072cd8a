//! `just bench-services`: the services under load, one table and target/bench/services.json.
//!
//! Starts PostgreSQL and Redis (`ecomm_services::fixtures`), two product instances, one
//! order instance, the gateway, and nginx as a round-robin proxy in front of the same
//! product instances; then measures with wrk and ab:
//! - a cached product read through the gateway and through nginx (wrk -c50, req/s, p50, p99);
//! - the seeds' `ab -n 1000 -c 50` through the gateway;
//! - order creation through the gateway (wrk + Lua, a unique Idempotency-Key per request);
//! - each service's RSS under load (VmRSS sampled during load, VmHWM after).
//!
//! The gateway and nginx read runs are interleaved in `BENCH_ROUNDS` (default 6) slices,
//! alternating which goes first, so both see the same machine load; p50/p99 are the medians
//! of the slices. The ratio is given overall and as the median of the per-round ratios, and
//! each proxy's own CPU time per request (user + system, from /proc) is counted over its
//! slices: the part of the cost that is the proxy's, whatever the shared backends cost.
//! Environment: `BENCH_DURATION_S` (default 30, per proxy) for the wrk read runs, `BENCH_ORDER_DURATION_S`
//! (default 15), `ECOMM_BIN` (default: the `ecomm` next to this example's directory),
//! `BENCH_HOLD_S` (default 0: keep the stack up this long before measuring, to profile by hand).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ecomm_services::fixtures::{free_loopback_port, spawn_tied_to_process, Postgres, Redis};
use serde_json::json;

/// A child process killed (and reaped) on drop.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    /// Spawns the built `command` so that it dies with the bench, even when the bench is
    /// killed (no service or nginx outlives an interrupted run).
    fn spawn(name: &str, command: &mut Command) -> Self {
        command.stdout(Stdio::null()).stderr(Stdio::inherit());
        // The spawner thread needs the command by value; the builder left behind is unused.
        let owned = std::mem::replace(command, Command::new("true"));
        let child =
            spawn_tied_to_process(owned).unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Results of one wrk run.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct Wrk {
    requests_per_sec: f64,
    requests: u64,
    non_2xx: u64,
    socket_errors: u64,
    p50_ms: f64,
    p99_ms: f64,
    duration_s: u64,
}

/// Results of one ab run.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct Ab {
    requests_per_sec: f64,
    complete: u64,
    failed: u64,
    non_2xx: u64,
}

fn ecomm_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("ECOMM_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/examples/bench_services -> target/<profile>/ecomm
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("ecomm"))
        .expect("ecomm binary location")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Polls `ecomm healthcheck url` until it passes (30 s at most).
fn wait_healthy(bin: &Path, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let ok = Command::new(bin)
            .args(["healthcheck", url, "--timeout-ms", "500"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} never became healthy");
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn port() -> u16 {
    free_loopback_port().expect("free loopback port")
}

/// The nginx configuration: a round-robin proxy with upstream keep-alive, as fast as nginx gets.
fn nginx_conf(dir: &Path, listen: SocketAddr, upstreams: &[SocketAddr]) -> String {
    let d = dir.display();
    let mut servers = String::new();
    for upstream in upstreams {
        let _ = writeln!(servers, "        server {upstream};");
    }
    format!(
        r#"worker_processes auto;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000;
    upstream product {{
{servers}        keepalive 128;
    }}
    server {{
        listen {listen} reuseport;
        location / {{
            proxy_pass http://product;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
        }}
    }}
}}
"#
    )
}

fn run_wrk(url: &str, duration_s: u64, script: Option<&Path>) -> Wrk {
    let mut command = Command::new("wrk");
    command.args([
        "-t2",
        "-c50",
        &format!("-d{duration_s}s"),
        "--latency",
        "--timeout",
        "5s",
    ]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    command.arg(url);
    let output = command.output().expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        panic!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_wrk(&text, duration_s)
}

fn parse_wrk(text: &str, duration_s: u64) -> Wrk {
    let mut wrk = Wrk {
        duration_s,
        ..Wrk::default()
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            wrk.requests_per_sec = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("50%") {
            wrk.p50_ms = parse_latency(v.trim());
        } else if let Some(v) = line.strip_prefix("99%") {
            wrk.p99_ms = parse_latency(v.trim());
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            wrk.non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            wrk.socket_errors = v
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        } else if line.contains("requests in") {
            wrk.requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    wrk
}

/// Sums requests over interleaved rounds; p50/p99 are the medians of the rounds.
fn combine(runs: &[Wrk]) -> Wrk {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let requests: u64 = runs.iter().map(|r| r.requests).sum();
    let duration_s: u64 = runs.iter().map(|r| r.duration_s).sum();
    Wrk {
        requests_per_sec: requests as f64 / duration_s.max(1) as f64,
        requests,
        non_2xx: runs.iter().map(|r| r.non_2xx).sum(),
        socket_errors: runs.iter().map(|r| r.socket_errors).sum(),
        p50_ms: median(runs.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|r| r.p99_ms).collect()),
        duration_s,
    }
}

/// wrk prints latencies like `812.00us`, `1.23ms`, `2.01s`.
fn parse_latency(text: &str) -> f64 {
    let (number, scale) = if let Some(v) = text.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = text.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = text.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * scale
}

fn run_ab(url: &str) -> Ab {
    let output = Command::new("ab")
        .args(["-q", "-n", "1000", "-c", "50", url])
        .output()
        .expect("run ab (apt-get install apache2-utils)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut ab = Ab::default();
    for line in text.lines() {
        let field = |prefix: &str| line.strip_prefix(prefix).map(|v| v.trim().to_owned());
        if let Some(v) = field("Requests per second:") {
            ab.requests_per_sec = v
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0.0);
        } else if let Some(v) = field("Complete requests:") {
            ab.complete = v.parse().unwrap_or(0);
        } else if let Some(v) = field("Failed requests:") {
            ab.failed = v.parse().unwrap_or(0);
        } else if let Some(v) = field("Non-2xx responses:") {
            ab.non_2xx = v.parse().unwrap_or(0);
        }
    }
    if ab.complete == 0 {
        panic!(
            "ab produced no result: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    ab
}

/// `pid` and all its descendants (nginx: unshare, the master and its workers).
fn with_children(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        let children =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        all.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
        i += 1;
    }
    all
}

/// User + system CPU time of `pids` (all threads), in clock ticks.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|&pid| netns_kit::procfs::Stat::of(pid))
        .map(|s| s.cpu_ticks())
        .sum()
}

/// CPU microseconds per request; /proc counts in USER_HZ ticks, 100 per second on Linux.
fn cpu_us_per_request(ticks: u64, runs: &[Wrk]) -> f64 {
    let requests: u64 = runs.iter().map(|r| r.requests).sum();
    if requests == 0 {
        return f64::NAN;
    }
    ticks as f64 * 10_000.0 / requests as f64
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// (VmRSS, VmHWM) of `pid` in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .unwrap_or(f64::NAN)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Runs `f` while sampling the peak VmRSS of `pids` every 250 ms.
fn sampling_rss<T>(pids: &[(String, u32)], f: impl FnOnce() -> T) -> (T, Vec<(String, f64)>) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watched = pids.to_vec();
    let flag = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut peaks: Vec<(String, f64)> = watched.iter().map(|(n, _)| (n.clone(), 0.0)).collect();
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            for ((_, pid), (_, peak)) in watched.iter().zip(peaks.iter_mut()) {
                let (rss, _) = rss_mib(*pid);
                if rss > *peak {
                    *peak = rss;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        peaks
    });
    let result = f();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    (result, sampler.join().unwrap_or_default())
}

const ORDER_LUA: &str = r#"
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  math.randomseed(os.time() + tid)
  prefix = string.format("bench-%d-%d-%d", os.time(), tid, math.random(1, 1000000000))
end
function request()
  counter = counter + 1
  local body = string.format('{"customer":"bench-%d@example.com","items":[{"product_id":%d,"quantity":1}]}', counter % 100, (counter % 5) + 1)
  return wrk.format("POST", "/api/orders", {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. "-" .. counter,
  }, body)
end
"#;

fn main() {
    let bin = ecomm_bin();
    assert!(
        bin.exists(),
        "{} missing: build with `cargo build --release -p ecomm-services`",
        bin.display()
    );
    let read_s = env_u64("BENCH_DURATION_S", 30);
    let order_s = env_u64("BENCH_ORDER_DURATION_S", 15);
    let work = tempfile::tempdir().expect("temp dir");

    eprintln!("starting PostgreSQL and Redis…");
    let postgres = Postgres::start().expect("PostgreSQL fixture");
    let redis = Redis::start().expect("Redis fixture");

    let product_ports = [port(), port()];
    let mut products = Vec::new();
    for (i, p) in product_ports.iter().enumerate() {
        let listen = loopback(*p).to_string();
        products.push(Proc::spawn(
            &format!("product-{}", i + 1),
            Command::new(&bin)
                .args(["product", "--listen", &listen])
                .env("ECOMM_PRODUCT_DATABASE_URL", postgres.url("product"))
                .env("ECOMM_PRODUCT_ADMIN_DATABASE_URL", postgres.url("postgres"))
                .env("ECOMM_PRODUCT_REDIS_URL", redis.url())
                .env("RUST_LOG", "warn"),
        ));
        // The first instance creates and seeds the database; start the next after it.
        wait_healthy(&bin, &format!("http://{listen}/readyz"));
    }
    let product_list: Vec<SocketAddr> = product_ports.iter().map(|p| loopback(*p)).collect();

    let order_port = port();
    let order_listen = loopback(order_port).to_string();
    let product_urls = product_list
        .iter()
        .map(|a| format!("http://{a}"))
        .collect::<Vec<_>>()
        .join(",");
    let order = Proc::spawn(
        "order",
        Command::new(&bin)
            .args(["order", "--listen", &order_listen])
            .env(
                "ECOMM_ORDER_DATABASE_URL",
                format!(
                    "postgres://ecomm_order:ecomm_order@127.0.0.1:{}/orders",
                    postgres.port()
                ),
            )
            .env("ECOMM_ORDER_ADMIN_DATABASE_URL", postgres.url("postgres"))
            .env("ECOMM_ORDER_PRODUCT_URL", &product_urls)
            .env("RUST_LOG", "warn"),
    );
    wait_healthy(&bin, &format!("http://{order_listen}/readyz"));

    let gateway_port = port();
    let gateway_listen = loopback(gateway_port).to_string();
    let upstream_list = product_list
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let gateway = Proc::spawn(
        "gateway",
        Command::new(&bin)
            .args([
                "gateway",
                "--listen",
                &gateway_listen,
                "--product-upstreams",
                &upstream_list,
                "--order-upstreams",
                &order_listen,
            ])
            .env("RUST_LOG", "warn"),
    );
    wait_healthy(&bin, &format!("http://{gateway_listen}/readyz"));

    let nginx_port = port();
    let nginx_dir = work.path().join("nginx");
    std::fs::create_dir_all(&nginx_dir).expect("nginx dir");
    let conf = nginx_dir.join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_conf(&nginx_dir, loopback(nginx_port), &product_list),
    )
    .expect("write nginx.conf");
    // nginx's workers outlive a killed master; in a PID namespace of its own the master is
    // init, and the kernel kills every worker when it dies (unshare dies with the bench and
    // takes the master with it).
    let nginx = Proc::spawn(
        "nginx",
        Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "nginx"])
            .arg("-p")
            .arg(&nginx_dir)
            .arg("-c")
            .arg(&conf),
    );
    let product_path = "/api/products/1";
    wait_healthy(
        &bin,
        &format!("http://127.0.0.1:{nginx_port}{product_path}"),
    );

    // Warm the cache and the connection pools.
    let via_gateway = format!("http://{gateway_listen}{product_path}");
    let via_nginx = format!("http://127.0.0.1:{nginx_port}{product_path}");
    for url in [&via_gateway, &via_nginx] {
        run_wrk(url, 2, None);
    }

    // BENCH_HOLD_S: keep the stack up this long before measuring, for profiling by hand.
    let hold_s = env_u64("BENCH_HOLD_S", 0);
    if hold_s > 0 {
        eprintln!(
            "holding {hold_s}s: gateway {via_gateway} (pid {}), nginx {via_nginx} (pid {}, its own PID namespace)",
            gateway.pid(),
            nginx.pid()
        );
        std::thread::sleep(Duration::from_secs(hold_s));
    }

    let mut pids: Vec<(String, u32)> = products.iter().map(|p| (p.name.clone(), p.pid())).collect();
    pids.push(("order".into(), order.pid()));
    pids.push(("gateway".into(), gateway.pid()));

    // Interleave gateway and nginx slices so both see the same machine load, alternating
    // which goes first; CPU time of each proxy's processes is counted over its slices.
    let rounds = env_u64("BENCH_ROUNDS", 6).max(1);
    let slice_s = (read_s / rounds).max(1);
    let mut gateway_rounds = Vec::new();
    let mut nginx_rounds = Vec::new();
    let mut peaks_read: Vec<(String, f64)> = Vec::new();
    let gateway_pids = vec![gateway.pid()];
    let nginx_pids = with_children(nginx.pid());
    let (mut gateway_ticks, mut nginx_ticks) = (0u64, 0u64);
    for round in 1..=rounds {
        let gateway_first = round % 2 == 1;
        eprintln!(
            "round {round}/{rounds}: wrk -c50 -d{slice_s}s via {}…",
            if gateway_first {
                "gateway, then nginx"
            } else {
                "nginx, then gateway"
            }
        );
        let mut via_nginx_slice = |ticks: &mut u64| {
            let before = cpu_ticks(&nginx_pids);
            nginx_rounds.push(run_wrk(&via_nginx, slice_s, None));
            *ticks += cpu_ticks(&nginx_pids).saturating_sub(before);
        };
        if !gateway_first {
            via_nginx_slice(&mut nginx_ticks);
        }
        let before = cpu_ticks(&gateway_pids);
        let (run, peaks) = sampling_rss(&pids, || run_wrk(&via_gateway, slice_s, None));
        gateway_ticks += cpu_ticks(&gateway_pids).saturating_sub(before);
        gateway_rounds.push(run);
        for (name, peak) in peaks {
            match peaks_read.iter_mut().find(|(n, _)| *n == name) {
                Some(entry) => entry.1 = entry.1.max(peak),
                None => peaks_read.push((name, peak)),
            }
        }
        if gateway_first {
            via_nginx_slice(&mut nginx_ticks);
        }
    }
    let round_ratios: Vec<f64> = gateway_rounds
        .iter()
        .zip(&nginx_rounds)
        .map(|(g, n)| g.requests_per_sec / n.requests_per_sec)
        .collect();
    let median_ratio = median(&round_ratios);
    let gateway_read = combine(&gateway_rounds);
    let nginx_read = combine(&nginx_rounds);
    eprintln!("ab -n 1000 -c 50 via gateway…");
    let ab = run_ab(&via_gateway);
    eprintln!("order creation via gateway for {order_s}s…");
    let lua = work.path().join("orders.lua");
    std::fs::write(&lua, ORDER_LUA).expect("write orders.lua");
    let orders_url = format!("http://{gateway_listen}/api/orders");
    let (orders, peaks_orders) = sampling_rss(&pids, || run_wrk(&orders_url, order_s, Some(&lua)));

    let created = orders.requests.saturating_sub(orders.non_2xx);
    let orders_per_sec = created as f64 / order_s as f64;
    let ratio = gateway_read.requests_per_sec / nginx_read.requests_per_sec;

    let mut rss = Vec::new();
    for (name, pid) in &pids {
        let peak_read = peaks_read
            .iter()
            .find(|(n, _)| n == name)
            .map(|p| p.1)
            .unwrap_or(f64::NAN);
        let peak_orders = peaks_orders
            .iter()
            .find(|(n, _)| n == name)
            .map(|p| p.1)
            .unwrap_or(f64::NAN);
        let (now, hwm) = rss_mib(*pid);
        rss.push(json!({
            "service": name,
            "vm_rss_peak_mib": peak_read.max(peak_orders),
            "vm_rss_after_mib": now,
            "vm_hwm_mib": hwm,
        }));
    }

    println!();
    println!("| measurement | value | target |");
    println!("| --- | --- | --- |");
    println!("| gateway cached product read (wrk c50, {rounds}×{slice_s}s) | {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms | p99 ≤ 5 ms |", gateway_read.requests_per_sec, gateway_read.p50_ms, gateway_read.p99_ms);
    println!(
        "| nginx round-robin, same instances | {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms | — |",
        nginx_read.requests_per_sec, nginx_read.p50_ms, nginx_read.p99_ms
    );
    println!("| ratio gateway / nginx | {ratio:.2} overall; median of {rounds} rounds {median_ratio:.2} | ≥ 1.0 |");
    let gateway_cpu_us = cpu_us_per_request(gateway_ticks, &gateway_rounds);
    let nginx_cpu_us = cpu_us_per_request(nginx_ticks, &nginx_rounds);
    println!("| proxy CPU per request (user + system) | gateway {gateway_cpu_us:.1} µs, nginx {nginx_cpu_us:.1} µs | — |");
    println!("| ab -n 1000 -c 50 via gateway | {:.0} req/s, {} failed, {} non-2xx | ≥ 5400 req/s, 0 failed |", ab.requests_per_sec, ab.failed, ab.non_2xx);
    println!("| order creation via gateway ({order_s}s) | {orders_per_sec:.0} orders/s ({} non-2xx, {} socket errors, p99 {:.2} ms) | ≥ 1500/s |", orders.non_2xx, orders.socket_errors, orders.p99_ms);
    for entry in &rss {
        println!(
            "| RSS {} under load | peak {:.1} MiB, HWM {:.1} MiB | ≤ 30 MiB |",
            entry["service"].as_str().unwrap_or("?"),
            entry["vm_rss_peak_mib"].as_f64().unwrap_or(f64::NAN),
            entry["vm_hwm_mib"].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!(
        "| gateway errors during read run | {} non-2xx, {} socket errors | 0 |",
        gateway_read.non_2xx, gateway_read.socket_errors
    );

    let report = json!({
        "gateway_read": gateway_read,
        "nginx_read": nginx_read,
        "gateway_read_rounds": gateway_rounds,
        "nginx_read_rounds": nginx_rounds,
        "ratio_vs_nginx": ratio,
        "ratio_vs_nginx_rounds": round_ratios,
        "ratio_vs_nginx_median": median_ratio,
        "cpu_us_per_request": { "gateway": gateway_cpu_us, "nginx": nginx_cpu_us },
        "ab_gateway": ab,
        "orders": { "wrk": orders, "created": created, "orders_per_sec": orders_per_sec },
        "rss": rss,
        "targets": {
            "ratio_vs_nginx": 1.0, "p99_ms": 5.0, "ab_requests_per_sec": 5400.0,
            "orders_per_sec": 1500.0, "rss_mib": 30.0
        },
        "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
    });
    let out = workspace_root().join("target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    let path = out.join("services.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .expect("write services.json");
    println!("\nwrote {}", path.display());
    drop(nginx);
    drop(gateway);
    drop(order);
    drop(products);
}
