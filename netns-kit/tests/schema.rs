//! The topology file's JSON Schema: the committed netns-kit/schema/topology.schema.json is
//! exactly what `netns-kit schema` prints (regenerate with `netns-kit schema >
//! netns-kit/schema/topology.schema.json`), every topology file shipped in this crate
//! validates against it, names it on its first line (`#:schema`, for editors), and the schema
//! rejects what the parser rejects by shape (unknown keys, wrong types, out-of-range numbers).

use std::path::{Path, PathBuf};
use std::process::Command;

use netns_kit::topology::schema::{json_schema, json_schema_text, SCHEMA_PATH};
use netns_kit::topology::Topology;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn committed() -> String {
    std::fs::read_to_string(crate_dir().join(SCHEMA_PATH)).expect("the committed schema")
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&committed()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// The schema's complaints about TOML text (empty = valid).
fn complaints(v: &jsonschema::Validator, text: &str) -> Vec<String> {
    let doc: serde_json::Value = toml::from_str(text).expect("TOML");
    v.iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Every topology file shipped in the crate: tests/fixtures/*.toml.
fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(crate_dir().join("tests/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "tests/fixtures holds topology files");
    files
}

/// The TOML blocks of spec.rs's documentation and the `r#"…"#` topologies of the examples.
fn embedded_topologies() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let spec = include_str!("../src/topology/spec.rs");
    let doc: Vec<&str> = spec
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(|r| r.strip_prefix(' ').unwrap_or(r))
        .collect();
    let mut block: Option<String> = None;
    for line in doc {
        match (&mut block, line) {
            (None, "```toml") => block = Some(String::new()),
            (Some(b), "```") => {
                out.push((format!("spec.rs block {}", out.len()), std::mem::take(b)));
                block = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    for e in std::fs::read_dir(crate_dir().join("examples")).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("r#\"\n") {
            let body = &rest[start + 4..];
            let Some(end) = body.find("\"#") else { break };
            if body[..end].contains("[[networks]]") {
                out.push((path.display().to_string(), body[..end].to_string()));
            }
            rest = &body[end..];
        }
    }
    out
}

#[test]
fn the_committed_schema_is_what_the_types_generate() {
    assert_eq!(
        committed(),
        json_schema_text(),
        "regenerate: netns-kit schema > netns-kit/{SCHEMA_PATH}"
    );
    assert_eq!(json_schema()["title"], "netns-kit topology file");
}

#[test]
fn netns_kit_schema_prints_the_committed_file() {
    let o = Command::new(env!("CARGO_BIN_EXE_netns-kit"))
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8(o.stdout).unwrap(), committed());
}

#[test]
fn every_shipped_fixture_validates_and_names_the_schema() {
    let v = validator();
    for path in fixtures() {
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(complaints(&v, &text), Vec::<String>::new(), "{path:?}");
        Topology::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let first = text.lines().next().unwrap_or_default();
        let target = first
            .strip_prefix("#:schema ")
            .unwrap_or_else(|| panic!("{path:?}: first line is not `#:schema PATH`: {first:?}"));
        let resolved = path.parent().unwrap().join(target);
        assert_eq!(
            std::fs::canonicalize(&resolved).unwrap(),
            std::fs::canonicalize(crate_dir().join(SCHEMA_PATH)).unwrap(),
            "{path:?}"
        );
    }
}

#[test]
fn every_documented_and_example_topology_validates() {
    let v = validator();
    let embedded = embedded_topologies();
    assert!(
        embedded.len() >= 4,
        "spec.rs blocks and examples: {embedded:?}"
    );
    for (origin, text) in embedded {
        assert_eq!(complaints(&v, &text), Vec::<String>::new(), "{origin}");
        Topology::from_str(&text).unwrap_or_else(|e| panic!("{origin}: {e}"));
    }
}

#[test]
fn the_schema_rejects_what_the_parser_rejects_by_shape() {
    let v = validator();
    let base = "name = \"t\"\n[[networks]]\nname = \"lan\"\nsubnet = \"10.0.0.0/24\"\n";
    assert_eq!(complaints(&v, base), Vec::<String>::new());
    for (bad, why) in [
        ("nmae = \"t\"\n", "a misspelt key"),
        ("name = \"t\"\n[[networks]]\nname = \"lan\"\n", "a network without a subnet"),
        ("name = 7\n", "a name that is not a string"),
        (
            "name = \"t\"\n[[policy]]\nfrom = \"a\"\nto = \"b\"\nproto = \"sctp\"\n",
            "an unknown protocol",
        ),
        (
            "name = \"t\"\n[[policy]]\nfrom = \"a\"\nto = \"b\"\nports = [70000]\n",
            "a port above 65535",
        ),
        (
            "name = \"t\"\n[[vxlans]]\nname = \"vx\"\nnetwork = \"lan\"\nvni = 0\nremote = \"10.0.0.2\"\n",
            "VNI 0",
        ),
    ] {
        assert!(!complaints(&v, bad).is_empty(), "the schema accepts {why}");
        assert!(Topology::from_str(bad).is_err(), "the parser accepts {why}");
    }
}
