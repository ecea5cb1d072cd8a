//! gc after a crash: a run whose owner was SIGKILLed mid-life is removed — exactly its
//! objects — while a live run and a look-alike namespace stay untouched.

mod privileged_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use netns_kit::netns::Netns;
use netns_kit::topology::gc::{gc_in, Leftover};
use netns_kit::topology::live::{self, LiveTopology};
use privileged_support::{named_plan, named_with_prefix, prefix_of, privileged, temp_state_dir};

/// Set in the child process: the state directory to record its run in.
const CHILD_STATE_DIR: &str = "NETNS_KIT_GC_CHILD_STATE_DIR";
const CHILD_TEST: &str = "child_applies_a_non_persistent_named_run_then_waits_to_be_killed";

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
    let dir = temp_state_dir("gc");

    // A run whose owner dies by SIGKILL: no Drop, no cleanup.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            CHILD_TEST,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_STATE_DIR, &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
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
