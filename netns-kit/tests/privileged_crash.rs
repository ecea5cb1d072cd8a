//! A user's terminal dies in the middle of `netns-kit apply` or `destroy` — at every step in
//! turn, not just one. The crash-point hook (`NETNS_KIT_FAULT_AFTER_STEP=N`: the process
//! SIGKILLs itself at its N-th crash point) kills the CLI at step 1, then 2, … until a run
//! gets through. After each kill `list` calls the run dead, `gc --dry-run` agrees, and
//! `gc` (or the next `destroy`) leaves nothing of it: no namespace, no /run/netns entry
//! (mounted or not), no host link, no host route, no state file — while a foreign
//! namespace with a bridge in it, made with `ip netns add` under a name the run recorded
//! (or one that looks like it), is untouched.
//!
//! The lab-mode tests create the one host-side link (and its routes) in the root
//! namespace, under a unique run name, in a /16 no other test uses, and assert both gone;
//! a guard destroys every run they started, whatever happens. Needs root; skips without
//! it unless ECOMM_REQUIRE_ALL=1.

mod cli_support;
mod privileged_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cli_support::{killed, text, unique, Cli, Foreign};
use privileged_support::privileged;

const FAULT: &str = "NETNS_KIT_FAULT_AFTER_STEP";

/// Upper bound on the crash points of one apply of the small topology (there are about 15).
const MAX_STEPS: usize = 64;

/// Destroys (then gc's) every run a test started, even when an assertion fails midway.
struct Guard<'a> {
    cli: &'a Cli,
    names: Vec<String>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.cli.run(&["destroy", n], &[]);
        }
        let _ = self.cli.run(&["gc"], &[]);
    }
}

/// The namespace names run `name` records, in creation order.
fn recorded_names(name: &str) -> Vec<String> {
    ["fabric", "router", "web", "api"]
        .iter()
        .map(|k| format!("{name}-{k}"))
        .collect()
}

/// Kill `apply` at each crash point in turn; after each kill check list/gc agreement,
/// collect with gc and assert nothing is left but the foreign objects. Returns how many
/// steps were killed before an apply completed.
fn kill_apply_at_every_step(cli: &Cli, guard: &mut Guard<'_>, base: &str) -> usize {
    for n in 1..=MAX_STEPS {
        let name = format!("{base}-{n}");
        guard.names.push(name.clone());
        let out = cli.apply(&name, &[(FAULT, n.to_string())]);
        if out.status.code() == Some(0) {
            // No crash point left: the run is complete. Its owner (the CLI) has exited, yet
            // it is a live lab, not garbage: gc leaves it exactly as declared.
            assert!(cli.phases().contains(&(name.clone(), "up".to_string())));
            let gc = cli.run(&["gc"], &[]);
            assert_eq!(
                String::from_utf8_lossy(&gc.stdout).trim(),
                "nothing to collect",
                "{}",
                text(&gc)
            );
            let st = cli.run(&["status", &name], &[]);
            assert_eq!(st.status.code(), Some(0), "status {name}: {}", text(&st));
            // It must destroy cleanly too.
            let d = cli.run(&["destroy", &name], &[]);
            assert_eq!(d.status.code(), Some(0), "destroy {name}: {}", text(&d));
            assert_eq!(cli.leftovers(&name), Vec::<String>::new());
            return n - 1;
        }
        assert!(killed(&out), "apply {name} at step {n}: {}", text(&out));
        let step = String::from_utf8_lossy(&out.stderr).trim().to_string();

        // `list` calls it dead, and the dry run of gc lists its state file.
        assert!(
            cli.phases().contains(&(name.clone(), "dead".to_string())),
            "list after a kill at {step}: {:?}",
            cli.phases()
        );
        let before = cli.leftovers(&name);
        let dry = cli.run(&["gc", "--dry-run"], &[]);
        assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
        let dry_text = String::from_utf8_lossy(&dry.stdout);
        assert!(
            dry_text.contains("would remove state file") && dry_text.contains(&name),
            "gc --dry-run after a kill at {step}: {}",
            text(&dry)
        );
        assert_eq!(
            cli.leftovers(&name),
            before,
            "the dry run removed something"
        );

        // Foreign objects under names the run recorded but had not created yet (or, once
        // it created them all, under a look-alike name): a namespace with a bridge, and a
        // plain empty file like a crashed `ip netns add` leaves.
        let free: Vec<String> = recorded_names(&name)
            .into_iter()
            .filter(|n| !std::path::Path::new("/run/netns").join(n).exists())
            .collect();
        let foreign = Foreign::new(
            free.first()
                .cloned()
                .unwrap_or_else(|| format!("{name}-fabrik"))
                .as_str(),
        );
        let empty_file = free
            .get(1)
            .map(|n| std::path::Path::new("/run/netns").join(n));
        if let Some(p) = &empty_file {
            std::fs::write(p, b"").unwrap();
        }

        let gc = cli.run(&["gc"], &[]);
        assert_eq!(gc.status.code(), Some(0), "gc: {}", text(&gc));

        let mut left = cli.leftovers(&name);
        left.retain(|l| {
            *l != format!("/run/netns/{}", foreign.name)
                && Some(l.as_str()) != empty_file.as_ref().and_then(|p| p.to_str())
        });
        assert_eq!(
            left,
            Vec::<String>::new(),
            "leftovers after a kill at {step} and gc: {}",
            text(&gc)
        );
        assert!(
            foreign.intact(),
            "gc touched the foreign namespace {}",
            foreign.name
        );
        if let Some(p) = &empty_file {
            assert!(p.exists(), "gc removed a foreign file {}", p.display());
            std::fs::remove_file(p).unwrap();
        }
        assert!(
            cli.phases().iter().all(|(n, _)| *n != name),
            "{:?}",
            cli.phases()
        );
    }
    panic!("apply was still being killed after {MAX_STEPS} steps");
}

