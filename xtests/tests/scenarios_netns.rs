//! Every scenario on the netns backend, for both declarations: `three-tier.toml` and
//! `three-tier-wide.toml` (three product and two order instances, another placement), with
//! no Rust change between them.
//!
//! One test per (file, scenario), named `<file>::<scenario>` (e.g.
//! `three_tier_wide::failover::killing_…`), so a failure names itself. The scenarios of one
//! file share one deployment, run in order as the `lab scenarios` runner runs them (each
//! leaves the deployment as it found it), and the deployment is torn down once that file's
//! selected tests are done; the two files run side by side. That needs its own small harness (`harness = false`): it takes
//! libtest's name filters (`cargo test --test scenarios_netns -- routing`), `--exact`,
//! `--skip`, `--list` and `--ignored`, and ignores the rest of libtest's flags.
//!
//! `three_tier_pinned` runs `three-tier.toml` again, after the other two, with every process over the pinned
//! images' trees (`ecomm-services`, `ecomm-redis`, `ecomm-postgres` from `images.lock`, as
//! `lab up --pinned` does), first checking with
//! `three_tier_pinned::pinned::every_process_runs_its_images_program_over_its_tree` that each
//! process executes its image's bytes.
//!
//! After a file's scenarios, `<file>::netns::teardown_leaves_nothing_behind` checks that the
//! torn-down deployment left no process, namespace or state directory.
//!
//! Without root the tests are skipped (reported ignored), except with `ECOMM_REQUIRE_ALL=1`.

use std::path::PathBuf;
use std::process::ExitCode;

use xtests::backend::netns::NetnsDeployment;
use xtests::scenarios::{self, Outcome};

/// The last test of each file: the deployment torn down leaves nothing behind.
const TEARDOWN: &str = "netns::teardown_leaves_nothing_behind";

/// The first test of a pinned file: every process runs its image's program.
const PINNED: &str = "pinned::every_process_runs_its_images_program_over_its_tree";

/// The declarations every scenario runs on: (test name prefix, file, pinned images).
fn files() -> Vec<(&'static str, PathBuf, bool)> {
    let deploy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ecomm-services/deploy");
    vec![
        ("three_tier", deploy.join("three-tier.toml"), false),
        (
            "three_tier_wide",
            deploy.join("three-tier-wide.toml"),
            false,
        ),
        ("three_tier_pinned", deploy.join("three-tier.toml"), true),
    ]
}

/// One declaration's share of the run: test name prefix, file, pinned, its selected (name,
/// scenario).
type FilePlan = (
    &'static str,
    PathBuf,
    bool,
    Vec<(String, scenarios::Scenario)>,
);

/// The part of libtest's command line this harness honours.
struct Args {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
    list: bool,
    ignored: bool,
}

