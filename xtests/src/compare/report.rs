//! The comparison's arithmetic and its two outputs, pure: medians and spreads over rounds,
//! Docker's overhead against namespaces (paired per round), the table printed beside the
//! seeds' figures, and the JSON written to `target/bench/compare.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::measure::{Sample, AB_REQUESTS, CONCURRENCY, WRK_THREADS};

/// The seeds' figures (seed 001's table, `ab -n 1000 -c 50`; seed 000 says "~46 % faster").
pub mod seeds {
    /// Namespaces: requests per second.
    pub const LAB_RPS: f64 = 54.07;
    /// Namespaces: mean latency, milliseconds.
    pub const LAB_MEAN_MS: f64 = 924.7;
    /// Namespaces: success rate, percent.
    pub const LAB_SUCCESS_PCT: f64 = 100.0;
    /// Docker Compose: requests per second.
    pub const COMPOSE_RPS: f64 = 29.21;
    /// Docker Compose: mean latency, milliseconds.
    pub const COMPOSE_MEAN_MS: f64 = 1711.5;
    /// Docker Compose: success rate, percent.
    pub const COMPOSE_SUCCESS_PCT: f64 = 99.6;
    /// The seeds' headline, "Docker −46 %", in percent.
    pub const DOCKER_OVERHEAD_PCT: f64 = -46.0;
}

/// The side every other one is compared against.
pub const BASELINE: &str = "lab";

/// A statistic over rounds: the median and the range it came from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spread {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest round.
    pub min: f64,
    /// The largest round.
    pub max: f64,
    /// How many rounds had a value.
    pub n: usize,
}

impl Spread {
    /// The spread of the finite `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

/// One side (lab, compose, swarm): how it was reached and what each round gave.
#[derive(Debug, Clone, PartialEq)]
pub struct SideRuns {
    /// "lab", "compose" or "swarm".
    pub name: String,
    /// The URL measured.
    pub url: String,
    /// How the client reached it, in words (for the JSON).
    pub reached: String,
    /// One sample per round, in round order.
    pub samples: Vec<Sample>,
}

/// A side's medians over rounds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// ab requests per second.
    pub ab_rps: Option<Spread>,
    /// ab mean latency (the seeds' "mean latency"), ms.
    pub ab_mean_ms: Option<Spread>,
    /// ab 99th percentile, ms.
    pub ab_p99_ms: Option<Spread>,
    /// ab success rate, percent.
    pub ab_success_pct: Option<Spread>,
    /// wrk requests per second.
    pub wrk_rps: Option<Spread>,
    /// wrk median latency, ms.
    pub wrk_p50_ms: Option<Spread>,
    /// wrk 99th percentile, ms.
    pub wrk_p99_ms: Option<Spread>,
    /// wrk success rate, percent.
    pub wrk_success_pct: Option<Spread>,
}

/// Medians and spreads of one side's rounds.
pub fn summarize(samples: &[Sample]) -> Summary {
    let of = |f: &dyn Fn(&Sample) -> Option<f64>| Spread::of(samples.iter().filter_map(f));
    Summary {
        ab_rps: of(&|s| s.ab.rps),
        ab_mean_ms: of(&|s| s.ab.mean_ms),
        ab_p99_ms: of(&|s| s.ab.p99_ms),
        ab_success_pct: of(&|s| Some(s.ab.success_pct())),
        wrk_rps: of(&|s| Some(s.wrk.rps)),
        wrk_p50_ms: of(&|s| Some(s.wrk.p50_ms)),
        wrk_p99_ms: of(&|s| Some(s.wrk.p99_ms)),
        wrk_success_pct: of(&|s| Some(s.wrk_success_pct())),
    }
}

/// A side's throughput against the baseline's, in percent (−46 means 46 % fewer req/s).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Overhead {
    /// From ab's req/s, paired round by round.
    pub ab_rps_pct: Option<Spread>,
    /// From wrk's req/s, paired round by round.
    pub wrk_rps_pct: Option<Spread>,
}