#[test]
fn apply_killed_after_every_step_leaves_nothing_once_gc_ran() {
    if !privileged("apply killed at every step") {
        return;
    }
    let cli = Cli::new("crash-apply", 249, false);
    let mut guard = Guard {
        cli: &cli,
        names: Vec::new(),
    };
    let steps = kill_apply_at_every_step(&cli, &mut guard, &unique("ka"));
    // State recorded, 4 namespaces (reserved, mounted), links, configuration, firewall.
    assert!(steps >= 10, "only {steps} crash points in apply");
}

#[test]
fn a_lab_run_killed_after_every_step_leaves_no_host_link_or_route() {
    if !privileged("lab apply killed at every step") {
        return;
    }
    let cli = Cli::new("crash-lab", 248, true);
    let mut guard = Guard {
        cli: &cli,
        names: Vec::new(),
    };
    let steps = kill_apply_at_every_step(&cli, &mut guard, &unique("kl"));
    assert!(steps >= 11, "only {steps} crash points in a lab apply");
}

/// Wait (bounded) for `child` to be gone; true if it was.
fn reaped(child: &mut std::process::Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Whether process `pid` is inside the namespace at /run/netns/`ns`.
fn inside(pid: u32, ns: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let a = std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| m.ino());
    let b = std::fs::metadata(format!("/run/netns/{ns}")).map(|m| m.ino());
    matches!((a, b), (Ok(a), Ok(b)) if a == b)
}

