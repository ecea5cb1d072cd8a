//! Several users at once, through the CLI: eight `apply`s with distinct names in parallel
//! all succeed, each exactly as declared, and all destroy cleanly; two `apply`s of one name
//! at once: exactly one wins, the other exits 2 with one clear line; a `destroy` of a run
//! whose `apply` is still going waits for it and never half-removes.
//!
//! An `apply` is caught in the middle deterministically with the crash-point hook in its
//! stop mode (`NETNS_KIT_FAULT_ACTION=stop`: the process SIGSTOPs itself at its N-th crash
//! point, holding the run's lock, until SIGCONT). No `[host]` section: nothing is created
//! in the root namespace. Needs root; skips without it unless ECOMM_REQUIRE_ALL=1.

mod cli_support;
mod privileged_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Output};
use std::time::{Duration, Instant};

use cli_support::{text, unique, Cli};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use privileged_support::privileged;

/// A background CLI process: SIGKILLed (even if stopped) and reaped on drop.
struct Background {
    child: Option<Child>,
}

impl Background {
    fn new(child: Child) -> Background {
        Background { child: Some(child) }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn stderr(&mut self) -> BufReader<ChildStderr> {
        BufReader::new(
            self.child
                .as_mut()
                .and_then(|c| c.stderr.take())
                .expect("stderr piped"),
        )
    }

    fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    fn wait(mut self) -> Output {
        self.child.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Destroys the named runs on drop (after a failed assertion too).
struct Runs<'a> {
    cli: &'a Cli,
    names: Vec<String>,
}

impl Drop for Runs<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.cli.run(&["destroy", n], &[]);
        }
    }
}

/// One line of stderr, trimmed.
fn line(r: &mut BufReader<ChildStderr>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l.trim().to_string()
}

/// Whether process `pid` is stopped (state T in /proc/<pid>/stat).
fn stopped(pid: u32) -> bool {
    netns_kit::procfs::Stat::of(pid).is_some_and(|s| s.state == 'T')
}

