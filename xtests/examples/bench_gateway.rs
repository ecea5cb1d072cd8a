//! `just bench-gateway`: the gateway, nginx and HAProxy where users put them — in the lab's
//! gateway namespace, in front of the same declared product instances — one table and
//! target/bench/gateway.json.
//!
//! Starts the lab (test mode: anonymous namespaces, torn down on exit), then nginx and HAProxy
//! (Debian's packages) beside the gateway on the gateway node's declared address, each
//! configured the way its documentation recommends for a keep-alive round-robin reverse proxy
//! with health checks: nginx `upstream` + `keepalive`, `proxy_http_version 1.1`,
//! `Connection ""`, `worker_processes` = cores, passive checks (`max_fails`: open-source
//! nginx has no active ones); HAProxy `balance roundrobin`, `http-reuse always`,
//! `option httpchk GET /readyz`, `nbthread` = cores. wrk runs inside the frontend tier (the
//! gateway's namespace), for a cached product read and for the product list at c1, c50 and
//! c200, in interleaved rounds (the order of the proxies rotates each round) so that all three
//! see the same machine. Per proxy and case: req/s (median of the rounds, with min and max),
//! p50 and p99 (medians), CPU µs per request (utime + stime of the proxy's processes over its
//! slices) and, from a separate short run under `strace -c -f`, system calls per request.
//!
//! Environment: `BENCH_ROUNDS` (default 3), `BENCH_SLICE_S` (default 4, seconds per wrk
//! slice), `BENCH_STRACE_S` (default 3; 0 skips the strace runs), `ECOMM_BIN` (the `ecomm`
//! binary the lab runs), `BENCH_HOLD_S` (default 0: keep everything up this long before
//! measuring, to profile by hand).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;
use xtests::component::Kind;
use xtests::http::Request;
use xtests::ns::NsHandle;
use xtests::process::{processes_in_namespaces, Launch, Lifetime, Process};
use xtests::Lab;

type Error = Box<dyn std::error::Error>;

/// The paths measured: a cached product read and the first page of the product list.
const CASES: [(&str, &str); 2] = [("product", "/api/products/1"), ("list", "/api/products")];
/// wrk connections per case (wrk threads: 1 for c1, else 2).
const CONCURRENCY: [u32; 3] = [1, 50, 200];
const PROXIES: [&str; 3] = ["gateway", "nginx", "haproxy"];

