//! One measurement of one side: the seeds' `ab -n 1000 -c 50`, then `wrk -t2 -c50 -d<s>s
//! --latency`, both on the same URL, run from where that side is reached (the host's root
//! namespace for Docker's loopback publish, the lab's client namespace for the netns lab).

use std::time::Duration;

use super::CompareError;
use crate::cli::bench::{parse_ab, parse_wrk, WrkResult};
use crate::process::last_lines;

/// The seeds' request count for `ab -n`.
pub const AB_REQUESTS: u64 = 1000;
/// The seeds' concurrency for `ab -c`; wrk uses the same number of connections.
pub const CONCURRENCY: u32 = 50;
/// wrk's threads (`-t2`).
pub const WRK_THREADS: u32 = 2;

/// Where a tool runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// This process's network namespace (the host's root namespace under `just`).
    Host,
    /// Inside the named namespace under /run/netns (`ip netns exec NAME …`).
    Netns(String),
}

impl Place {
    /// The command that runs `program args…` here.
    fn command(&self, program: &str, args: &[String]) -> tokio::process::Command {
        let mut cmd = match self {
            Place::Host => tokio::process::Command::new(program),
            Place::Netns(name) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", name.as_str(), program]);
                c
            }
        };
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd
    }
}

/// What one `ab -n 1000 -c 50` gave. Latencies in milliseconds; `None` when ab aborted.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AbSample {
    /// Requests per second (ab's mean).
    pub rps: Option<f64>,
    /// ab's "Time per request (mean)": the seeds' "mean latency" (concurrency / throughput).
    pub mean_ms: Option<f64>,
    /// The 99th percentile from ab's "Percentage of the requests served within" table.
    pub p99_ms: Option<f64>,
    /// Requests asked for (`-n`).
    pub requests: u64,
    /// Requests answered 2xx with the expected length.
    pub succeeded: u64,
    /// Why ab stopped early (it aborts on a reset connection), if it did.
    pub aborted: Option<String>,
}

impl AbSample {
    /// Succeeded / asked for, in percent.
    pub fn success_pct(&self) -> f64 {
        pct(self.succeeded, self.requests)
    }
}

/// One side's measurement in one round.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Sample {
    /// The seeds' measurement.
    pub ab: AbSample,
    /// The wrk run.
    pub wrk: WrkResult,
}

impl Sample {
    /// wrk's answered-without-error share of its requests, in percent.
    pub fn wrk_success_pct(&self) -> f64 {
        pct(
            self.wrk.requests.saturating_sub(self.wrk.errors),
            self.wrk.requests,
        )
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Reads ab's report (also the one it prints when it aborts part-way).
pub fn read_ab(text: &str, exit_ok: bool) -> Result<AbSample, CompareError> {
    if exit_ok {
        let ab = parse_ab(text)?;
        let p99 = text
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("99%"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok());
        return Ok(AbSample {
            rps: Some(ab.rps),
            mean_ms: Some(ab.mean_ms),
            p99_ms: p99,
            requests: AB_REQUESTS,
            succeeded: ab
                .complete
                .saturating_sub(ab.failed)
                .saturating_sub(ab.non_2xx)
                .min(AB_REQUESTS),
            aborted: None,
        });
    }
    // "Total of 987 requests completed" precedes ab's error line when it gives up.
    let completed = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Total of "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(AbSample {
        requests: AB_REQUESTS,
        succeeded: completed.min(AB_REQUESTS),
        aborted: Some(last_lines(text, 2)),
        ..AbSample::default()
    })
}

