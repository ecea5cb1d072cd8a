//! The CLI's pure verbs (`validate`, `graph`) and its handling of bad input: exit 2 and one
//! line naming the problem.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn netns_kit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netns-kit"))
        .args(args)
        .output()
        .expect("run netns-kit")
}

fn three_tier() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/three-tier.toml"
    )
    .to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A scratch file holding `text`, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, text: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("netns-kit-cli-{}-{tag}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn assert_one_line_error(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "expected one line, got: {err}");
    assert!(err.starts_with("netns-kit: error: "), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

#[test]
fn validate_accepts_the_three_tier_file() {
    let o = netns_kit(&["validate", &three_tier()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("ok: topology \"three-tier\": 3 networks, 8 nodes"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn validate_names_the_bad_field_of_a_bad_file() {
    let f = TempFile::new(
        "outside",
        "name = \"x\"\n[[networks]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\n[[nodes]]\nname = \"n\"\ninterfaces = [{ network = \"a\", address = \"10.1.0.5\" }]\n",
    );
    let o = netns_kit(&["validate", f.path()]);
    assert_one_line_error(
        &o,
        "nodes[0].interfaces[0].address: 10.1.0.5 is outside network \"a\"",
    );
}

#[test]
fn validate_reports_toml_syntax_errors_with_line_and_column() {
    let f = TempFile::new("syntax", "name = \"x\"\n[[networks]\nname = \"a\"\n");
    let o = netns_kit(&["validate", f.path()]);
    assert_one_line_error(&o, "line 2, column 12");
}

#[test]
fn validate_of_a_missing_file_is_bad_input() {
    let o = netns_kit(&["validate", "/nonexistent/three-tier.toml"]);
    assert_one_line_error(&o, "/nonexistent/three-tier.toml");
}

#[test]
fn graph_dot_renders_with_graphviz() {
    let o = netns_kit(&["graph", &three_tier(), "--format", "dot"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dot_text = stdout(&o);
    for needle in [
        "gateway",
        "172.20.0.10",
        "router",
        "br-frontend",
        "tcp 8500,8001,8002",
        "host",
    ] {
        assert!(dot_text.contains(needle), "missing {needle}");
    }
    let have_dot = Command::new("dot")
        .arg("-V")
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !have_dot {
        assert!(
            std::env::var("ECOMM_REQUIRE_ALL").as_deref() != Ok("1"),
            "graphviz `dot` missing"
        );
        eprintln!("skipping the render: graphviz `dot` is not installed");
        return;
    }
    use std::io::Write;
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot_text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = String::from_utf8_lossy(&out.stdout);
    assert!(
        svg.contains("<svg") && svg.contains("gateway"),
        "no picture"
    );
}

#[test]
fn graph_mermaid_is_a_flowchart_with_policy_edges() {
    let o = netns_kit(&["graph", &three_tier(), "--format", "mermaid"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m = stdout(&o);
    assert!(m.starts_with("flowchart LR"));
    assert!(
        m.contains("net_frontend -.->|\"tcp 8500,8001,8002\"| net_backend"),
        "{m}"
    );
    assert!(m.contains("host -.->|\"tcp 3000\"| node_gateway"), "{m}");
}

#[test]
fn graph_rejects_an_unknown_format() {
    let o = netns_kit(&["graph", &three_tier(), "--format", "png"]);
    assert_one_line_error(&o, "invalid value 'png'");
}

#[test]
fn unknown_flags_and_verbs_are_bad_input() {
    assert_one_line_error(&netns_kit(&["validate", "--bogus", "x"]), "--bogus");
    assert_one_line_error(&netns_kit(&["frobnicate"]), "frobnicate");
    assert_one_line_error(&netns_kit(&["exec", "lab", "gateway"]), "<COMMAND>");
}

#[test]
fn help_explains_with_examples() {
    let o = netns_kit(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let h = stdout(&o);
    for verb in [
        "apply", "destroy", "status", "exec", "gc", "graph", "list", "validate",
    ] {
        assert!(h.contains(verb), "help lacks {verb}");
    }
    assert!(
        h.contains("Examples:") && h.contains("netns-kit exec lab gateway --"),
        "{h}"
    );
}

#[test]
fn plan_prints_the_resolved_plan_and_the_router_table() {
    let o = netns_kit(&["plan", &three_tier(), "--name", "lab"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["topology"], "three-tier");
    assert_eq!(plan["namespaces"][2]["name"], "lab-gateway");
    assert_eq!(plan["host_link"]["host_routes"][0]["dest"], "172.20.0.0/24");

    let o = netns_kit(&["plan", &three_tier(), "--anonymous"]);
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        plan["host_link"].is_null(),
        "test runs never touch the host"
    );

    let o = netns_kit(&["plan", &three_tier(), "--nft", "router"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(doc["nftables"].as_array().unwrap().len() > 5);

    assert_one_line_error(
        &netns_kit(&["plan", &three_tier(), "--nft", "gateway"]),
        "no firewall",
    );
    assert_one_line_error(
        &netns_kit(&["plan", &three_tier(), "--name", "bad/name"]),
        "bad/name",
    );
}
