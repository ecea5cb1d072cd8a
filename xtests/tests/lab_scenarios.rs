//! The `lab scenarios` runner as a user calls it: the matrix on stdout, the counts line, the
//! exit code; `--list`; a backend that cannot start fails clearly.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn lab(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lab"));
    cmd.arg("scenarios").args(args);
    cmd.output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn list_names_every_scenario_and_a_filter_narrows_it() {
    let out = lab(&["--list"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let names: Vec<&str> = xtests::scenarios::all().iter().map(|s| s.name).collect();
    for name in &names {
        assert!(stdout.contains(name), "{name} missing from:\n{stdout}");
    }
    let out = lab(&["--list", "--filter", "outages::"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(
        stdout.lines().all(|l| l.starts_with("outages::")),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
}

#[test]
fn a_filter_that_matches_nothing_is_bad_input() {
    let out = lab(&["--list", "--filter", "no-such-scenario"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
}

#[test]
fn a_backend_that_cannot_start_fails_every_scenario_and_exits_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["scenarios", "--backend", "vm", "--filter", "routing::"])
        .env("VM_AGENT", "/nonexistent/vm-agent")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("VM_AGENT=/nonexistent/vm-agent is not a file"),
        "{stdout}"
    );
    assert!(
        stdout
            .trim_end()
            .ends_with("0 passed, 2 failed, 0 not applicable"),
        "{stdout}"
    );
}

#[test]
fn the_runner_prints_the_matrix_and_exits_0_when_every_scenario_passed() {
    if !xtests::privileged("lab scenarios on the netns backend") {
        return;
    }
    let ecomm = xtests::lab::ecomm_binary().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args([
            "scenarios",
            "--backend",
            "netns",
            "--filter",
            "routing::an_order",
            "--filter",
            "host::killing",
        ])
        .arg(xtests::topology_file::shared_file())
        .env("ECOMM_BIN", ecomm)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("scenario") && lines[0].contains("netns"),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("routing::an_order") && l.contains("passed")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("host::killing") && l.contains("n/a")),
        "{stdout}"
    );
    assert_eq!(
        lines.last(),
        Some(&"1 passed, 0 failed, 1 not applicable"),
        "{stdout}"
    );
    assert!(
        stderr.contains("netns: routing::an_order"),
        "progress on stderr: {stderr}"
    );
}
