//! The Nix side and the Rust side cannot disagree about the environment.
//!
//! - `nix/layout.nix` (builtins only) evaluates every environment file under
//!   `ecomm-services/deploy/` (and the rule fixtures under `nix/fixtures/`) to the same JSON
//!   value as `lab layout --json FILE`; on a difference the first differing path is printed.
//! - `nix/test-plan.nix` (builtins only) derives the NixOS test from that layout: every host
//!   has a node, every service instance a unit on its host, ordered by `depends_on`, and every
//!   host the overlay spans checks the overlay's VNI in its netns-kit unit; the testScript is
//!   valid Python (when python3 is installed) and does what the VM suite does.
//! - `nix/nixos-test.nix` needs nixpkgs; here it is evaluated against `nix/fixtures/stub-pkgs.nix`,
//!   which proves the plumbing (which unit, package and file lands on which node), not that the
//!   option and package names exist (nix/checked.tsv, nix/recheck.nix).
//!
//! `nix-instantiate` comes from Debian's `nix-bin` (scripts/setup.sh); `--store dummy://` lets
//! it evaluate without a daemon. Without it the tests say so and pass, unless
//! `ECOMM_REQUIRE_ALL=1`, where a missing binary is a failure.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const NIX_INSTANTIATE: &str = "nix-instantiate";
const STORE: [&str; 2] = ["--store", "dummy://"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtests sits in the workspace root")
        .to_path_buf()
}

/// True when nix-instantiate runs. Otherwise says why the test is skipped and returns false,
/// except with `ECOMM_REQUIRE_ALL=1`, where it panics.
fn nix_instantiate_present(what: &str) -> bool {
    let missing = match Command::new(NIX_INSTANTIATE)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => return true,
        Ok(s) => format!("`{NIX_INSTANTIATE} --version` exited with {s}"),
        Err(e) if e.kind() == ErrorKind::NotFound => format!("{NIX_INSTANTIATE} is not on PATH"),
        Err(e) => format!("{NIX_INSTANTIATE} could not be run: {e}"),
    };
    if std::env::var("ECOMM_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{what} needs nix-instantiate (nix-bin, just setup): {missing}, and ECOMM_REQUIRE_ALL=1 is set");
    }
    eprintln!("skipped: {what} needs nix-instantiate (nix-bin, just setup): {missing}");
    false
}

/// `nix-instantiate --store dummy:// --eval --strict --json -E EXPR`, run in the workspace
/// root (so `./…` paths in EXPR are the repository's), parsed.
fn nix_eval(expr: &str) -> Value {
    let out = Command::new(NIX_INSTANTIATE)
        .args(STORE)
        .args(["--eval", "--strict", "--json", "-E", expr])
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("run {NIX_INSTANTIATE} -E {expr}: {e}"));
    assert!(
        out.status.success(),
        "{NIX_INSTANTIATE} --eval --strict --json -E '{expr}' failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "nix printed no JSON for '{expr}': {e}\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `lab layout --json FILE` (the built binary), run in the workspace root, parsed.
fn lab_layout(rel: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["layout", "--json", rel])
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("run lab layout --json {rel}: {e}"));
    assert!(
        out.status.success(),
        "lab layout --json {rel} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("lab layout --json {rel} printed no JSON: {e}"))
}

/// Every `*.toml` under `dir` (recursively), as paths relative to the workspace root, sorted.
fn toml_files(dir: &str) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("read an entry of {}: {e}", dir.display()))
                .path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "toml") {
                out.push(path);
            }
        }
    }
    let root = root();
    let mut files = Vec::new();
    walk(&root.join(dir), &mut files);
    let mut rel: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(&root)
                .expect("under the root")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    rel.sort();
    rel
}

/// The environment files: every `*.toml` under ecomm-services/deploy/.
fn environment_files() -> Vec<String> {
    let files = toml_files("ecomm-services/deploy");
    assert!(
        files
            .iter()
            .any(|f| f == "ecomm-services/deploy/three-tier.toml"),
        "ecomm-services/deploy/three-tier.toml is among the environment files: {files:?}"
    );
    files
}

/// The Nix expression importing `module` with `{ file = ./FILE; }`.
fn import_with_file(module: &str, rel: &str) -> String {
    format!("import ./{module} {{ file = ./{rel}; }}")
}