/// Start `apply NAME` that stops itself at crash point `step`; returns once it is stopped,
/// with the label of that step.
fn apply_stopped_at(cli: &Cli, name: &str, step: usize) -> (Background, String) {
    let env = [
        ("NETNS_KIT_FAULT_AFTER_STEP", step.to_string()),
        ("NETNS_KIT_FAULT_ACTION", "stop".to_string()),
    ];
    let mut a = Background::new(cli.spawn_apply(name, &env));
    let label = line(&mut a.stderr());
    assert!(label.contains("SIGSTOP after step"), "apply said: {label}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stopped(a.pid()) {
        assert!(Instant::now() < deadline, "apply {name} never stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
    (a, label)
}

fn resume(a: &Background) {
    kill(Pid::from_raw(a.pid() as i32), Signal::SIGCONT).unwrap();
}

/// stderr is exactly one line: `netns-kit: error: …` naming the run.
fn assert_one_clear_line(o: &Output, name: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{}", text(o));
    assert!(
        lines[0].starts_with("netns-kit: error: ") && lines[0].contains(name),
        "{}",
        text(o)
    );
}

#[test]
fn eight_parallel_applies_with_distinct_names_all_succeed_and_all_destroy_cleanly() {
    if !privileged("eight parallel applies") {
        return;
    }
    let cli = Cli::new("conc-eight", 245, false);
    let base = unique("c8");
    let names: Vec<String> = (0..8).map(|i| format!("{base}-{i}")).collect();
    let runs = Runs {
        cli: &cli,
        names: names.clone(),
    };

    let applies: Vec<Background> = names
        .iter()
        .map(|n| Background::new(cli.spawn_apply(n, &[])))
        .collect();
    for (n, a) in names.iter().zip(applies) {
        let o = a.wait();
        assert_eq!(o.status.code(), Some(0), "apply {n}: {}", text(&o));
    }

    let phases = cli.phases();
    for n in &names {
        assert!(
            phases.contains(&(n.clone(), "up".to_string())),
            "{phases:?}"
        );
        assert_eq!(cli.namespaces_of(n).len(), 4, "{n}");
        let s = cli.run(&["status", n], &[]);
        assert_eq!(s.status.code(), Some(0), "status {n}: {}", text(&s));
    }

    let destroys: Vec<Background> = names
        .iter()
        .map(|n| {
            let mut c = cli.command(&["destroy", n], &[]);
            c.stdout(std::process::Stdio::piped());
            Background::new(c.spawn().unwrap())
        })
        .collect();
    for (n, d) in names.iter().zip(destroys) {
        let o = d.wait();
        assert_eq!(o.status.code(), Some(0), "destroy {n}: {}", text(&o));
    }
    for n in &names {
        assert_eq!(cli.leftovers(n), Vec::<String>::new(), "{n}");
    }
    assert!(cli.phases().is_empty(), "{:?}", cli.phases());
    drop(runs);
}

#[test]
fn two_applies_of_one_name_at_once_one_wins_the_other_exits_2_with_one_line() {
    if !privileged("two applies of one name") {
        return;
    }
    let cli = Cli::new("conc-same", 244, false);
    let base = unique("cs");

    // Racing for real: whoever loses, loses cleanly.
    for round in 0..4 {
        let name = format!("{base}-{round}");
        let _runs = Runs {
            cli: &cli,
            names: vec![name.clone()],
        };
        let a = Background::new(cli.spawn_apply(&name, &[]));
        let b = Background::new(cli.spawn_apply(&name, &[]));
        let (a, b) = (a.wait(), b.wait());
        let codes = [a.status.code(), b.status.code()];
        assert!(
            codes == [Some(0), Some(2)] || codes == [Some(2), Some(0)],
            "round {round}:\n{}\n{}",
            text(&a),
            text(&b)
        );
        let loser = if codes[0] == Some(2) { &a } else { &b };
        assert_one_clear_line(loser, &name);
        // The loser damaged nothing: the winner's run is exactly as declared.
        let s = cli.run(&["status", &name], &[]);
        assert_eq!(s.status.code(), Some(0), "status: {}", text(&s));
        let d = cli.run(&["destroy", &name], &[]);
        assert_eq!(d.status.code(), Some(0), "{}", text(&d));
        assert_eq!(cli.leftovers(&name), Vec::<String>::new());
    }

    // And with the first one caught in the middle, holding the run's lock.
    let name = format!("{base}-held");
    let _runs = Runs {
        cli: &cli,
        names: vec![name.clone()],
    };
    let (first, label) = apply_stopped_at(&cli, &name, 3);
    let second = cli.apply(&name, &[]);
    assert_eq!(
        second.status.code(),
        Some(2),
        "while {label}: {}",
        text(&second)
    );
    assert_one_clear_line(&second, &name);
    resume(&first);
    let first = first.wait();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let s = cli.run(&["status", &name], &[]);
    assert_eq!(s.status.code(), Some(0), "status: {}", text(&s));
    let d = cli.run(&["destroy", &name], &[]);
    assert_eq!(d.status.code(), Some(0), "{}", text(&d));
    assert_eq!(cli.leftovers(&name), Vec::<String>::new());
}

#[test]
fn destroy_while_the_apply_of_that_name_runs_waits_for_it_and_never_half_removes() {
    if !privileged("destroy during apply") {
        return;
    }
    let cli = Cli::new("conc-destroy", 243, false);
    let name = unique("cd");
    let _runs = Runs {
        cli: &cli,
        names: vec![name.clone()],
    };
    // Stopped once its namespaces exist: lock, state, 3 crash points per namespace, then
    // the end of the namespace step.
    let (apply, label) = apply_stopped_at(&cli, &name, 2 + 4 * 3 + 1);
    assert!(label.contains("creating namespaces"), "stopped at {label}");
    let during = cli.namespaces_of(&name);
    assert_eq!(during.len(), 4, "stopped at {label}: {during:?}");

    let mut destroy = Background::new(
        cli.command(&["destroy", &name], &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let said = line(&mut destroy.stderr());
    assert!(
        said.contains("waiting for run") && said.contains(&format!("pid {}", apply.pid())),
        "destroy said: {said}"
    );
    // It is waiting: nothing of the run was touched.
    assert!(destroy.running());
    assert_eq!(cli.namespaces_of(&name), during);
    assert!(cli.state_dir.join(format!("{name}.json")).exists());

    resume(&apply);
    let applied = apply.wait();
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied));
    let destroyed = destroy.wait();
    assert_eq!(destroyed.status.code(), Some(0), "{}", text(&destroyed));
    assert!(String::from_utf8_lossy(&destroyed.stdout).contains("destroyed"));
    assert_eq!(cli.leftovers(&name), Vec::<String>::new());
    assert!(cli.phases().is_empty(), "{:?}", cli.phases());
}
