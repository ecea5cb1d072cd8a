//! gc after a crash: a run whose owner was SIGKILLed mid-life is removed — exactly its
//! objects — while a live run and a look-alike namespace stay untouched; an anonymous run
//! whose owner was SIGKILLed with a service still inside is found by its tag and the
//! service killed, while a foreign namespace with a process inside lives on.

mod privileged_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use netns_kit::netns::Netns;
use netns_kit::topology::gc::{gc_in, Leftover};
use netns_kit::topology::live::{self, LiveTopology};
use privileged_support::{named_plan, named_with_prefix, prefix_of, privileged, temp_state_dir};

/// gc collects orphans machine-wide: the two tests here must not collect each other's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Set in the child process: the state directory to record its run in.
const CHILD_STATE_DIR: &str = "NETNS_KIT_GC_CHILD_STATE_DIR";
const CHILD_TEST: &str = "child_applies_a_non_persistent_named_run_then_waits_to_be_killed";
/// Set in the child process: apply an anonymous run with a service inside instead.
const CHILD_ANONYMOUS: &str = "NETNS_KIT_GC_CHILD_ANONYMOUS";
const CHILD_ANONYMOUS_TEST: &str = "child_applies_an_anonymous_run_with_a_service_then_waits";

#[test]
#[ignore = "helper: run as a child process by the gc test"]
fn child_applies_an_anonymous_run_with_a_service_then_waits() {
    if std::env::var_os(CHILD_ANONYMOUS).is_none() {
        return;
    }
    let live = LiveTopology::apply_topology(
        &privileged_support::three_tier(),
        netns_kit::topology::live::ApplyOptions::default(),
    )
    .unwrap();
    let mut service = live
        .command("gateway", "sleep")
        .unwrap()
        .arg("600")
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
        .detach();
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {} {}", live.run_id(), service.id()).unwrap();
    out.flush().unwrap();
    drop(out);
    let mut sink = String::new();
    // Only reached if the parent dies first (stdin closes): clean up and leave.
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut sink);
    let _ = service.kill();
    let _ = service.wait();
    drop(live);
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: u32) -> bool {
    !netns_kit::procfs::is_running(pid)
}

