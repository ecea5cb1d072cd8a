//! The committed Docker files are exactly what `lab compose` / `lab swarm` generate from the
//! declaration, so they cannot drift from it (no Docker needed).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn lab(verb: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lab"))
        .arg(verb)
        .arg(workspace().join("ecomm-services/deploy/three-tier.toml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn committed(file: &str) -> String {
    std::fs::read_to_string(workspace().join("ecomm-services/deploy/docker").join(file)).unwrap()
}

#[test]
fn compose_yml_is_what_lab_compose_prints() {
    assert!(
        committed("compose.yml") == lab("compose"),
        "ecomm-services/deploy/docker/compose.yml differs from the declaration: run\n  lab compose > ecomm-services/deploy/docker/compose.yml"
    );
}

#[test]
fn swarm_stack_yml_is_what_lab_swarm_prints() {
    assert!(
        committed("swarm-stack.yml") == lab("swarm"),
        "ecomm-services/deploy/docker/swarm-stack.yml differs from the declaration: run\n  lab swarm > ecomm-services/deploy/docker/swarm-stack.yml"
    );
}

#[test]
fn the_generated_files_carry_the_declared_values() {
    let t = netns_kit::topology::Topology::from_path(
        workspace().join("ecomm-services/deploy/three-tier.toml"),
    )
    .unwrap();
    let compose = lab("compose");
    // One container per declared node, at its declared address, running its declared command.
    for s in &t.services {
        for i in &s.instances {
            assert!(
                compose.contains(&format!("\n  {}:\n", i.node)),
                "{}",
                i.node
            );
            let net = &t.node(&i.node).unwrap().interfaces[0].network;
            assert!(
                compose.contains(&format!("      {net}: {{ ipv4_address: {} }}\n", i.address)),
                "{}",
                i.node
            );
        }
    }
    let product_db = &t.service("product").unwrap().data["database"];
    assert!(compose.contains(&format!("/{product_db}\"")));
    // The router holds its declared address on every tier.
    for i in &t.router.as_ref().unwrap().interfaces {
        assert!(compose.contains(&format!(
            "      {}: {{ ipv4_address: {} }}\n",
            i.network, i.address
        )));
    }
    for n in &t.networks {
        assert!(
            compose.contains(&format!("- subnet: {}", n.subnet)),
            "{}",
            n.name
        );
    }
    // The gateway has no leg on the database tier; product and order do.
    let swarm = lab("swarm");
    assert!(swarm.contains("    networks: [frontend, backend]\n"));
    assert_eq!(
        swarm.matches("    networks: [backend, database]\n").count(),
        2
    );
    let products = t.service("product").unwrap().instances.len();
    assert!(swarm.contains(&format!("replicas: {products}")));
}

#[test]
fn the_compose_file_follows_another_shape_without_a_code_change() {
    let wide = workspace().join("ecomm-services/deploy/three-tier-wide.toml");
    let t = netns_kit::topology::Topology::from_path(&wide).unwrap();
    let compose = xtests::docker::generate::compose(&t).unwrap();
    let nodes: Vec<String> = xtests::docker::generate::start_order(&t)
        .unwrap()
        .into_iter()
        .map(|(node, _)| node)
        .collect();
    for s in &t.services {
        for i in &s.instances {
            assert!(nodes.contains(&i.node), "{} is not started", i.node);
            assert!(
                compose.contains(&format!("\n  {}:\n", i.node)),
                "{}",
                i.node
            );
        }
    }
    // Start order follows the declared dependencies: every dependency's nodes come first.
    for s in &t.services {
        for i in &s.instances {
            let at = nodes.iter().position(|n| *n == i.node).unwrap();
            for d in &s.depends_on {
                for di in &t.service(d).unwrap().instances {
                    let dep_at = nodes.iter().position(|n| *n == di.node).unwrap();
                    assert!(
                        dep_at < at,
                        "{} starts before its dependency {}",
                        i.node,
                        di.node
                    );
                }
            }
        }
    }
}

#[test]
fn a_declared_address_on_dockers_bridge_address_is_refused_naming_the_network() {
    let file = workspace().join("ecomm-services/deploy/three-tier.toml");
    let t = netns_kit::topology::Topology::from_path(&file).unwrap();
    let gateway = t.node("gateway").unwrap().interfaces[0].clone();
    let net = t.network(&gateway.network).unwrap();
    let bridge = xtests::docker::generate::bridge_address(&t, net).unwrap();
    // The same declaration with the gateway moved onto the address Docker's bridge takes.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(&gateway.address.to_string(), &bridge.to_string());
    let moved = netns_kit::topology::Topology::from_str(&text).unwrap();
    let err = xtests::docker::generate::compose(&moved)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("network {}", net.name)) && err.contains(&bridge.to_string()),
        "{err}"
    );
}