fn main() -> Result<(), Error> {
    if !xtests::privileged("bench-gateway (the lab's namespaces)") {
        return Ok(());
    }
    let rounds = env_u64("BENCH_ROUNDS", 3).max(1);
    let slice_s = env_u64("BENCH_SLICE_S", 4).max(1);
    let strace_s = env_u64("BENCH_STRACE_S", 3);
    let load_before = loadavg();
    let started = Instant::now();

    eprintln!("starting the lab…");
    let lab = Lab::start()?;
    let ns = lab.ns("gateway")?.clone();
    let gateway = lab.addr("gateway")?;
    let products: Vec<SocketAddr> = lab
        .of_kind(Kind::Product)
        .iter()
        .map(|name| lab.addr(name))
        .collect::<Result<_, _>>()?;
    let gateway_pids = processes_in_namespaces(&BTreeSet::from([ns.inode()?]));
    if gateway_pids.is_empty() {
        return Err("no gateway process found in the gateway namespace".into());
    }
    // The backends every proxy shares: the product instances and Redis behind them.
    let mut backend_inodes = BTreeSet::new();
    for name in lab
        .of_kind(Kind::Product)
        .iter()
        .chain(&lab.of_kind(Kind::Redis))
    {
        backend_inodes.insert(lab.ns(name)?.inode()?);
    }
    let backend_pids = processes_in_namespaces(&backend_inodes);
    let dir = lab.dir().join("bench-gateway");
    std::fs::create_dir_all(&dir)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let nginx_addr = SocketAddr::new(gateway.ip(), free_port(&ns, gateway)?);
    let nginx_dir = dir.join("nginx");
    std::fs::create_dir_all(&nginx_dir)?;
    let nginx_conf = nginx_dir.join("nginx.conf");
    std::fs::write(
        &nginx_conf,
        nginx_config(&nginx_dir, nginx_addr, &products, cores),
    )?;
    // In a PID namespace of its own the master is init: its workers die with it.
    let mut nginx = Launch::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "nginx", "-p"])
        .arg(&nginx_dir)
        .arg("-c")
        .arg(&nginx_conf)
        .spawn(
            Some(&ns),
            &dir.join("nginx.log"),
            Lifetime::TiedToParent,
            lab.run_id(),
        )?;

    let haproxy_addr = SocketAddr::new(gateway.ip(), free_port(&ns, gateway)?);
    let haproxy_conf = dir.join("haproxy.cfg");
    std::fs::write(
        &haproxy_conf,
        haproxy_config(haproxy_addr, &products, cores),
    )?;
    let mut haproxy = Launch::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&haproxy_conf)
        .spawn(
            Some(&ns),
            &dir.join("haproxy.log"),
            Lifetime::TiedToParent,
            lab.run_id(),
        )?;

    let targets = [
        ("gateway", gateway, gateway_pids.clone()),
        ("nginx", nginx_addr, Vec::new()),
        ("haproxy", haproxy_addr, vec![haproxy.pid()]),
    ];
    for (name, addr, _) in &targets {
        wait_serving(&ns, *addr, CASES[0].1, name)?;
    }
    let nginx_pids = with_children(nginx.pid());
    let pids_of = |proxy: &str| -> Vec<i32> {
        match proxy {
            "gateway" => gateway_pids.clone(),
            "nginx" => nginx_pids.clone(),
            _ => vec![haproxy.pid()],
        }
    };
    let addr_of = |proxy: &str| targets.iter().find(|t| t.0 == proxy).map(|t| t.1);

    // Warm every cache and connection pool.
    for (proxy, addr, _) in &targets {
        for (_, path) in CASES {
            wrk(&ns, lab.run_id(), *addr, path, 50, 1)
                .map_err(|e| format!("warming {proxy}: {e}"))?;
        }
    }
    let hold_s = env_u64("BENCH_HOLD_S", 0);
    if hold_s > 0 {
        eprintln!(
            "holding {hold_s}s: gateway {gateway} (pids {gateway_pids:?}), nginx {nginx_addr} \
             (pids {nginx_pids:?}), haproxy {haproxy_addr} (pid {})",
            haproxy.pid()
        );
        std::thread::sleep(Duration::from_secs(hold_s));
    }

    // Interleaved rounds: every case in every round, the proxies' order rotating.
    let mut slices: Vec<Slice> = Vec::new();
    for round in 0..rounds {
        for (case, path) in CASES {
            for connections in CONCURRENCY {
                for k in 0..PROXIES.len() {
                    let proxy = PROXIES[(k + round as usize + connections as usize) % 3];
                    let addr = addr_of(proxy).ok_or("unknown proxy")?;
                    let pids = pids_of(proxy);
                    eprintln!(
                        "round {}/{rounds}: {case} c{connections} via {proxy}…",
                        round + 1
                    );
                    let before = cpu_ticks(&pids);
                    let backend_before = cpu_ticks(&backend_pids);
                    let run = wrk(&ns, lab.run_id(), addr, path, connections, slice_s)?;
                    let ticks = cpu_ticks(&pids).saturating_sub(before);
                    let backend_ticks = cpu_ticks(&backend_pids).saturating_sub(backend_before);
                    slices.push(Slice {
                        proxy,
                        case,
                        connections,
                        run,
                        ticks,
                        backend_ticks,
                    });
                }
            }
        }
    }

    // System calls per request: a separate short run of each proxy under strace.
    let mut syscalls = serde_json::Map::new();
    if strace_s > 0 {
        for proxy in PROXIES {
            let addr = addr_of(proxy).ok_or("unknown proxy")?;
            eprintln!("strace -c -f: {} c50 via {proxy}…", CASES[0].0);
            let counted = strace_run(&ns, &lab, &dir, proxy, &pids_of(proxy), addr, strace_s)?;
            syscalls.insert(proxy.to_string(), counted);
        }
    }

    let load_after = loadavg();
    let mut results = Vec::new();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| case | conc | proxy | req/s (median, min–max) | p50 ms | p99 ms | CPU µs/req | backend CPU µs/req | syscalls/req |"
    );
    let _ = writeln!(
        table,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (case, path) in CASES {
        for connections in CONCURRENCY {
            for proxy in PROXIES {
                let mine: Vec<&Slice> = slices
                    .iter()
                    .filter(|s| s.proxy == proxy && s.case == case && s.connections == connections)
                    .collect();
                let summary = summarize(&mine);
                let per_request = (case == CASES[0].0 && connections == 50)
                    .then(|| syscalls.get(proxy).and_then(|s| s["per_request"].as_f64()))
                    .flatten();
                let _ = writeln!(
                    table,
                    "| {case} | c{connections} | {proxy} | {:.0} ({:.0}–{:.0}) | {:.2} | {:.2} | {:.1} | {:.1} | {} |",
                    summary.rps_median,
                    summary.rps_min,
                    summary.rps_max,
                    summary.p50_ms,
                    summary.p99_ms,
                    summary.cpu_us_per_request,
                    summary.backend_cpu_us_per_request,
                    per_request.map_or("—".to_string(), |v| format!("{v:.1}")),
                );
                results.push(json!({
                    "case": case, "path": path, "connections": connections, "proxy": proxy,
                    "summary": summary, "rounds": mine.iter().map(|s| &s.run).collect::<Vec<_>>(),
                }));
            }
        }
    }
    // The goal: at c50 and c200, gateway ≥ 1.2 × the faster other proxy, p99 no higher.
    let mut leads = Vec::new();
    let _ = writeln!(
        table,
        "\n| case | conc | gateway / faster of nginx, HAProxy | gateway p99 vs theirs | goal met |"
    );
    let _ = writeln!(table, "| --- | --- | --- | --- | --- |");
    for (case, _) in CASES {
        for connections in [50, 200] {
            let get = |proxy: &str| {
                results
                    .iter()
                    .find(|r| {
                        r["case"] == case && r["connections"] == connections && r["proxy"] == proxy
                    })
                    .map(|r| r["summary"].clone())
                    .unwrap_or_default()
            };
            let (g, n, h) = (get("gateway"), get("nginx"), get("haproxy"));
            let rps = |v: &serde_json::Value| v["rps_median"].as_f64().unwrap_or(f64::NAN);
            let p99 = |v: &serde_json::Value| v["p99_ms"].as_f64().unwrap_or(f64::NAN);
            let (best, best_name) = if rps(&n) >= rps(&h) {
                (&n, "nginx")
            } else {
                (&h, "haproxy")
            };
            let ratio = rps(&g) / rps(best);
            let p99_other = p99(&n).min(p99(&h));
            let met = ratio >= 1.2 && p99(&g) <= p99_other;
            let _ = writeln!(
                table,
                "| {case} | c{connections} | {ratio:.2} ({best_name}) | {:.2} ms vs {:.2} ms | {} |",
                p99(&g),
                p99_other,
                if met { "yes" } else { "no" }
            );
            leads.push(json!({
                "case": case, "connections": connections, "ratio": ratio, "faster_other": best_name,
                "gateway_p99_ms": p99(&g), "lowest_other_p99_ms": p99_other, "goal_met": met,
            }));
        }
    }
    println!("\n{table}");
    println!(
        "load average before {} / after {} (1, 5, 15 min); {cores} cores",
        load_before.join(" "),
        load_after.join(" ")
    );

    let report = json!({
        "results": results,
        "leads": leads,
        "syscalls": syscalls,
        "rounds": rounds,
        "slice_s": slice_s,
        "machine": {
            "cpus": cores,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "elapsed_s": started.elapsed().as_secs_f64(),
        "configs": {
            "nginx": std::fs::read_to_string(&nginx_conf)?,
            "haproxy": std::fs::read_to_string(&haproxy_conf)?,
        },
    });
    let out = workspace_root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    let path = out.join("gateway.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", path.display());
    nginx.stop(Signal::SIGTERM, Duration::from_secs(5));
    haproxy.stop(Signal::SIGTERM, Duration::from_secs(5));
    drop(lab);
    Ok(())
}

/// One wrk slice of one proxy.
struct Slice {
    proxy: &'static str,
    case: &'static str,
    connections: u32,
    run: Wrk,
    ticks: u64,
    /// CPU ticks of the product instances and Redis over the slice.
    backend_ticks: u64,
}

/// The results of one wrk run.
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

/// One proxy's rounds of one case, summarised.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct Summary {
    rps_median: f64,
    rps_min: f64,
    rps_max: f64,
    p50_ms: f64,
    p99_ms: f64,
    p99_max_ms: f64,
    cpu_us_per_request: f64,
    /// CPU of the product instances and Redis per request (the same work behind every proxy).
    backend_cpu_us_per_request: f64,
    requests: u64,
    errors: u64,
}