/// `(other / base − 1) × 100`; `None` without a positive base.
pub fn change_pct(base: f64, other: f64) -> Option<f64> {
    (base > 0.0 && base.is_finite() && other.is_finite()).then(|| (other / base - 1.0) * 100.0)
}

/// `other`'s overhead against `base`, each round compared with the same round (both saw the
/// same moment of the machine), then the median and spread of those per-round changes.
pub fn overhead(base: &[Sample], other: &[Sample]) -> Overhead {
    let paired = |f: &dyn Fn(&Sample) -> Option<f64>| {
        Spread::of(
            base.iter()
                .zip(other)
                .filter_map(|(b, o)| change_pct(f(b)?, f(o)?)),
        )
    };
    Overhead {
        ab_rps_pct: paired(&|s| s.ab.rps),
        wrk_rps_pct: paired(&|s| Some(s.wrk.rps)),
    }
}

/// The machine the run saw.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Machine {
    /// Online CPUs.
    pub cores: usize,
    /// /proc/loadavg's three load averages before the first round.
    pub loadavg_start: String,
    /// … and after the last.
    pub loadavg_end: String,
    /// `uname -r`.
    pub kernel: String,
}

/// How long each phase took, seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Timings {
    /// Images, the lab, Compose and Swarm brought up (concurrently), checked and warmed.
    pub setup_s: f64,
    /// The interleaved rounds.
    pub rounds_s: f64,
    /// Everything removed again.
    pub teardown_s: f64,
    /// The whole run.
    pub wall_s: f64,
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The path every side was measured on, e.g. "/api/products".
    pub path: String,
    /// Rounds (each runs every side once, in the order of `sides`).
    pub rounds: usize,
    /// wrk's duration per side and round, seconds.
    pub wrk_seconds: u32,
    /// The response body's length in bytes (the same on every side).
    pub body_bytes: usize,
    /// The sides, baseline first.
    pub sides: Vec<SideRuns>,
    /// The machine.
    pub machine: Machine,
    /// Tool and engine versions (ab, wrk, docker, docker-compose).
    pub tools: BTreeMap<String, String>,
    /// Phase durations.
    pub timings: Timings,
}

impl Report {
    fn side(&self, name: &str) -> Option<&SideRuns> {
        self.sides.iter().find(|s| s.name == name)
    }

    /// Each non-baseline side's overhead against the baseline.
    pub fn overheads(&self) -> Vec<(String, Overhead)> {
        let Some(base) = self.side(BASELINE) else {
            return Vec::new();
        };
        self.sides
            .iter()
            .filter(|s| s.name != BASELINE)
            .map(|s| (s.name.clone(), overhead(&base.samples, &s.samples)))
            .collect()
    }

    /// The command lines, as measured.
    fn commands(&self) -> (String, String) {
        (
            format!("ab -n {AB_REQUESTS} -c {CONCURRENCY}"),
            format!(
                "wrk -t{WRK_THREADS} -c{CONCURRENCY} -d{}s --latency",
                self.wrk_seconds
            ),
        )
    }

