//! `lab layout --json` prints the declaration resolved — hosts, nodes, services, overlay — as
//! stable JSON, with no state directory and no privileges: a pure function of the file.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn shared_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ecomm-services/deploy/three-tier.toml")
}

/// Runs `lab layout --json <file>` in a fresh empty directory (so nothing can be written to it
/// unnoticed); returns the output and that directory.
fn layout(file: &Path, tag: &str) -> (Output, PathBuf) {
    let cwd = std::env::temp_dir().join(format!("lab-layout-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cwd);
    std::fs::create_dir_all(&cwd).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lab"))
        .current_dir(&cwd)
        .env_remove("ECOMM_LAB_DIR")
        .args(["layout", "--json"])
        .arg(file)
        .output()
        .unwrap();
    (out, cwd)
}

#[test]
fn the_three_tier_layout_resolves_hosts_services_and_overlay() {
    let (out, cwd) = layout(&shared_file(), "resolve");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "layout writes nothing (no .lab state directory)"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // What the placeholders must resolve to, read from the declaration itself.
    let t = netns_kit::topology::Topology::from_path(shared_file()).unwrap();
    let at = |node: &str| t.node(node).unwrap().interfaces[0].address.to_string();
    let listen = |service: &str, node: &str| {
        t.service(service)
            .unwrap()
            .listen(node)
            .unwrap()
            .to_string()
    };

    assert_eq!(
        v["hosts"]["vm3"]["nodes"],
        serde_json::json!(["product-2", "order-2"])
    );
    assert_eq!(v["nodes"]["product-2"]["host"], "vm3");
    assert_eq!(
        v["nodes"]["product-2"]["addresses"]["backend"],
        at("product-2").as_str()
    );
    assert_eq!(v["nodes"]["router"]["router"], true);

    let product = &v["services"]["product"];
    assert_eq!(product["data"]["database"], "products");
    assert_eq!(
        product["depends_on"],
        serde_json::json!(["postgres", "redis", "registry"])
    );
    let cmd: Vec<&str> = product["instances"]["product-2"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        cmd,
        [
            "ecomm".to_string(),
            "product".into(),
            "--listen".into(),
            listen("product", "product-2"),
            "--instance-id".into(),
            "product-2".into(),
            "--database-url".into(),
            format!(
                "postgres://${{db_auth}}@{}/products",
                listen("postgres", "postgres")
            ),
            "--redis-url".into(),
            format!("redis://{}/0", listen("redis", "redis")),
            "--registry-url".into(),
            format!("http://{}", listen("registry", "registry")),
            "--registry-token".into(),
            "${registry_token}".into(),
        ]
    );
    assert_eq!(
        at("product-2"),
        listen("product", "product-2").split(':').next().unwrap()
    );
    assert_eq!(
        v["services"]["registry"]["ports"]["dns"], 8600,
        "the registry's DNS port is declared with it"
    );
    assert_eq!(v["services"]["gateway"]["ready"]["path"], "/readyz");

    let overlay = v["overlay"].as_array().unwrap();
    assert_eq!(overlay.len(), 1, "only the backend spans hosts");
    assert_eq!(overlay[0]["network"], "backend");
    assert_eq!(overlay[0]["name"], "vx-backend");
    assert_eq!(overlay[0]["vni"], 100);
    assert_eq!(overlay[0]["group"], "239.1.1.100");
    assert_eq!(
        overlay[0]["hosts"],
        serde_json::json!(["vm1", "vm2", "vm3"])
    );
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
fn the_layout_is_byte_for_byte_stable_with_sorted_keys() {
    let (a, cwd_a) = layout(&shared_file(), "a");
    let (b, cwd_b) = layout(&shared_file(), "b");
    assert_eq!(a.stdout, b.stdout);
    let text = String::from_utf8(a.stdout).unwrap();
    let top: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  \"") && !l.starts_with("   "))
        .map(|l| l.trim().split('"').nth(1).unwrap())
        .collect();
    assert_eq!(
        top,
        ["hosts", "name", "networks", "nodes", "overlay", "services", "vars"]
    );
    let _ = std::fs::remove_dir_all(&cwd_a);
    let _ = std::fs::remove_dir_all(&cwd_b);
}

#[test]
fn a_bad_declaration_exits_2_naming_the_field() {
    let text = std::fs::read_to_string(shared_file()).unwrap().replace(
        "depends_on = [\"registry\", \"product\", \"order\"]",
        "depends_on = [\"regisrty\"]",
    );
    let file = std::env::temp_dir().join(format!("lab-layout-bad-{}.toml", std::process::id()));
    std::fs::write(&file, text).unwrap();
    let (out, cwd) = layout(&file, "bad");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("services[5].depends_on[0]: unknown service \"regisrty\""),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir_all(&cwd);
}