fn summarize(slices: &[&Slice]) -> Summary {
    let rps: Vec<f64> = slices.iter().map(|s| s.run.requests_per_sec).collect();
    let requests: u64 = slices.iter().map(|s| s.run.requests).sum();
    let ticks: u64 = slices.iter().map(|s| s.ticks).sum();
    let backend_ticks: u64 = slices.iter().map(|s| s.backend_ticks).sum();
    // /proc counts in USER_HZ ticks, 100 per second on Linux.
    let per_request = |ticks: u64| {
        if requests == 0 {
            f64::NAN
        } else {
            ticks as f64 * 10_000.0 / requests as f64
        }
    };
    Summary {
        rps_median: median(&rps),
        rps_min: rps.iter().copied().fold(f64::INFINITY, f64::min),
        rps_max: rps.iter().copied().fold(0.0, f64::max),
        p50_ms: median(&slices.iter().map(|s| s.run.p50_ms).collect::<Vec<_>>()),
        p99_ms: median(&slices.iter().map(|s| s.run.p99_ms).collect::<Vec<_>>()),
        p99_max_ms: slices.iter().map(|s| s.run.p99_ms).fold(0.0, f64::max),
        cpu_us_per_request: per_request(ticks),
        backend_cpu_us_per_request: per_request(backend_ticks),
        requests,
        errors: slices
            .iter()
            .map(|s| s.run.non_2xx + s.run.socket_errors)
            .sum(),
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// nginx as its docs describe a keep-alive round-robin reverse proxy.
fn nginx_config(dir: &Path, listen: SocketAddr, upstreams: &[SocketAddr], cores: usize) -> String {
    let d = dir.display();
    let mut servers = String::new();
    for upstream in upstreams {
        let _ = writeln!(
            servers,
            "        server {upstream} max_fails=3 fail_timeout=5s;"
        );
    }
    format!(
        r#"worker_processes {cores};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
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
        keepalive_requests 100000;
    }}
    server {{
        listen {listen} reuseport;
        location / {{
            proxy_pass http://product;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout;
        }}
    }}
}}
"#
    )
}