    /// The JSON written to `target/bench/compare.json`.
    pub fn json(&self) -> Value {
        let (ab, wrk) = self.commands();
        let sides: serde_json::Map<String, Value> = self
            .sides
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    json!({
                        "url": s.url,
                        "reached": s.reached,
                        "summary": summarize(&s.samples),
                        "rounds": s.samples,
                    }),
                )
            })
            .collect();
        let overhead: serde_json::Map<String, Value> = self
            .overheads()
            .into_iter()
            .map(|(name, o)| (name, json!(o)))
            .collect();
        json!({
            "path": self.path,
            "measurement": { "ab": ab, "wrk": wrk },
            "rounds": self.rounds,
            "order": self.sides.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "body_bytes": self.body_bytes,
            "machine": self.machine,
            "tools": self.tools,
            "timings": self.timings,
            "seeds": {
                "measurement": "ab -n 1000 -c 50",
                "lab": { "rps": seeds::LAB_RPS, "mean_ms": seeds::LAB_MEAN_MS,
                         "success_pct": seeds::LAB_SUCCESS_PCT },
                "compose": { "rps": seeds::COMPOSE_RPS, "mean_ms": seeds::COMPOSE_MEAN_MS,
                             "success_pct": seeds::COMPOSE_SUCCESS_PCT },
                "docker_overhead_pct": seeds::DOCKER_OVERHEAD_PCT,
            },
            "sides": sides,
            "overhead_vs_lab_pct": overhead,
        })
    }

    /// The table printed at the end: the seeds' columns, then ours (median [min–max]).
    pub fn table(&self) -> String {
        let (ab, wrk) = self.commands();
        let mut header = vec!["seeds: netns".to_string(), "seeds: Compose".to_string()];
        header.extend(self.sides.iter().map(|s| s.name.clone()));
        let summaries: Vec<Summary> = self.sides.iter().map(|s| summarize(&s.samples)).collect();
        let overheads = self.overheads();
        let overhead_of = |name: &str| overheads.iter().find(|(n, _)| n == name).map(|(_, o)| o);

        let mut rows: Vec<(String, Vec<String>)> = Vec::new();
        let mut row = |label: &str, seeds: [String; 2], f: &dyn Fn(usize) -> String| {
            let mut cells = seeds.to_vec();
            cells.extend((0..self.sides.len()).map(f));
            rows.push((label.to_string(), cells));
        };
        let none = || "–".to_string();
        let s = &summaries;
        row(
            &format!("{ab}: req/s"),
            [num(seeds::LAB_RPS, 2), num(seeds::COMPOSE_RPS, 2)],
            &|i| spread(s[i].ab_rps, 0),
        );
        row(
            "  mean latency (ms)",
            [num(seeds::LAB_MEAN_MS, 1), num(seeds::COMPOSE_MEAN_MS, 1)],
            &|i| spread(s[i].ab_mean_ms, 2),
        );
        row("  p99 (ms)", [none(), none()], &|i| {
            spread(s[i].ab_p99_ms, 0)
        });
        row(
            "  success",
            [pct(seeds::LAB_SUCCESS_PCT), pct(seeds::COMPOSE_SUCCESS_PCT)],
            &|i| s[i].ab_success_pct.map(|x| pct(x.min)).unwrap_or_else(none),
        );
        row(
            "  Docker vs netns (req/s)",
            [none(), signed_pct(seeds::DOCKER_OVERHEAD_PCT)],
            &|i| {
                overhead_of(&self.sides[i].name)
                    .and_then(|o| o.ab_rps_pct)
                    .map(spread_pct)
                    .unwrap_or_else(none)
            },
        );
        row(&format!("{wrk}: req/s"), [none(), none()], &|i| {
            spread(s[i].wrk_rps, 0)
        });
        row("  p50 (ms)", [none(), none()], &|i| {
            spread(s[i].wrk_p50_ms, 2)
        });
        row("  p99 (ms)", [none(), none()], &|i| {
            spread(s[i].wrk_p99_ms, 2)
        });
        row("  success", [none(), none()], &|i| {
            s[i].wrk_success_pct
                .map(|x| pct(x.min))
                .unwrap_or_else(none)
        });
        row("  Docker vs netns (req/s)", [none(), none()], &|i| {
            overhead_of(&self.sides[i].name)
                .and_then(|o| o.wrk_rps_pct)
                .map(spread_pct)
                .unwrap_or_else(none)
        });

        let label_w = rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for (_, cells) in &rows {
            for (w, c) in widths.iter_mut().zip(cells) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "GET {} ({} bytes), {} rounds interleaved ({}); ours: median [min–max] over rounds",
            self.path,
            self.body_bytes,
            self.rounds,
            self.sides
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let line = |out: &mut String, label: &str, cells: &[String]| {
            let _ = write!(out, "{label:<label_w$}");
            for (c, w) in cells.iter().zip(&widths) {
                let pad = w.saturating_sub(c.chars().count());
                let _ = write!(out, "  {}{c}", " ".repeat(pad));
            }
            out.push('\n');
        };
        line(&mut out, "", &header);
        for (label, cells) in &rows {
            line(&mut out, label, cells);
        }
        let _ = writeln!(
            out,
            "success: the worst round. Load average {} before, {} after; {} cores; wall {:.0} s (setup {:.0} s, rounds {:.0} s, teardown {:.0} s)",
            self.machine.loadavg_start,
            self.machine.loadavg_end,
            self.machine.cores,
            self.timings.wall_s,
            self.timings.setup_s,
            self.timings.rounds_s,
            self.timings.teardown_s
        );
        out
    }
}