#[test]
fn destroy_killed_after_every_step_is_finished_by_the_next_destroy_or_gc() {
    if !privileged("destroy killed at every step") {
        return;
    }
    let cli = Cli::new("crash-destroy", 247, true);
    let mut guard = Guard {
        cli: &cli,
        names: Vec::new(),
    };
    let base = unique("kd");
    for n in 1..=MAX_STEPS {
        let name = format!("{base}-{n}");
        guard.names.push(name.clone());
        cli.apply_ok(&name);
        // A service inside a node: destroy (or gc) must kill it.
        let mut sleeper = cli
            .command(&["exec", &name, "web", "--", "sleep", "600"], &[])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !inside(sleeper.id(), &format!("{name}-web")) {
            assert!(Instant::now() < deadline, "exec never entered {name}-web");
            std::thread::sleep(Duration::from_millis(5));
        }

        let out = cli.run(&["destroy", &name], &[(FAULT, n.to_string())]);
        if out.status.code() == Some(0) {
            assert!(n > 3, "destroy passed only {} crash points", n - 1);
            assert!(reaped(&mut sleeper), "destroy left the service running");
            assert_eq!(cli.leftovers(&name), Vec::<String>::new());
            return;
        }
        assert!(killed(&out), "destroy {name} at step {n}: {}", text(&out));
        let step = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert!(
            cli.phases().contains(&(name.clone(), "dead".to_string())),
            "list after destroy was killed at {step}: {:?}",
            cli.phases()
        );
        // Alternate who finishes the job.
        let finish = if n % 2 == 1 {
            cli.run(&["destroy", &name], &[])
        } else {
            cli.run(&["gc"], &[])
        };
        assert_eq!(finish.status.code(), Some(0), "{}", text(&finish));
        assert_eq!(
            cli.leftovers(&name),
            Vec::<String>::new(),
            "after destroy was killed at {step}: {}",
            text(&finish)
        );
        assert!(
            reaped(&mut sleeper),
            "the service in {name}-web survived (destroy killed at {step})"
        );
    }
    panic!("destroy was still being killed after {MAX_STEPS} steps");
}

#[test]
fn a_namespace_that_lost_its_name_but_runs_a_service_is_found_by_its_tag() {
    if !privileged("pinned unnamed namespace") {
        return;
    }
    let cli = Cli::new("crash-pinned", 241, false);
    let name = unique("kp");
    let _guard = Guard {
        cli: &cli,
        names: vec![name.clone()],
    };
    cli.apply_ok(&name);
    let web = format!("{name}-web");
    let mut service = cli
        .command(&["exec", &name, "web", "--", "sleep", "600"], &[])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !inside(service.id(), &web) {
        assert!(Instant::now() < deadline, "exec never entered {web}");
        std::thread::sleep(Duration::from_millis(5));
    }

    // A user deletes the node's name while the service runs: the namespace lives on,
    // unnamed, pinned by the service. Then a destroy dies right after recording its intent.
    cli_support::sh(&["ip", "netns", "delete", &web]);
    assert!(matches!(service.try_wait(), Ok(None)));
    let out = cli.run(&["destroy", &name], &[(FAULT, "1".to_string())]);
    assert!(killed(&out), "{}", text(&out));

    // gc finds the unnamed namespace by its tagged `lo` and kills what keeps it alive.
    let dry = cli.run(&["gc", "--dry-run"], &[]);
    let listed = String::from_utf8_lossy(&dry.stdout);
    assert!(
        listed.contains("unnamed namespace") && listed.contains(&service.id().to_string()),
        "{}",
        text(&dry)
    );
    assert!(matches!(service.try_wait(), Ok(None)), "the dry run killed");
    let gc = cli.run(&["gc"], &[]);
    assert_eq!(gc.status.code(), Some(0), "{}", text(&gc));
    assert!(
        reaped(&mut service),
        "the service pinning the namespace survived gc"
    );
    assert_eq!(cli.leftovers(&name), Vec::<String>::new());
}

#[test]
fn destroy_of_a_run_killed_before_it_recorded_anything_removes_its_files_and_of_no_run_exits_2() {
    if !privileged("destroy of a barely started run") {
        return;
    }
    let cli = Cli::new("crash-early", 240, false);
    let name = unique("ke");
    let _guard = Guard {
        cli: &cli,
        names: vec![name.clone()],
    };
    // Killed at its first crash point: only a lock file under its temporary name exists.
    let out = cli.apply(&name, &[(FAULT, "1".to_string())]);
    assert!(killed(&out), "{}", text(&out));
    assert!(!cli.leftovers(&name).is_empty(), "nothing to destroy?");
    assert!(cli.phases().contains(&(name.clone(), "dead".to_string())));
    let d = cli.run(&["destroy", &name], &[]);
    assert_eq!(d.status.code(), Some(0), "{}", text(&d));
    assert_eq!(cli.leftovers(&name), Vec::<String>::new());

    // A name nothing is known about: exit 2, one line, and no lock file made for it.
    let none = cli.run(&["destroy", &name], &[]);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));
    assert_eq!(String::from_utf8_lossy(&none.stderr).lines().count(), 1);
    assert_eq!(cli.leftovers(&name), Vec::<String>::new());
}