/// Runs a tool to completion (at most `limit`) and returns (exit ok, stdout + stderr).
async fn run_tool(
    place: &Place,
    program: &str,
    args: &[String],
    limit: Duration,
) -> Result<(bool, String), CompareError> {
    let command = format!("{program} {}", args.join(" "));
    let out = tokio::time::timeout(limit, place.command(program, args).output())
        .await
        .map_err(|_| CompareError::Tool {
            command: command.clone(),
            status: format!("still running after {} s", limit.as_secs()),
            output: String::new(),
        })?
        .map_err(|e| CompareError::Tool {
            command: command.clone(),
            status: format!("cannot start: {e} (just setup installs apache2-utils and wrk)"),
            output: String::new(),
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// `ab -n 1000 -c 50 URL` from `place`.
pub async fn ab(place: &Place, url: &str) -> Result<AbSample, CompareError> {
    ab_with(place, url, AB_REQUESTS, CONCURRENCY).await
}

/// `ab -n requests -c concurrency URL` (also the warm-up).
pub async fn ab_with(
    place: &Place,
    url: &str,
    requests: u64,
    concurrency: u32,
) -> Result<AbSample, CompareError> {
    let args = vec![
        "-n".to_string(),
        requests.to_string(),
        "-c".to_string(),
        concurrency.to_string(),
        url.to_string(),
    ];
    let (ok, text) = run_tool(place, "ab", &args, Duration::from_secs(120)).await?;
    let mut sample = read_ab(&text, ok)?;
    sample.requests = requests;
    sample.succeeded = sample.succeeded.min(requests);
    Ok(sample)
}

/// `wrk -t2 -c50 -d<seconds>s --latency URL` from `place`.
pub async fn wrk(place: &Place, url: &str, seconds: u32) -> Result<WrkResult, CompareError> {
    let args = vec![
        format!("-t{WRK_THREADS}"),
        format!("-c{CONCURRENCY}"),
        format!("-d{seconds}s"),
        "--latency".to_string(),
        url.to_string(),
    ];
    let limit = Duration::from_secs(u64::from(seconds) + 30);
    let (ok, text) = run_tool(place, "wrk", &args, limit).await?;
    if !ok {
        return Err(CompareError::Tool {
            command: format!("wrk {}", args.join(" ")),
            status: "non-zero exit".into(),
            output: last_lines(&text, 10),
        });
    }
    Ok(parse_wrk(&text)?)
}

/// The first line a tool prints about its version (`ab -V`, `wrk -v`, …), or "unknown".
pub async fn version(program: &str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    match run_tool(&Place::Host, program, &args, Duration::from_secs(20)).await {
        Ok((_, text)) => text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("unknown")
            .to_string(),
        Err(_) => "unknown".into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const AB_OK: &str = "\
Concurrency Level:      50
Time taken for tests:   0.195 seconds
Complete requests:      1000
Failed requests:        4
   (Connect: 0, Receive: 0, Length: 4, Exceptions: 0)
Non-2xx responses:      2
Requests per second:    5123.45 [#/sec] (mean)
Time per request:       9.759 [ms] (mean)
Time per request:       0.195 [ms] (mean, across all concurrent requests)

Percentage of the requests served within a certain time (ms)
  50%      8
  66%      9
  90%     14
  95%     17
  98%     21
  99%     23
 100%     31 (longest request)
";

    #[test]
    fn a_finished_ab_run_gives_throughput_mean_p99_and_success() {
        let s = read_ab(AB_OK, true).unwrap();
        assert_eq!(s.rps, Some(5123.45));
        assert_eq!(
            s.mean_ms,
            Some(9.759),
            "the seeds' mean, not the per-request one"
        );
        assert_eq!(s.p99_ms, Some(23.0));
        assert_eq!(
            (s.requests, s.succeeded, s.aborted.as_deref()),
            (1000, 994, None)
        );
        assert!((s.success_pct() - 99.4).abs() < 1e-9);
    }

    #[test]
    fn an_aborted_ab_run_counts_what_it_completed() {
        let text = "Completed 900 requests\nTotal of 987 requests completed\napr_socket_recv: Connection reset by peer (104)\n";
        let s = read_ab(text, false).unwrap();
        assert_eq!((s.rps, s.mean_ms, s.succeeded), (None, None, 987));
        assert!(s.aborted.unwrap().contains("Connection reset"));
    }

    #[test]
    fn unreadable_ab_output_is_an_error_naming_it() {
        let err = read_ab("Segmentation fault", true).unwrap_err().to_string();
        assert!(err.contains("Segmentation fault"), "{err}");
    }

    #[test]
    fn a_netns_place_runs_through_ip_netns_exec() {
        let cmd = Place::Netns("cmp1-host".into()).command("ab", &["-V".into()]);
        let std = cmd.as_std();
        assert_eq!(std.get_program(), "ip");
        let args: Vec<_> = std
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["netns", "exec", "cmp1-host", "ab", "-V"]);
    }
}