fn num(x: f64, decimals: usize) -> String {
    format!("{x:.decimals$}")
}

fn pct(x: f64) -> String {
    if x >= 100.0 {
        "100 %".into()
    } else {
        format!("{x:.1} %")
    }
}

fn signed_pct(x: f64) -> String {
    if x < 0.0 {
        format!("−{:.0} %", -x)
    } else {
        format!("+{x:.0} %")
    }
}

fn spread(s: Option<Spread>, decimals: usize) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.n == 1 => num(s.median, decimals),
        Some(s) => format!(
            "{} [{}–{}]",
            num(s.median, decimals),
            num(s.min, decimals),
            num(s.max, decimals)
        ),
    }
}

fn spread_pct(s: Spread) -> String {
    if s.n == 1 {
        signed_pct(s.median)
    } else {
        format!(
            "{} [{}…{}]",
            signed_pct(s.median),
            signed_pct(s.min),
            signed_pct(s.max)
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cli::bench::WrkResult;
    use crate::compare::measure::AbSample;

    fn sample(ab_rps: f64, wrk_rps: f64) -> Sample {
        Sample {
            ab: AbSample {
                rps: Some(ab_rps),
                mean_ms: Some(50_000.0 / ab_rps),
                p99_ms: Some(20.0),
                requests: 1000,
                succeeded: 1000,
                aborted: None,
            },
            wrk: WrkResult {
                rps: wrk_rps,
                p50_ms: 2.0,
                p99_ms: 9.0,
                requests: 100_000,
                errors: 0,
            },
        }
    }

    fn report() -> Report {
        let side = |name: &str, samples: Vec<Sample>| SideRuns {
            name: name.into(),
            url: format!("http://{name}/api/products"),
            reached: "loopback".into(),
            samples,
        };
        Report {
            path: "/api/products".into(),
            rounds: 3,
            wrk_seconds: 10,
            body_bytes: 1234,
            sides: vec![
                side("lab", vec![sample(5000.0, 10_000.0); 3]),
                side(
                    "compose",
                    vec![
                        sample(4000.0, 8000.0),
                        sample(2500.0, 6000.0),
                        sample(3000.0, 5000.0),
                    ],
                ),
                side("swarm", vec![sample(5000.0, 10_000.0); 3]),
            ],
            machine: Machine {
                cores: 2,
                loadavg_start: "1.00 2.00 3.00".into(),
                loadavg_end: "1.50 2.00 3.00".into(),
                kernel: "6.1".into(),
            },
            tools: BTreeMap::from([("ab".to_string(), "2.3".to_string())]),
            timings: Timings {
                setup_s: 60.0,
                rounds_s: 200.0,
                teardown_s: 30.0,
                wall_s: 290.0,
            },
        }
    }

    #[test]
    fn the_median_of_an_odd_and_an_even_count_and_its_range() {
        let odd = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max, odd.n), (2.0, 1.0, 3.0, 3));
        let even = Spread::of([4.0, 1.0, 3.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((even.median, even.n), (2.5, 4), "NaN is not a round");
        assert_eq!(Spread::of([]), None);
    }

    #[test]
    fn the_seeds_headline_is_the_same_arithmetic() {
        let seeds = change_pct(seeds::LAB_RPS, seeds::COMPOSE_RPS).unwrap();
        assert_eq!(seeds.round(), seeds::DOCKER_OVERHEAD_PCT);
        assert_eq!(change_pct(0.0, 10.0), None);
    }

    #[test]
    fn overhead_pairs_each_round_with_the_same_round_of_the_lab() {
        let r = report();
        let o = r.overheads();
        assert_eq!(o.len(), 2);
        let (name, compose) = &o[0];
        assert_eq!(name, "compose");
        let ab = compose.ab_rps_pct.unwrap();
        assert_eq!(
            (ab.median.round(), ab.min.round(), ab.max.round()),
            (-40.0, -50.0, -20.0)
        );
        assert_eq!(compose.wrk_rps_pct.unwrap().median, -40.0);
        assert_eq!(o[1].1.ab_rps_pct.unwrap().median, 0.0);
    }

    #[test]
    fn an_aborted_ab_round_drops_out_of_the_throughput_but_not_the_success_rate() {
        let mut samples = vec![sample(4000.0, 1.0), sample(2000.0, 1.0)];
        samples.push(Sample {
            ab: AbSample {
                requests: 1000,
                succeeded: 980,
                aborted: Some("reset".into()),
                ..AbSample::default()
            },
            ..sample(1.0, 1.0)
        });
        let s = summarize(&samples);
        assert_eq!(s.ab_rps.unwrap().n, 2);
        assert_eq!(s.ab_rps.unwrap().median, 3000.0);
        assert_eq!(s.ab_success_pct.unwrap().min, 98.0);
    }

    #[test]
    fn the_json_holds_seeds_sides_rounds_overhead_tools_and_machine() {
        let j = report().json();
        assert_eq!(j["measurement"]["ab"], "ab -n 1000 -c 50");
        assert_eq!(j["measurement"]["wrk"], "wrk -t2 -c50 -d10s --latency");
        assert_eq!(j["rounds"], 3);
        assert_eq!(j["order"], json!(["lab", "compose", "swarm"]));
        assert_eq!(j["seeds"]["lab"]["rps"], 54.07);
        assert_eq!(j["seeds"]["compose"]["mean_ms"], 1711.5);
        assert_eq!(j["seeds"]["docker_overhead_pct"], -46.0);
        assert_eq!(j["machine"]["cores"], 2);
        assert_eq!(j["machine"]["loadavg_start"], "1.00 2.00 3.00");
        assert_eq!(j["tools"]["ab"], "2.3");
        assert_eq!(j["timings"]["wall_s"], 290.0);
        for side in ["lab", "compose", "swarm"] {
            assert_eq!(j["sides"][side]["rounds"].as_array().unwrap().len(), 3);
            assert!(j["sides"][side]["summary"]["ab_rps"]["median"].is_number());
        }
        assert_eq!(j["sides"]["compose"]["rounds"][1]["ab"]["rps"], 2500.0);
        assert_eq!(j["sides"]["compose"]["rounds"][1]["wrk"]["p99_ms"], 9.0);
        assert_eq!(
            j["overhead_vs_lab_pct"]["compose"]["ab_rps_pct"]["median"],
            -40.0
        );
        assert!(j["overhead_vs_lab_pct"].get("lab").is_none());
    }

    #[test]
    fn the_table_puts_the_seeds_beside_every_side() {
        let t = report().table();
        println!("{t}");
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[1].contains("seeds: netns") && lines[1].contains("swarm"),
            "{t}"
        );
        let rps = lines
            .iter()
            .find(|l| l.starts_with("ab -n 1000 -c 50: req/s"))
            .unwrap();
        assert!(rps.contains("54.07") && rps.contains("29.21"), "{rps}");
        assert!(rps.contains("3000 [2500–4000]"), "{rps}");
        let overhead = lines
            .iter()
            .find(|l| l.contains("Docker vs netns"))
            .unwrap();
        assert!(
            overhead.contains("−46 %") && overhead.contains("−40 % [−50 %…−20 %]"),
            "{overhead}"
        );
        assert!(t.contains("wall 290 s"), "{t}");
    }
}
