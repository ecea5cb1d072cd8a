//! The examples in `examples/` are documentation that runs (`just examples`): each one says
//! what it shows, what it asserts and how to run it, and reads no file — least of all one of
//! another crate — so it works from the published crate alone.

use std::path::PathBuf;

/// A benchmark lives in examples/ too, but is not an example (`just bench-topology`).
const NOT_EXAMPLES: &[&str] = &["bench_topology"];

fn examples() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_string();
            (!NOT_EXAMPLES.contains(&name.as_str()))
                .then(|| (name, std::fs::read_to_string(&p).unwrap()))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn there_is_an_example_per_task() {
    let names: Vec<String> = examples().into_iter().map(|(n, _)| n).collect();
    for task in [
        "quickstart",
        "veth_pair",
        "bridge_ports",
        "vxlan_overlay",
        "firewall_ruleset",
        "netem_delay",
        "probe_matrix",
        "topology_from_str",
    ] {
        assert!(
            names.iter().any(|n| n == task),
            "no example {task}: {names:?}"
        );
    }
}

#[test]
fn every_example_says_what_it_asserts_and_how_to_run_it() {
    for (name, text) in examples() {
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            header.contains("Asserts"),
            "{name}: no `//! Asserts ...` line"
        );
        let run = format!("Run as root: `cargo run -p netns-kit --example {name}`");
        assert!(header.contains(&run), "{name}: the header lacks {run:?}");
    }
}

#[test]
fn no_example_reads_a_file_or_unwraps() {
    for (name, text) in examples() {
        for banned in [
            "from_path(",
            "include_str!",
            "std::fs::",
            "File::open",
            "../",
            "ecomm-services",
            ".unwrap()",
            ".expect(",
        ] {
            assert!(!text.contains(banned), "{name} contains {banned:?}");
        }
    }
}
