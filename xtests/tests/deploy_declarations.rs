//! The application's declarations — every file netns-kit reads in this repository outside
//! netns-kit itself (ecomm-services/deploy/*.toml, nix/fixtures/*.toml, the fuzz seeds) —
//! validate completely and against netns-kit's committed JSON Schema; the environments
//! (ecomm-services/deploy) name that schema on their first line so editors check them as they
//! are typed. And the three-tier placement stretches exactly the networks that span hosts.
//!
//! These tests are about the application, so they live here and not in netns-kit's packaged
//! tests (which carry their own fixtures).

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the assertion

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use netns_kit::topology::Topology;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schema_path() -> PathBuf {
    workspace().join("netns-kit/schema/topology.schema.json")
}

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(workspace().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{dir} holds topology files");
    files
}

fn declarations() -> Vec<PathBuf> {
    [
        "ecomm-services/deploy",
        "nix/fixtures",
        "fuzz/corpus/topology",
    ]
    .iter()
    .flat_map(|d| toml_files(d))
    .collect()
}

#[test]
fn every_declaration_validates_and_matches_the_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for path in declarations() {
        let text = std::fs::read_to_string(&path).unwrap();
        Topology::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let doc: serde_json::Value = toml::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert_eq!(errors, Vec::<String>::new(), "{path:?}");
    }
}

#[test]
fn every_environment_names_the_schema_on_its_first_line() {
    for path in toml_files("ecomm-services/deploy") {
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let target = first
            .strip_prefix("#:schema ")
            .unwrap_or_else(|| panic!("{path:?}: first line is not `#:schema PATH`: {first:?}"));
        assert_eq!(
            std::fs::canonicalize(path.parent().unwrap().join(target)).unwrap(),
            std::fs::canonicalize(schema_path()).unwrap(),
            "{path:?}"
        );
    }
}

#[test]
fn each_placement_stretches_exactly_the_networks_that_span_hosts() {
    for path in toml_files("ecomm-services/deploy") {
        let t = Topology::from_path(&path).unwrap();
        let Some(p) = t.placement.as_ref() else {
            continue;
        };
        // The hosts that carry an interface on each network, from the declaration.
        let spanning: Vec<(String, Vec<String>)> = t
            .networks
            .iter()
            .map(|n| {
                let mut hosts: BTreeSet<String> = BTreeSet::new();
                for node in &t.nodes {
                    if node.interfaces.iter().any(|i| i.network == n.name) {
                        hosts.insert(p.host_of(&node.name).unwrap().to_string());
                    }
                }
                if let Some(r) = &t.router {
                    if r.interfaces.iter().any(|i| i.network == n.name) {
                        hosts.insert(p.host_of(&r.name).unwrap().to_string());
                    }
                }
                (n.name.clone(), hosts.into_iter().collect())
            })
            .filter(|(_, hosts): &(String, Vec<String>)| hosts.len() > 1)
            .collect();
        let overlay: Vec<(String, Vec<String>)> = p
            .overlay
            .iter()
            .map(|o| (o.network.clone(), o.hosts.clone()))
            .collect();
        assert_eq!(overlay, spanning, "{path:?}");
        // Each host's share builds its own nodes and one VXLAN per stretched network it touches.
        for (host, nodes) in &p.hosts {
            let share = t.for_host(host).unwrap();
            for n in &share.nodes {
                assert!(
                    nodes.contains(&n.name),
                    "{path:?}: {host} builds {}",
                    n.name
                );
            }
            let touched = overlay.iter().filter(|(_, h)| h.contains(host)).count();
            assert_eq!(share.vxlans.len(), touched, "{path:?}: {host}");
        }
    }
}

#[test]
fn every_database_is_declared_once_with_the_service_that_owns_it() {
    for path in toml_files("ecomm-services/deploy") {
        let t = Topology::from_path(&path).unwrap();
        let mut seen = BTreeSet::new();
        for s in &t.services {
            if let Some(db) = s.data.get("database") {
                assert!(
                    seen.insert(db.clone()),
                    "{path:?}: database {db:?} declared twice"
                );
            }
        }
        assert!(!seen.is_empty(), "{path:?} declares its databases");
    }
}