/// The first path at which `a` and `b` differ (`$.services.product.instances`…), if any.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => first_difference(u, v, &p),
                    (Some(u), None) => Some(format!("{p}: only on the Nix side ({u})")),
                    (None, Some(v)) => Some(format!("{p}: only on the Rust side ({v})")),
                    (None, None) => None,
                }
            })
        }
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}[{i}]")))
            .or_else(|| {
                (x.len() != y.len()).then(|| {
                    format!(
                        "{path}: {} elements on the Nix side, {} on the Rust side",
                        x.len(),
                        y.len()
                    )
                })
            }),
        _ if a == b => None,
        _ => Some(format!("{path}: Nix {a} != Rust {b}")),
    }
}

#[test]
fn first_difference_names_the_path() {
    let a = serde_json::json!({ "x": { "y": [1, 2, { "z": "a" }] }, "k": 1 });
    let b = serde_json::json!({ "x": { "y": [1, 2, { "z": "b" }] }, "k": 1 });
    assert_eq!(
        first_difference(&a, &b, "$").as_deref(),
        Some("$.x.y[2].z: Nix \"a\" != Rust \"b\"")
    );
    assert_eq!(first_difference(&a, &a, "$"), None);
    let c = serde_json::json!({ "x": { "y": [1, 2] }, "k": 1, "extra": null });
    assert_eq!(
        first_difference(&a, &c, "$").as_deref(),
        Some("$.extra: only on the Rust side (null)")
    );
}

#[test]
fn layout_nix_equals_lab_layout_json_on_every_environment_file() {
    if !nix_instantiate_present("the nix/layout.nix comparison") {
        return;
    }
    let mut files = environment_files();
    // Declarations that exercise rules the environments do not (allocation, long names, a
    // unicast overlay, every placeholder form).
    files.extend(toml_files("nix/fixtures"));
    let mut failures = Vec::new();
    for rel in &files {
        let nix = nix_eval(&import_with_file("nix/layout.nix", rel));
        let rust = lab_layout(rel);
        match first_difference(&nix, &rust, "$") {
            None => eprintln!("{rel}: nix/layout.nix == lab layout --json"),
            Some(d) => failures.push(format!("{rel}: first difference at {d}")),
        }
    }
    assert!(
        failures.is_empty(),
        "nix/layout.nix and `lab layout --json` disagree:\n{}",
        failures.join("\n")
    );
}

