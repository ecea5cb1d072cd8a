//! `nix flake check` cannot run on machines without a Nix binary cache (no nixpkgs to fetch),
//! so this proves the closest real thing: flake.nix parses (`nix-instantiate --parse`), and
//! the NixOS check's `testScript` — every `machine.succeed`/`machine.fail` line, verbatim,
//! with `${./path}` resolved in the repository — passes against the real netns-kit binary.
//!
//! The script applies the shipped three-tier file, whose `[host]` section adds a link in the
//! root namespace; here the whole script runs under `unshare --net`, so that "host" is a
//! throwaway namespace and the real host is never touched. Needs root and nix-instantiate;
//! skips without them unless ECOMM_REQUIRE_ALL=1.
//!
//! It is about this repository's flake, not about netns-kit, so it lives here rather than in
//! netns-kit's packaged tests; the binary is `$NETNS_KIT_BIN` or built with cargo.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the assertion

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtests sits in the workspace root")
        .to_path_buf()
}

/// The netns-kit binary: `$NETNS_KIT_BIN`, else `cargo build -p netns-kit --bin netns-kit`.
fn netns_kit_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NETNS_KIT_BIN") {
        return PathBuf::from(p);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "netns-kit", "--bin", "netns-kit"])
        .arg("--manifest-path")
        .arg(repo_root().join("Cargo.toml"))
        .arg("--message-format=json");
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "cargo build -p netns-kit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "netns-kit")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo built the netns-kit executable")
}

fn capable() -> bool {
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(0);
    let root = caps & (1 << 12) != 0 && caps & (1 << 21) != 0;
    let nix = Command::new("nix-instantiate")
        .arg("--version")
        .output()
        .is_ok();
    if !(root && nix) {
        assert!(
            std::env::var("ECOMM_REQUIRE_ALL").as_deref() != Ok("1"),
            "ECOMM_REQUIRE_ALL=1 but this test needs root and nix-instantiate (apt-get install nix-bin)"
        );
        eprintln!("skipping: needs root and nix-instantiate");
    }
    root && nix
}

/// The NixOS test script's body: the lines between `testScript = ''` and the closing `'';`.
fn test_script(flake: &str) -> Vec<String> {
    flake
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("testScript = ''"))
        .skip(1)
        .take_while(|l| l.trim() != "'';")
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// `${name}` where flake.nix binds `name = ./some/path;` becomes `${./some/path}`.
fn with_path_bindings(line: &str, flake: &str) -> String {
    let mut out = line.to_owned();
    for l in flake.lines() {
        let Some((name, value)) = l.trim().split_once(" = ") else {
            continue;
        };
        let Some(path) = value.strip_suffix(';').filter(|v| v.starts_with("./")) else {
            continue;
        };
        if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            out = out.replace(&format!("${{{name}}}"), &format!("${{{path}}}"));
        }
    }
    out
}

/// One script line as a POSIX shell statement, or `None` for lines that only make sense in a
/// VM (waiting for systemd units).
fn to_shell(line: &str, root: &Path) -> Option<String> {
    let call = |prefix: &str| {
        line.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("\")"))
            .map(|cmd| resolve_paths(cmd, root))
    };
    if line.starts_with("machine.wait_for_unit(") {
        return None;
    }
    if let Some(cmd) = call("machine.succeed(\"") {
        return Some(format!(
            "{cmd} || {{ echo 'machine.succeed failed: {cmd}' >&2; exit 1; }}"
        ));
    }
    if let Some(cmd) = call("machine.fail(\"") {
        return Some(format!(
            "if {cmd}; then echo 'machine.fail succeeded: {cmd}' >&2; exit 1; fi"
        ));
    }
    panic!("flake.nix testScript line this test does not understand: {line}");
}

/// `${./some/path}` (a store path in Nix) becomes the file in the repository.
fn resolve_paths(cmd: &str, root: &Path) -> String {
    let mut out = String::new();
    let mut rest = cmd;
    while let Some(start) = rest.find("${./") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 4..];
        let end = after.find('}').expect("closing brace of ${./...}");
        let path = root.join(&after[..end]);
        assert!(
            path.exists(),
            "flake.nix refers to a missing file: {path:?}"
        );
        out.push_str(&path.display().to_string());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn flake_nix_parses_and_its_lab_check_script_passes() {
    if !capable() {
        return;
    }
    let root = repo_root();
    let flake_path = root.join("flake.nix");
    let parsed = Command::new("nix-instantiate")
        .arg("--parse")
        .arg(&flake_path)
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "nix-instantiate --parse flake.nix: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );

    let flake = std::fs::read_to_string(&flake_path).unwrap();
    assert!(flake.contains("cargoLock.lockFile = ./Cargo.lock"));
    assert!(root.join("Cargo.lock").exists());
    let lines: Vec<String> = test_script(&flake)
        .iter()
        .map(|l| with_path_bindings(l, &flake))
        .collect();
    let statements: Vec<String> = lines.iter().filter_map(|l| to_shell(l, &root)).collect();
    assert!(
        statements.len() >= 4,
        "the lab check applies, execs, destroys and checks: {lines:?}"
    );

    let bin = netns_kit_binary();
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let state = std::env::temp_dir().join(format!("netns-kit-nixcheck-{}", std::process::id()));
    let out = Command::new("unshare")
        .args(["--net", "--", "sh", "-e", "-c"])
        .arg(statements.join("\n"))
        .env("PATH", path)
        .env("NETNS_KIT_STATE_DIR", &state)
        .output()
        .unwrap();
    if !out.status.success() {
        // Best effort, so a failed run leaves nothing behind for the next one.
        let _ = Command::new(&bin)
            .args(["destroy", "nixcheck"])
            .env("NETNS_KIT_STATE_DIR", &state)
            .output();
    }
    assert!(
        out.status.success(),
        "flake.nix lab testScript failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    let _ = std::fs::remove_dir_all(&state);
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&namespaces.stdout).contains("nixcheck"),
        "the script's topology is gone"
    );
}
