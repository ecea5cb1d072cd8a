//! `lab bench`: the seeds' measurement against the lab that is up — exactly
//! `ab -n 1000 -c 50 http://172.20.0.10:3000/api/products` from the host — plus a wrk run
//! (2 threads, 50 connections, 15 s), printed beside the seeds' 54.07 req/s and 924.7 ms and
//! written as JSON (default target/bench/lab.json).

use std::path::Path;
use std::process::Command;

use serde_json::json;

use super::{require_root, LabDir};
use crate::error::LabError;
use crate::process::last_lines;

/// The seeds' namespace-lab throughput with `ab -n 1000 -c 50` (requests per second).
pub const SEEDS_RPS: f64 = 54.07;
/// The seeds' mean time per request in that run (milliseconds).
pub const SEEDS_MEAN_MS: f64 = 924.7;

/// What `ab` reported.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AbResult {
    /// Requests per second (mean).
    pub rps: f64,
    /// Time per request (mean, across concurrent requests), milliseconds.
    pub mean_ms: f64,
    /// Completed requests.
    pub complete: u64,
    /// Failed requests (connect, receive, length, exceptions).
    pub failed: u64,
    /// Responses with a status other than 2xx.
    pub non_2xx: u64,
}

/// What `wrk --latency` reported.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WrkResult {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Total requests.
    pub requests: u64,
    /// Socket errors plus non-2xx/3xx responses.
    pub errors: u64,
}

/// Runs both tools against the lab's gateway and writes `out`.
pub fn run(lab: &LabDir, out: &Path, wrk_seconds: u32) -> Result<(), LabError> {
    require_root()?;
    let state = lab.state()?;
    let gateway = state
        .components
        .iter()
        .find(|c| c.name == "gateway")
        .map(|c| c.addr)
        .ok_or_else(|| LabError::UnknownComponent {
            name: "gateway".into(),
            known: state.enabled.join(", "),
        })?;
    let url = format!("http://{gateway}/api/products");
    println!("bench: ab -n 1000 -c 50 {url}");
    let ab_text = tool("ab", &["-n", "1000", "-c", "50", &url])?;
    let ab = parse_ab(&ab_text)?;
    let duration = format!("{wrk_seconds}s");
    println!("bench: wrk -t2 -c50 -d{duration} --latency {url}");
    let wrk_text = tool(
        "wrk",
        &["-t2", "-c50", &format!("-d{duration}"), "--latency", &url],
    )?;
    let wrk = parse_wrk(&wrk_text)?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let report = json!({
        "url": url,
        "measured_at_unix": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "host_loadavg": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "seeds": { "tool": "ab -n 1000 -c 50", "rps": SEEDS_RPS, "mean_ms": SEEDS_MEAN_MS },
        "ab": ab,
        "wrk": { "threads": 2, "connections": 50, "seconds": wrk_seconds, "result": wrk },
        "speedup_rps_vs_seeds": ab.rps / SEEDS_RPS,
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| LabError::io(format!("create {}", dir.display()), e))?;
    }
    std::fs::write(
        out,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .map_err(|e| LabError::io(format!("write {}", out.display()), e))?;
    println!();
    let row = |name: &str, rps: f64, latency: String, failed: String| {
        println!("{name:<34} {rps:>10.2} {latency:>26} {failed:>8}");
    };
    println!(
        "{:<34} {:>10} {:>26} {:>8}",
        "GET /api/products via the gateway", "req/s", "latency (ms)", "failed"
    );
    row(
        "seeds (ab -n 1000 -c 50)",
        SEEDS_RPS,
        format!("mean {SEEDS_MEAN_MS:.1}"),
        "-".into(),
    );
    row(
        "ours  (ab -n 1000 -c 50)",
        ab.rps,
        format!("mean {:.2}", ab.mean_ms),
        (ab.failed + ab.non_2xx).to_string(),
    );
    row(
        &format!("ours  (wrk -t2 -c50 -d{wrk_seconds}s)"),
        wrk.rps,
        format!("p50 {:.2}  p99 {:.2}", wrk.p50_ms, wrk.p99_ms),
        wrk.errors.to_string(),
    );
    println!(
        "ab throughput: {:.0}x the seeds'; mean latency {:.0}x lower; host load average {}",
        ab.rps / SEEDS_RPS,
        SEEDS_MEAN_MS / ab.mean_ms.max(f64::MIN_POSITIVE),
        report["host_loadavg"].as_str().unwrap_or("?")
    );
    println!("written to {}", out.display());
    Ok(())
}

fn tool(program: &str, args: &[&str]) -> Result<String, LabError> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        LabError::io(
            format!("run {program} (apt-get install apache2-utils wrk)"),
            e,
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(LabError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status.to_string(),
            output: last_lines(
                &format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
                15,
            ),
        });
    }
    Ok(text)
}

fn field<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
}

/// Parses `ab`'s report.
pub fn parse_ab(text: &str) -> Result<AbResult, LabError> {
    let num = |label: &str| -> Result<f64, LabError> {
        field(text, label)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| LabError::Invalid {
                what: "ab output".into(),
                value: last_lines(text, 10),
                expected: format!("a line starting with {label:?}"),
            })
    };
    Ok(AbResult {
        rps: num("Requests per second:")?,
        mean_ms: num("Time per request:")?,
        complete: num("Complete requests:")? as u64,
        failed: num("Failed requests:")? as u64,
        non_2xx: field(text, "Non-2xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    })
}

/// "1.23ms" / "512.00us" / "1.01s" → milliseconds.
fn duration_ms(v: &str) -> Option<f64> {
    let (n, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    n.parse::<f64>().ok().map(|x| x * scale)
}

/// Parses `wrk --latency`'s report.
pub fn parse_wrk(text: &str) -> Result<WrkResult, LabError> {
    let bad = |what: &str| LabError::Invalid {
        what: "wrk output".into(),
        value: last_lines(text, 10),
        expected: what.to_string(),
    };
    let rps = field(text, "Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("a Requests/sec line"))?;
    let p50 = field(text, "50%")
        .and_then(duration_ms)
        .ok_or_else(|| bad("a 50% latency line"))?;
    let p99 = field(text, "99%")
        .and_then(duration_ms)
        .ok_or_else(|| bad("a 99% latency line"))?;
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut errors = 0u64;
    if let Some(line) = text
        .lines()
        .find(|l| l.trim_start().starts_with("Socket errors:"))
    {
        errors += line
            .split(',')
            .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    errors += field(text, "Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(WrkResult {
        rps,
        p50_ms: p50,
        p99_ms: p99,
        requests,
        errors,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ab_and_wrk_reports_are_read() {
        let ab = "Complete requests:      1000\nFailed requests:        0\nRequests per second:    5123.45 [#/sec] (mean)\nTime per request:       9.759 [ms] (mean)\nTime per request:       0.195 [ms] (mean, across all concurrent requests)\n";
        let r = parse_ab(ab).unwrap();
        assert_eq!((r.complete, r.failed, r.non_2xx), (1000, 0, 0));
        assert!((r.rps - 5123.45).abs() < 1e-9 && (r.mean_ms - 9.759).abs() < 1e-9);
        let wrk = "  Latency Distribution\n     50%    1.20ms\n     75%    2.00ms\n     90%    3.00ms\n     99%  812.00us\n  123456 requests in 15.00s, 10.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\nRequests/sec:   8230.40\n";
        let w = parse_wrk(wrk).unwrap();
        assert_eq!((w.requests, w.errors), (123456, 3));
        assert!((w.p50_ms - 1.2).abs() < 1e-9 && (w.p99_ms - 0.812).abs() < 1e-9);
    }
}
