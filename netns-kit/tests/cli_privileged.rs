//! The CLI's kernel verbs end to end (root only): apply leaves a topology up under a unique
//! name, list/status/exec find it, destroy removes it and nothing is left behind.
//!
//! The topology here has no `[host]` section, so nothing is created in the host's root
//! namespace. Skips without root, unless ECOMM_REQUIRE_ALL=1 (then a skip is a failure).

use std::path::PathBuf;
use std::process::{Command, Output};

const TOPOLOGY: &str = r#"
name = "cli-test"

[[networks]]
name = "front"
subnet = "10.231.1.0/24"

[[networks]]
name = "back"
subnet = "10.231.2.0/24"

[router]
networks = ["front", "back"]

[[nodes]]
name = "web"
interfaces = [{ network = "front", address = "10.231.1.10" }]

[[nodes]]
name = "api"
interfaces = [{ network = "back", address = "10.231.2.10" }]

[[policy]]
from = "front"
to = "api"
proto = "tcp"
ports = [8080]
"#;

fn privileged() -> bool {
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(0);
    let ok = caps & (1 << 12) != 0 && caps & (1 << 21) != 0;
    if !ok {
        assert!(
            std::env::var("ECOMM_REQUIRE_ALL").as_deref() != Ok("1"),
            "ECOMM_REQUIRE_ALL=1 but these tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"
        );
        eprintln!("skipping: needs root");
    }
    ok
}

fn netns_kit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netns-kit"))
        .args(args)
        .output()
        .expect("run netns-kit")
}

/// A private state directory, so these tests never see (or gc) anyone else's runs.
fn state_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("netns-kit-cli-state-{}-{tag}", std::process::id()))
}