/// HAProxy as its docs describe a keep-alive round-robin reverse proxy with health checks.
fn haproxy_config(listen: SocketAddr, upstreams: &[SocketAddr], cores: usize) -> String {
    let mut servers = String::new();
    for (i, upstream) in upstreams.iter().enumerate() {
        let _ = writeln!(
            servers,
            "    server product-{} {upstream} check inter 2s fall 2 rise 1",
            i + 1
        );
    }
    format!(
        r#"global
    nbthread {cores}
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    retries 2
    option redispatch

frontend bench
    bind {listen}
    default_backend product

backend product
    balance roundrobin
    http-reuse always
    option httpchk GET /readyz
{servers}"#
    )
}

/// A port free on `near`'s address inside `ns` (bound once there, then released).
fn free_port(ns: &NsHandle, near: SocketAddr) -> Result<u16, Error> {
    let ip = near.ip();
    let port = ns.run(move || TcpListener::bind((ip, 0)).and_then(|l| l.local_addr()))??;
    Ok(port.port())
}

/// Waits (30 s at most) until `addr` answers `path` with 200 from inside `ns`.
fn wait_serving(ns: &NsHandle, addr: SocketAddr, path: &str, name: &str) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = Request::get(path).timeout(Duration::from_secs(1));
        match request.send(ns, addr) {
            Ok(response) if response.status == 200 => return Ok(()),
            _ if Instant::now() > deadline => {
                return Err(format!("{name} on {addr} never answered {path} with 200").into())
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// One wrk run inside `ns`.
fn wrk(
    ns: &NsHandle,
    run_id: &str,
    addr: SocketAddr,
    path: &str,
    connections: u32,
    duration_s: u64,
) -> Result<Wrk, Error> {
    let threads = connections.clamp(1, 2);
    let text = Launch::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{duration_s}s"))
        .args(["--latency", "--timeout", "5s"])
        .arg(format!("http://{addr}{path}"))
        .output(Some(ns), run_id)?;
    let run = parse_wrk(&text, duration_s);
    if run.requests == 0 {
        return Err(format!("wrk made no request to {addr}{path}: {text}").into());
    }
    Ok(run)
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

/// A wrk run of the cached read at c50 with `strace -c -f` attached to `pids`: system calls
/// per request, and the most frequent calls.
fn strace_run(
    ns: &NsHandle,
    lab: &Lab,
    dir: &Path,
    proxy: &str,
    pids: &[i32],
    addr: SocketAddr,
    duration_s: u64,
) -> Result<serde_json::Value, Error> {
    let out = dir.join(format!("strace-{proxy}.txt"));
    let _ = std::fs::remove_file(&out);
    let mut launch = Launch::new("strace")
        .args(["-c", "-f", "-qq", "-o"])
        .arg(&out);
    for pid in pids {
        launch = launch.arg("-p").arg(pid.to_string());
    }
    let mut strace: Process = launch.spawn(
        None,
        &dir.join(format!("strace-{proxy}.log")),
        Lifetime::TiedToParent,
        lab.run_id(),
    )?;
    // strace attaches to every thread before the run starts.
    std::thread::sleep(Duration::from_millis(500));
    let run = wrk(ns, lab.run_id(), addr, CASES[0].1, 50, duration_s);
    strace.stop(Signal::SIGINT, Duration::from_secs(10));
    let run = run?;
    let text = std::fs::read_to_string(&out)
        .map_err(|e| format!("strace wrote no summary to {}: {e}", out.display()))?;
    let mut calls: Vec<(String, u64)> = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = *fields.last()?;
            let count = fields.get(3)?.parse::<u64>().ok()?;
            (fields.len() >= 5 && name != "total").then(|| (name.to_string(), count))
        })
        .collect();
    calls.sort_by_key(|c| std::cmp::Reverse(c.1));
    let total: u64 = calls.iter().map(|c| c.1).sum();
    let per_request = total as f64 / run.requests.max(1) as f64;
    let top: serde_json::Map<String, serde_json::Value> = calls
        .iter()
        .take(8)
        .map(|(name, count)| {
            (
                name.clone(),
                json!(*count as f64 / run.requests.max(1) as f64),
            )
        })
        .collect();
    eprintln!("  {proxy}: {per_request:.2} syscalls/request ({top:?})");
    Ok(json!({
        "per_request": per_request,
        "requests": run.requests,
        "calls": total,
        "top_per_request": top,
    }))
}

/// `pid` and all its descendants (unshare, nginx's master and its workers).
fn with_children(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        let children =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        all.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok()),
        );
        i += 1;
    }
    all
}

/// User + system CPU time of `pids` (all their threads), in clock ticks.
fn cpu_ticks(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|&pid| {
            u32::try_from(pid)
                .ok()
                .and_then(netns_kit::procfs::Stat::of)
        })
        .map(|s| s.cpu_ticks())
        .sum()
}

fn loadavg() -> Vec<String> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .map(str::to_string)
        .collect()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