fn obj<'a>(v: &'a Value, what: &str) -> &'a serde_json::Map<String, Value> {
    v.as_object()
        .unwrap_or_else(|| panic!("{what} is an object: {v}"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// How the plan quotes one argument for the shell (nix/test-plan.nix `q`).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn test_plan_derives_the_nixos_test_from_the_layout() {
    if !nix_instantiate_present("the nix/test-plan.nix check") {
        return;
    }
    for rel in environment_files() {
        let layout = nix_eval(&import_with_file("nix/layout.nix", &rel));
        let plan = nix_eval(&import_with_file("nix/test-plan.nix", &rel));
        let run = plan["run"].as_str().expect("run");
        let hosts = obj(&layout["hosts"], "layout.hosts");
        let plan_hosts = obj(&plan["hosts"], "plan.hosts");
        assert!(!hosts.is_empty(), "{rel}: a placement with hosts");

        // Every host of the placement has a node, and no other node exists.
        let mut a: Vec<&String> = hosts.keys().collect();
        let mut b: Vec<&String> = plan_hosts.keys().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{rel}: one NixOS node per host");

        let apply = format!("netns-kit-{run}");
        for (h, hp) in plan_hosts {
            let units = obj(&hp["units"], "units");
            let script = units[&apply]["script"].as_str().unwrap_or_default();
            assert!(
                script.contains(&format!("netns-kit apply --host {h} "))
                    && script.contains(&format!("--name {run}")),
                "{rel}: {h} applies its own share: {script}"
            );
            assert_eq!(
                strs(&hp["nodes"]),
                strs(&hosts[h]["nodes"]),
                "{rel}: {h} carries the placed nodes"
            );
            assert!(
                strs(&hp["packages"]).contains(&"workspace".to_string()),
                "{rel}: netns-kit on {h}"
            );
        }

        // Every service instance has a unit on its host, in its namespace, running the
        // resolved command, ordered after its dependencies on that host.
        let services = obj(&layout["services"], "layout.services");
        let mut count = 0;
        for (s, svc) in services {
            for (node, inst) in obj(&svc["instances"], "instances") {
                count += 1;
                let host = inst["host"].as_str().expect("placed");
                let unit_name = format!("{run}-{s}-{node}");
                let unit = plan_hosts[host]["units"]
                    .get(&unit_name)
                    .unwrap_or_else(|| panic!("{rel}: unit {unit_name} on {host}"));
                for other in plan_hosts.keys().filter(|h| *h != host) {
                    assert!(
                        plan_hosts[other]["units"].get(&unit_name).is_none(),
                        "{rel}: {unit_name} only on {host}, also on {other}"
                    );
                }
                let script = unit["script"].as_str().unwrap_or_default();
                assert!(
                    script.starts_with(&format!("exec ip netns exec {run}-{node} ")),
                    "{rel}: {unit_name} runs in {run}-{node}: {script}"
                );
                for arg in strs(&inst["command"]) {
                    if arg.contains("${") {
                        // A runtime var: the plan supplies its value.
                        assert!(
                            !script.contains(&arg),
                            "{rel}: {unit_name}: runtime var left in {arg}"
                        );
                    } else {
                        assert!(
                            script.contains(&shell_quote(&arg)),
                            "{rel}: {unit_name} passes {arg:?}: {script}"
                        );
                    }
                }
                let after = strs(&unit["after"]);
                let requires = strs(&unit["requires"]);
                assert!(after.contains(&format!("{apply}.service")));
                assert!(requires.contains(&format!("{apply}.service")));
                for dep in strs(&svc["depends_on"]) {
                    for (dnode, dinst) in obj(&services[&dep]["instances"], "instances") {
                        let dunit = format!("{run}-{dep}-{dnode}.service");
                        if dinst["host"] == inst["host"] {
                            assert!(
                                after.contains(&dunit) && requires.contains(&dunit),
                                "{rel}: {unit_name} after/requires {dunit}"
                            );
                        } else {
                            let pre = unit["preStart"].as_str().unwrap_or_default();
                            let addr = dinst["address"].as_str().expect("address");
                            assert!(
                                pre.contains(addr),
                                "{rel}: {unit_name} waits for {dep} on {dnode} ({addr}) in preStart: {pre}"
                            );
                        }
                    }
                }
                // Active means ready: the probe runs in postStart.
                let post = unit["postStart"].as_str().unwrap_or_default();
                let ready = &svc["ready"];
                if ready["probe"] != "none" {
                    let at = format!(
                        "{}/{}",
                        inst["address"].as_str().unwrap_or_default(),
                        ready["port"]
                    );
                    let at_http = format!(
                        "{}:{}",
                        inst["address"].as_str().unwrap_or_default(),
                        ready["port"]
                    );
                    assert!(
                        post.contains(&at) || post.contains(&at_http),
                        "{rel}: {unit_name} waits for its readiness probe: {post}"
                    );
                }
            }
        }
        let unit_count: usize = plan_hosts
            .values()
            .map(|hp| obj(&hp["units"], "units").len() - 1)
            .sum();
        assert_eq!(unit_count, count, "{rel}: one unit per instance, no others");

        // The overlay: every host it spans checks its VNI; no other host mentions it.
        let overlay = layout["overlay"].as_array().expect("overlay");
        assert!(!overlay.is_empty(), "{rel}: a derived overlay");
        for o in overlay {
            let want = format!("vxlan id {} ", o["vni"]);
            let name = o["name"].as_str().expect("name");
            let spans = strs(&o["hosts"]);
            for (h, hp) in plan_hosts {
                let script = hp["units"][&apply]["script"].as_str().unwrap_or_default();
                assert_eq!(
                    script.contains(&want) && script.contains(name),
                    spans.contains(h),
                    "{rel}: {h}'s netns-kit unit and overlay {name} ({want}) spanning {spans:?}: {script}"
                );
            }
        }

        // The file netns-kit applies in the VMs is the declaration but for underlay.dev.
        let same = nix_eval(&format!(
            "let s = builtins.fromTOML (builtins.readFile ./{rel}); p = {}; \
             in removeAttrs p.topology [\"underlay\"] == removeAttrs s [\"underlay\"] \
             && removeAttrs p.topology.underlay [\"dev\"] == removeAttrs (s.underlay or {{}}) [\"dev\"] \
             && p.topology.underlay.dev == p.underlayDev",
            import_with_file("nix/test-plan.nix", &rel)
        ));
        assert_eq!(same, Value::Bool(true), "{rel}: only underlay.dev differs");

        // The policy matrix has both verdicts and every pair both ways.
        let matrix = plan["matrix"].as_array().expect("matrix");
        assert!(matrix.iter().any(|r| r["allowed"] == true));
        assert!(matrix.iter().any(|r| r["allowed"] == false));
        for r in matrix {
            assert!(
                matrix
                    .iter()
                    .any(|x| x["from"] == r["to"] && x["to"] == r["from"]),
                "{rel}: {} -> {} probed the other way too",
                r["from"],
                r["to"]
            );
        }

        // The testScript does what the VM suite does.
        let script = plan["testScript"].as_str().expect("testScript");
        let fault = plan["faultHost"].as_str().expect("faultHost");
        assert!(
            hosts.contains_key(fault),
            "{rel}: the fault host {fault} is a host"
        );
        for needle in [
            "start_all()",
            "wait_for_unit(",
            "F.crash()",
            "F.start()",
            "F.block()",
            "F.unblock()",
            "assert_guarantees(",
            "exactly once",
            "denied paths must be dropped",
            "allowed paths must connect",
            "product hosts that served",
        ] {
            assert!(script.contains(needle), "{rel}: testScript has {needle:?}");
        }
        assert_python_parses(&rel, script);
        eprintln!(
            "{rel}: {} hosts, {count} service units, {} overlay(s), {} matrix rows, fault host {fault}",
            plan_hosts.len(),
            overlay.len(),
            matrix.len()
        );
    }
}

/// The testScript is Python the driver runs; parse it when python3 is here.
fn assert_python_parses(rel: &str, script: &str) {
    use std::io::Write;
    let child = Command::new("python3")
        .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{rel}: testScript not parsed (python3: {e})");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the testScript to python3");
    let out = child.wait_with_output().expect("python3 runs");
    assert!(
        out.status.success(),
        "{rel}: the testScript is not valid Python:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nixos_test_nodes_with_a_stub_pkgs() {
    if !nix_instantiate_present("the nix/nixos-test.nix stub evaluation") {
        return;
    }
    for rel in environment_files() {
        let plan = nix_eval(&import_with_file("nix/test-plan.nix", &rel));
        let t = nix_eval(&format!(
            "let file = ./{rel}; layout = import ./nix/layout.nix {{ inherit file; }}; \
             t = import ./nix/nixos-test.nix {{ inherit layout file; \
                   pkgs = import ./nix/fixtures/stub-pkgs.nix; workspace = \"stub:workspace\"; }}; \
             in {{ inherit (t) name testScript; nodes = builtins.mapAttrs (h: m: m {{ }}) t.nodes; }}"
        ));
        assert_eq!(
            t["testScript"], plan["testScript"],
            "{rel}: the plan's testScript"
        );
        let nodes = obj(&t["nodes"], "nodes");
        let plan_hosts = obj(&plan["hosts"], "plan.hosts");
        assert_eq!(nodes.len(), plan_hosts.len(), "{rel}: one node per host");
        let etc = plan["topologyPath"]
            .as_str()
            .and_then(|p| p.strip_prefix("/etc/"))
            .expect("topology under /etc");
        for (h, hp) in plan_hosts {
            let n = &nodes[h];
            assert_eq!(
                n["virtualisation"]["vlans"], hp["vlans"],
                "{rel}: {h} vlans"
            );
            assert_eq!(n["networking"]["firewall"]["enable"], false);
            let source = n["environment"]["etc"][etc]["source"]
                .as_str()
                .unwrap_or_default();
            assert!(
                source.starts_with("stub:toml:"),
                "{rel}: {h} gets the topology file /etc/{etc}: {source}"
            );
            let packages = strs(&n["environment"]["systemPackages"]);
            for p in strs(&hp["packages"]) {
                assert!(
                    packages.contains(&format!("stub:{p}")),
                    "{rel}: {h} has {p}: {packages:?}"
                );
            }
            let services = obj(&n["systemd"]["services"], "systemd.services");
            for (u, pu) in obj(&hp["units"], "units") {
                let su = services
                    .get(u)
                    .unwrap_or_else(|| panic!("{rel}: systemd.services.{u} on {h}"));
                assert_eq!(su["script"], pu["script"], "{rel}: {u}");
                assert_eq!(su["after"], pu["after"], "{rel}: {u}");
                assert_eq!(su["requires"], pu["requires"], "{rel}: {u}");
                assert!(su["serviceConfig"]["Type"].is_string(), "{rel}: {u} Type");
            }
            for user in strs(&hp["users"]) {
                assert_eq!(n["users"]["users"][&user]["isSystemUser"], true);
            }
        }
    }
}

/// The verdict of the Rust side's validated policy for a new TCP connection from `from` (a
/// node) to `to:port`: allowed when both share a subnet (never crosses the router) or a rule
/// whose sources hold one of `from`'s addresses, whose destinations hold `to`, whose protocol
/// is tcp or any, and whose ports are empty or include `port`, says so.
fn rust_allows(t: &netns_kit::Topology, from: &str, to: std::net::IpAddr, port: u16) -> bool {
    use netns_kit::firewall::Proto;
    let node = t.node(from).unwrap_or_else(|| panic!("node {from}"));
    let mine: Vec<std::net::IpAddr> = node.interfaces.iter().map(|i| i.address).collect();
    let same_subnet = t
        .networks
        .iter()
        .any(|n| n.subnet.contains(&to) && mine.iter().any(|a| n.subnet.contains(a)));
    same_subnet
        || t.policy.iter().any(|r| {
            matches!(r.proto, Proto::Tcp | Proto::Any)
                && r.from_nets
                    .iter()
                    .any(|n| mine.iter().any(|a| n.contains(a)))
                && r.to_nets.iter().any(|n| n.contains(&to))
                && (r.ports.is_empty() || r.ports.iter().any(|p| p.first <= port && port <= p.last))
        })
}

#[test]
fn test_plan_policy_matrix_matches_the_rust_policy() {
    if !nix_instantiate_present("the nix/test-plan.nix policy matrix check") {
        return;
    }
    for rel in environment_files() {
        let t = netns_kit::Topology::from_path(root().join(&rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        let plan = nix_eval(&import_with_file("nix/test-plan.nix", &rel));
        let matrix = plan["matrix"].as_array().expect("matrix");
        let mut wrong = Vec::new();
        for r in matrix {
            let from = r["from"].as_str().expect("from");
            let to: std::net::IpAddr = r["address"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .expect("address");
            let port = r["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .expect("port");
            let rust = rust_allows(&t, from, to, port);
            if Value::Bool(rust) != r["allowed"] {
                wrong.push(format!(
                    "{from} -> {} {to}:{port}: Nix {}, Rust {rust}",
                    r["to"], r["allowed"]
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "{rel}: the plan's policy matrix disagrees with the validated policy:\n{}",
            wrong.join("\n")
        );
        eprintln!(
            "{rel}: {} matrix rows agree with the Rust policy",
            matrix.len()
        );
    }
}

#[test]
fn recheck_nix_reports_what_the_stub_tree_leaves_out() {
    if !nix_instantiate_present("the nix/recheck.nix stub run") {
        return;
    }
    // nix/fixtures/nixpkgs-stub holds every name of nix/checked.tsv but the ones its
    // rows.nix leaves out or turns into a `throw`: recheck.nix must report exactly those.
    let got = nix_eval("import ./nix/recheck.nix { nixpkgs = ./nix/fixtures/nixpkgs-stub; }");
    let expected = nix_eval("(import ./nix/fixtures/nixpkgs-stub/rows.nix).expectedMissing");
    assert_eq!(
        got["missing"], expected,
        "recheck.nix on the stub tree: {got}"
    );
    assert_eq!(got["rustOk"], true, "{got}");
    let tsv = std::fs::read_to_string(root().join("nix/checked.tsv")).expect("nix/checked.tsv");
    let rows = tsv
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
        - 1;
    assert_eq!(
        got["checked"], rows,
        "every row of nix/checked.tsv is checked"
    );
    for l in tsv.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        assert_eq!(l.split('\t').count(), 6, "six columns: {l}");
    }
}