fn text(o: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An applied run with a unique name; destroyed on drop if a test did not get that far.
struct Run {
    name: String,
    file: PathBuf,
    state_dir: PathBuf,
}

impl Run {
    fn apply(tag: &str) -> Run {
        let name = format!("c{}{tag}", std::process::id() % 100_000);
        let file = std::env::temp_dir().join(format!("netns-kit-{name}.toml"));
        std::fs::write(&file, TOPOLOGY).unwrap();
        let run = Run {
            name,
            file,
            state_dir: state_dir(tag),
        };
        let o = run.cli(&["apply", run.file.to_str().unwrap(), "--name", &run.name]);
        assert_eq!(o.status.code(), Some(0), "apply failed: {}", text(&o));
        run
    }

    /// netns-kit with this run's private state directory.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_netns-kit"))
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(args)
            .output()
            .expect("run netns-kit")
    }

    fn netns_names(&self) -> Vec<String> {
        let prefix = format!("{}-", self.name);
        std::fs::read_dir("/run/netns")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn assert_nothing_left(&self) {
        assert!(
            self.netns_names().is_empty(),
            "leaked namespaces: {:?}",
            self.netns_names()
        );
        assert!(
            !self.state_dir.join(format!("{}.json", self.name)).exists(),
            "leaked state file"
        );
        let list = self.cli(&["list"]);
        assert!(
            !String::from_utf8_lossy(&list.stdout).contains(&self.name),
            "{}",
            text(&list)
        );
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.cli(&["destroy", &self.name]);
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_dir(&self.state_dir);
    }
}

#[test]
fn apply_leaves_the_topology_up_until_destroy() {
    if !privileged() {
        return;
    }
    let run = Run::apply("a");
    assert_eq!(
        run.netns_names().len(),
        1 + 1 + 2,
        "fabric, router, two nodes"
    );

    let list = run.cli(&["list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains(&run.name),
        "{}",
        text(&list)
    );

    let status = run.cli(&["status", &run.name]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(String::from_utf8_lossy(&status.stdout).contains("exactly as declared"));

    let json = run.cli(&["status", &run.name, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["ok"], true, "{}", text(&json));

    let destroy = run.cli(&["destroy", &run.name]);
    assert_eq!(destroy.status.code(), Some(0), "{}", text(&destroy));
    run.assert_nothing_left();

    let again = run.cli(&["destroy", &run.name]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "destroying twice is bad input: {}",
        text(&again)
    );
}

#[test]
fn exec_runs_inside_the_node_and_returns_its_exit_code() {
    if !privileged() {
        return;
    }
    let run = Run::apply("e");
    let addr = run.cli(&[
        "exec", &run.name, "web", "--", "ip", "-br", "addr", "show", "eth0",
    ]);
    assert_eq!(addr.status.code(), Some(0), "{}", text(&addr));
    assert!(
        String::from_utf8_lossy(&addr.stdout).contains("10.231.1.10/24"),
        "{}",
        text(&addr)
    );

    let seven = run.cli(&["exec", &run.name, "api", "--", "sh", "-c", "exit 7"]);
    assert_eq!(seven.status.code(), Some(7));

    let route = run.cli(&[
        "exec", &run.name, "api", "--", "ip", "route", "show", "default",
    ]);
    assert!(
        String::from_utf8_lossy(&route.stdout).contains("via 10.231.2.1"),
        "{}",
        text(&route)
    );

    let nobody = run.cli(&["exec", &run.name, "nobody", "--", "true"]);
    assert_eq!(nobody.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("has no node \"nobody\""));

    let missing = run.cli(&["exec", &run.name, "web", "--", "/nonexistent/tool"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
}

#[test]
fn probe_runs_every_probe_at_once_from_the_nodes_namespaces() {
    if !privileged() {
        return;
    }
    let run = Run::apply("p");
    // api listens on 8080 (policy: front may reach it) and 9090 (nothing opens it).
    let o = run.cli(&[
        "probe",
        &run.name,
        "--deadline",
        "700ms",
        "--listen",
        "api:8080",
        "--listen",
        "api:9090",
        "web=10.231.2.10:8080",
        "web=10.231.2.10:9090",
        "web=10.231.2.10:7070",
        "api=10.231.2.10:7070",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let outcomes: Vec<(&str, &str, &str)> = out
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?, w.next()?, w.next()?))
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("web", "10.231.2.10:8080", "reachable"),
            ("web", "10.231.2.10:9090", "timed-out"),
            ("web", "10.231.2.10:7070", "timed-out"),
            ("api", "10.231.2.10:7070", "refused"),
        ],
        "{}",
        text(&o)
    );

    // Listeners alone are held until the process is killed.
    let mut held = Command::new(env!("CARGO_BIN_EXE_netns-kit"))
        .arg("--state-dir")
        .arg(&run.state_dir)
        .args(["probe", &run.name, "--listen", "api:9191"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = held.stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    assert_eq!(line.trim(), "listening on 1 port(s)");
    let reach = run.cli(&["probe", &run.name, "api=10.231.2.10:9191"]);
    assert!(
        String::from_utf8_lossy(&reach.stdout).contains(" reachable "),
        "{}",
        text(&reach)
    );
    held.kill().unwrap();
    held.wait().unwrap();
    let gone = run.cli(&["probe", &run.name, "api=10.231.2.10:9191"]);
    assert!(
        String::from_utf8_lossy(&gone.stdout).contains(" refused "),
        "{}",
        text(&gone)
    );

    // Bad input: exit 2, one line naming the value.
    for (args, needle) in [
        (
            vec!["probe", &run.name, "nobody=10.231.2.10:80"],
            "has no node \"nobody\"",
        ),
        (
            vec!["probe", &run.name, "web=10.231.2.10"],
            "\"web=10.231.2.10\"",
        ),
        (
            vec![
                "probe",
                &run.name,
                "--deadline",
                "soon",
                "web=10.231.2.10:80",
            ],
            "\"soon\"",
        ),
        (vec!["probe", &run.name, "--listen", "api:0"], "\"api:0\""),
        (vec!["probe", &run.name], "nothing to do"),
    ] {
        let o = run.cli(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(needle) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }

    let d = run.cli(&["destroy", &run.name]);
    assert_eq!(d.status.code(), Some(0), "{}", text(&d));
    run.assert_nothing_left();
}

#[test]
fn status_lists_each_difference_from_the_declaration() {
    if !privileged() {
        return;
    }
    let run = Run::apply("s");
    let down = Command::new("ip")
        .args([
            "-n",
            &format!("{}-web", run.name),
            "link",
            "set",
            "eth0",
            "down",
        ])
        .status()
        .unwrap();
    assert!(down.success());
    let status = run.cli(&["status", &run.name]);
    assert_eq!(status.status.code(), Some(3), "drifted: {}", text(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("web: link eth0 is down"),
        "{}",
        text(&status)
    );
    let json = run.cli(&["status", &run.name, "--json"]);
    assert_eq!(
        json.status.code(),
        Some(3),
        "drifted, as JSON: {}",
        text(&json)
    );
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["differences"][0]["kind"], "link_down");
}

#[test]
fn applying_the_same_name_twice_is_refused_and_gc_leaves_live_runs_alone() {
    if !privileged() {
        return;
    }
    let run = Run::apply("g");
    let twice = run.cli(&["apply", run.file.to_str().unwrap(), "--name", &run.name]);
    assert_eq!(twice.status.code(), Some(2), "{}", text(&twice));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already applied"));

    let dry = run.cli(&["gc", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(
        !String::from_utf8_lossy(&dry.stdout).contains(&run.name),
        "{}",
        text(&dry)
    );
    let gc = run.cli(&["gc"]);
    assert_eq!(gc.status.code(), Some(0), "{}", text(&gc));
    assert!(
        String::from_utf8_lossy(&gc.stdout).contains("nothing to collect"),
        "{}",
        text(&gc)
    );
    assert_eq!(
        run.netns_names().len(),
        4,
        "gc must not touch a live persistent run"
    );
}

#[test]
fn bad_run_names_are_refused_before_anything_is_created() {
    if !privileged() {
        return;
    }
    let file = std::env::temp_dir().join(format!("netns-kit-badname-{}.toml", std::process::id()));
    std::fs::write(&file, TOPOLOGY).unwrap();
    let o = netns_kit(&["apply", file.to_str().unwrap(), "--name", "../etc"]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
}

#[test]
fn privileged_verbs_without_privileges_say_so_in_one_line() {
    if !privileged() {
        return;
    }
    // Drop to nobody with no capabilities, with util-linux's setpriv.
    let have_setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !have_setpriv {
        assert!(
            std::env::var("ECOMM_REQUIRE_ALL").as_deref() != Ok("1"),
            "setpriv missing"
        );
        return;
    }
    for args in [
        vec!["gc", "--dry-run"],
        vec!["destroy", "x"],
        vec!["status", "x"],
        vec!["exec", "x", "web", "--", "true"],
        vec!["probe", "x", "web=10.0.0.1:80"],
    ] {
        let o = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(env!("CARGO_BIN_EXE_netns-kit"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("needs root"), "{err}");
    }
}