impl Args {
    fn parse() -> Args {
        let mut a = Args {
            filters: Vec::new(),
            skips: Vec::new(),
            exact: false,
            list: false,
            ignored: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--exact" => a.exact = true,
                "--list" => a.list = true,
                "--ignored" => a.ignored = true,
                "--skip" => a.skips.extend(it.next()),
                // libtest flags that take a value.
                "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" => {
                    let _ = it.next();
                }
                s if s.starts_with('-') => {}
                s => a.filters.push(s.to_string()),
            }
        }
        a
    }

    fn selects(&self, name: &str) -> bool {
        let matches = |f: &String| {
            if self.exact {
                name == f
            } else {
                name.contains(f.as_str())
            }
        };
        if self.skips.iter().any(matches) {
            return false;
        }
        self.filters.is_empty()
            || self.filters.iter().any(|f| {
                if self.exact {
                    name == f
                } else {
                    name.contains(f.as_str())
                }
            })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let all = scenarios::all();
    let plan: Vec<FilePlan> = files()
        .into_iter()
        .map(|(prefix, file, pinned)| {
            let tests = all
                .iter()
                .map(|s| (format!("{prefix}::{}", s.name), *s))
                .filter(|(name, _)| args.selects(name))
                .collect();
            (prefix, file, pinned, tests)
        })
        .collect();
    let teardowns: Vec<String> = plan
        .iter()
        .filter(|(_, _, _, tests)| !tests.is_empty())
        .map(|(prefix, _, _, _)| format!("{prefix}::{TEARDOWN}"))
        .filter(|name| args.selects(name))
        .collect();
    let pinned_checks: Vec<String> = plan
        .iter()
        .filter(|(_, _, pinned, tests)| *pinned && !tests.is_empty())
        .map(|(prefix, _, _, _)| format!("{prefix}::{PINNED}"))
        .filter(|name| args.selects(name))
        .collect();
    if args.list {
        for (_, _, _, tests) in &plan {
            for (name, _) in tests {
                println!("{name}: test");
            }
        }
        for name in pinned_checks.iter().chain(&teardowns) {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let total: usize = plan.iter().map(|(_, _, _, t)| t.len()).sum::<usize>()
        + teardowns.len()
        + pinned_checks.len();
    println!("\nrunning {total} tests");
    if args.ignored {
        println!("\ntest result: ok. 0 passed; 0 failed; {total} ignored; 0 measured");
        return ExitCode::SUCCESS;
    }
    let privileged = total > 0 && xtests::privileged("the netns scenarios");
    // The host's-programs files run side by side, each on its own deployment, then the pinned
    // one (two at a time on two cores keeps the timing-bound scenarios clear of the pinned
    // images' build); their reports print in order.
    let wave = |pinned: bool| -> Vec<Report> {
        std::thread::scope(|s| {
            let handles: Vec<_> = plan
                .iter()
                .filter(|(_, _, p, _)| *p == pinned)
                .map(|(prefix, file, pinned, tests)| {
                    let args = &args;
                    s.spawn(move || run_file(prefix, file, *pinned, tests, args, privileged))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| Report {
                        failed: vec![("harness".into(), "a file's runner panicked".into())],
                        ..Report::default()
                    })
                })
                .collect()
        })
    };
    let mut reports = wave(false);
    reports.extend(wave(true));
    let (mut passed, mut failed, mut ignored) = (0usize, Vec::new(), 0usize);
    for r in reports {
        for line in &r.lines {
            println!("{line}");
        }
        passed += r.passed;
        ignored += r.ignored;
        failed.extend(r.failed);
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for (name, why) in &failed {
            println!("\n---- {name} ----\n{why}");
        }
        println!("\nfailures:");
        for (name, _) in &failed {
            println!("    {name}");
        }
    }
    let ok = failed.is_empty();
    println!(
        "\ntest result: {}. {} passed; {} failed; {ignored} ignored; 0 measured\n",
        if ok { "ok" } else { "FAILED" },
        passed,
        failed.len()
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}

/// What one file's tests did: their result lines, in order, and the counts.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
    passed: usize,
    ignored: usize,
    failed: Vec<(String, String)>,
}

/// Runs `tests` on one netns deployment of `file`, then checks its teardown.
fn run_file(
    prefix: &str,
    file: &std::path::Path,
    pinned: bool,
    tests: &[(String, scenarios::Scenario)],
    args: &Args,
    privileged: bool,
) -> Report {
    let mut r = Report::default();
    let teardown = format!("{prefix}::{TEARDOWN}");
    let check = format!("{prefix}::{PINNED}");
    let check = (pinned && args.selects(&check)).then_some(check);
    if tests.is_empty() {
        return r;
    }
    if !privileged {
        for (name, _) in tests {
            r.lines.push(format!("test {name} ... ignored, needs root"));
            r.ignored += 1;
        }
        r.ignored += usize::from(args.selects(&teardown)) + usize::from(check.is_some());
        return r;
    }
    eprintln!(
        "{prefix}: starting the netns deployment of {}{}",
        file.display(),
        if pinned { " on the pinned images" } else { "" }
    );
    let started = if pinned {
        NetnsDeployment::start_pinned(file)
    } else {
        NetnsDeployment::start(file)
    };
    let d = match started {
        Ok(d) => d,
        Err(e) => {
            for name in check.iter().chain(tests.iter().map(|(n, _)| n)) {
                r.lines.push(format!("test {name} ... FAILED"));
                r.failed
                    .push((name.clone(), format!("start the deployment: {e}")));
            }
            return r;
        }
    };
    if let Some(name) = check {
        match d.verify_pinned() {
            Ok(lines) => {
                for line in lines {
                    eprintln!("{prefix}: {line}");
                }
                r.lines.push(format!("test {name} ... ok"));
                r.passed += 1;
            }
            Err(why) => {
                r.lines.push(format!("test {name} ... FAILED"));
                r.failed.push((name, why));
            }
        }
    }
    let selected: Vec<scenarios::Scenario> = tests.iter().map(|(_, s)| *s).collect();
    let cells = xtests::cli::scenarios::run_on(&d, &selected);
    for ((name, _), (outcome, took)) in tests.iter().zip(cells) {
        match outcome {
            Outcome::Passed => {
                r.lines
                    .push(format!("test {name} ... ok ({:.1}s)", took.as_secs_f64()));
                r.passed += 1;
            }
            Outcome::NotApplicable(why) => {
                r.lines.push(format!("test {name} ... ignored, {why}"));
                r.ignored += 1;
            }
            Outcome::Failed(why) => {
                r.lines.push(format!(
                    "test {name} ... FAILED ({:.1}s)",
                    took.as_secs_f64()
                ));
                r.failed.push((name.clone(), why));
            }
        }
    }
    let left = d.shutdown();
    if args.selects(&teardown) {
        if left.is_empty() {
            r.lines.push(format!("test {teardown} ... ok"));
            r.passed += 1;
        } else {
            r.lines.push(format!("test {teardown} ... FAILED"));
            r.failed
                .push((teardown, format!("left behind:\n{}", left.join("\n"))));
        }
    }
    r
}