/// Runs one of this binary's ignored helper tests as a child process (stdin and stdout piped,
/// so the parent reads its READY line and controls when it may exit).
fn spawn_child(test: &str, env_key: &str, env_value: &std::ffi::OsStr) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            test,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(env_key, env_value)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[test]
fn gc_kills_what_keeps_the_namespaces_of_a_killed_anonymous_run_alive() {
    if !privileged("gc of an anonymous run's orphans") {
        return;
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_state_dir("gc-anon");
    let mut child = spawn_child(CHILD_ANONYMOUS_TEST, CHILD_ANONYMOUS, "1".as_ref());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (run_id, service) = loop {
        let line = lines.next().expect("child exited before applying").unwrap();
        if let Some(at) = line.find("READY ") {
            let mut f = line[at + "READY ".len()..].split_whitespace();
            let run_id = f.next().unwrap().to_string();
            let pid: u32 = f.next().unwrap().parse().unwrap();
            break (run_id, pid);
        }
    };
    // The owner dies by SIGKILL: no Drop. The service keeps the gateway's namespace alive.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!gone(service), "the service died with its owner");

    // A foreign namespace with a bridge and a process inside, made without netns-kit.
    let mut foreign = Command::new("unshare")
        .args([
            "-n",
            "sh",
            "-c",
            "ip link add br0 type bridge && exec sleep 600",
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();

    let orphan = |l: &Leftover| matches!(l, Leftover::OrphanNamespace { run_id: r, pids, .. } if *r == run_id && pids.contains(&(service as i32)));
    let listed = gc_in(&dir, true).unwrap();
    assert!(listed.iter().any(orphan), "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|l| !format!("{l:?}").contains(&foreign.id().to_string())),
        "{listed:?}"
    );
    assert!(!gone(service), "the dry run killed");

    let removed = gc_in(&dir, false).unwrap();
    assert!(removed.iter().any(orphan), "{removed:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gone(service) {
        assert!(
            std::time::Instant::now() < deadline,
            "gc left the service {service} running"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        matches!(foreign.try_wait(), Ok(None)),
        "gc killed a foreign process"
    );
    let again = gc_in(&dir, true).unwrap();
    assert!(!again.iter().any(orphan), "{again:?}");
    let _ = foreign.kill();
    let _ = foreign.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "helper: run as a child process by the gc test"]
fn child_applies_a_non_persistent_named_run_then_waits_to_be_killed() {
    let Ok(dir) = std::env::var(CHILD_STATE_DIR) else {
        return;
    };
    let (plan, opts) = named_plan(std::path::Path::new(&dir));
    let live = LiveTopology::apply(&plan, opts).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {}", prefix_of(&plan)).unwrap();
    out.flush().unwrap();
    drop(out);
    // Wait to be SIGKILLed; if the parent dies first (stdin closes), clean up and leave.
    let mut sink = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut sink);
    drop(live);
}

#[test]
fn gc_removes_a_killed_runs_leftovers_and_nothing_else() {
    if !privileged("gc after SIGKILL") {
        return;
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_state_dir("gc");

    // A run whose owner dies by SIGKILL: no Drop, no cleanup.
    let mut child = spawn_child(CHILD_TEST, CHILD_STATE_DIR, dir.as_os_str());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let dead = loop {
        let line = lines.next().expect("child exited before applying").unwrap();
        // libtest prints "test <name> ... " before the body runs, on the same line.
        if let Some(at) = line.find("READY ") {
            break line[at + "READY ".len()..].trim().to_string();
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let dead_namespaces = named_with_prefix(&format!("{dead}-"));
    assert_eq!(
        dead_namespaces.len(),
        10,
        "fabric, router and 8 nodes left by the killed run"
    );

    // A live run (this process owns it) and a look-alike namespace sharing the dead prefix.
    let (plan, opts) = named_plan(&dir);
    let alive = prefix_of(&plan);
    let live_run = LiveTopology::apply(&plan, opts).unwrap();
    let lookalike_name = format!("{dead}-lookalike");
    let lookalike = Netns::new_named(&lookalike_name).unwrap();

    // Dry run: lists exactly the dead run's objects, removes nothing.
    let found = gc_in(&dir, true).unwrap();
    let namespaces: Vec<&str> = found
        .iter()
        .filter_map(|l| match l {
            Leftover::Namespace { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let mut expected: Vec<&str> = dead_namespaces.iter().map(String::as_str).collect();
    expected.sort();
    let mut got = namespaces.clone();
    got.sort();
    assert_eq!(got, expected);
    assert!(found
        .iter()
        .any(|l| matches!(l, Leftover::StateFile { run, .. } if *run == dead)));
    assert!(found.iter().all(|l| !format!("{l:?}").contains(&alive)));
    assert_eq!(
        named_with_prefix(&format!("{dead}-")).len(),
        11,
        "dry run removed something"
    );

    // The real thing.
    gc_in(&dir, false).unwrap();
    assert_eq!(
        named_with_prefix(&format!("{dead}-")),
        vec![lookalike_name.clone()]
    );
    assert!(live::list_in(&dir).unwrap().iter().all(|r| r.name != dead));
    assert_eq!(live::status_in(&dir, &alive).unwrap(), vec![]);
    assert!(
        gc_in(&dir, false).unwrap().is_empty(),
        "a second gc finds nothing"
    );

    live_run.destroy().unwrap();
    lookalike.delete().unwrap();
    assert_eq!(named_with_prefix(&dead), Vec::<String>::new());
    assert_eq!(named_with_prefix(&alive), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}
