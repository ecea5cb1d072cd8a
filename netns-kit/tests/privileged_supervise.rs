//! The supervisor as root: a child spawned in a namespace is in that namespace and runs as
//! the requested user, and it dies with its parent even though it dropped privileges (the
//! kernel clears the parent-death signal on a credential change, so it must be set after).

mod privileged_support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netns_kit::procfs;
use netns_kit::supervise::Spawn;
use netns_kit::Netns;
use privileged_support::privileged;

/// `nobody` on Debian.
const NOBODY: u32 = 65534;
const CHILD_ENV: &str = "NETNS_KIT_SUPERVISE_CHILD";
const CHILD_TEST: &str = "child_spawns_a_nobody_sleep_in_a_namespace_then_waits";

fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
#[ignore = "helper: run as a child process by the death test"]
fn child_spawns_a_nobody_sleep_in_a_namespace_then_waits() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let ns = Netns::new_anonymous().unwrap();
    // Spawned from a short-lived thread: the death signal must still mean "this process".
    let sleep = std::thread::spawn(move || {
        Spawn::new("sleep")
            .arg("600")
            .in_netns(&ns)
            .user(NOBODY, NOBODY)
            .die_with_parent()
            .spawn()
            .unwrap()
            .detach()
    })
    .join()
    .unwrap();
    let pid = sleep.map(|c| c.id()).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {pid}").unwrap();
    out.flush().unwrap();
    drop(out);
    let mut sink = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut sink);
}

#[test]
fn a_child_in_a_namespace_as_nobody_dies_when_its_parent_is_killed() {
    if !privileged("supervised child dies with its parent") {
        return;
    }
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            CHILD_TEST,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(parent.stdout.take().unwrap()).lines();
    let pid: u32 = loop {
        let line = lines
            .next()
            .expect("helper exited before spawning")
            .unwrap();
        if let Some(at) = line.find("READY ") {
            break line[at + "READY ".len()..].trim().parse().unwrap();
        }
    };
    assert_eq!(uid_of(pid), Some(NOBODY), "the child runs as nobody");
    let host_ns = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    let child_ns = std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .ino();
    assert_ne!(
        child_ns, host_ns,
        "the child is in the namespace, not the host's"
    );
    assert_eq!(
        procfs::Stat::of(pid).unwrap().pgrp,
        pid as i32,
        "a group leader"
    );

    parent.kill().unwrap();
    parent.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while procfs::is_running(pid) {
        assert!(
            Instant::now() < deadline,
            "pid {pid} outlived its parent: the death signal was lost"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stop_in_a_namespace_reports_the_exit_and_leaves_the_namespace_empty() {
    if !privileged("supervised child in a namespace") {
        return;
    }
    let ns = Netns::new_anonymous().unwrap();
    let log = std::env::temp_dir().join(format!("supervise-ns-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut p = Spawn::new("sh")
        .args(["-c", "cat /proc/net/dev; exec sleep 600"])
        .in_netns(&ns)
        .log(&log)
        .die_with_parent()
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let dev = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("lo:") {
            break text;
        }
        assert!(Instant::now() < deadline, "no /proc/net/dev in the log");
        std::thread::sleep(Duration::from_millis(10));
    };
    // A new namespace holds only its loopback.
    let ifaces: Vec<&str> = dev
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(i, _)| i.trim())
        .collect();
    assert_eq!(ifaces, ["lo"], "{dev}");
    let status = p.stop(Duration::from_secs(5)).unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM)
    );
    let mut inodes = std::collections::HashSet::new();
    inodes.insert(ns.inode());
    assert!(netns_kit::netns::pids_in(&inodes).is_empty());
    std::fs::remove_file(&log).unwrap();
}
