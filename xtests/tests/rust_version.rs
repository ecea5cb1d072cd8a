//! The workspace's `rust-version` is exactly what its locked dependencies need: the highest
//! `rust-version` any package in Cargo.lock declares. Lower, and a user on that rustc fails at
//! the first crate that checks it; higher, and we turn away compilers that would work.

use std::path::Path;
use std::process::Command;

/// A `major.minor[.patch]` version, compared numerically.
fn parse(v: &str) -> Result<(u64, u64, u64), String> {
    let mut parts = v.split('.').map(|p| {
        p.parse::<u64>()
            .map_err(|e| format!("{v:?}: {p:?} is not a number: {e}"))
    });
    let major = parts.next().ok_or(format!("{v:?}: empty"))??;
    let minor = parts.next().transpose()?.unwrap_or(0);
    let patch = parts.next().transpose()?.unwrap_or(0);
    Ok((major, minor, patch))
}

#[test]
fn workspace_rust_version_is_the_highest_one_the_lock_declares() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Only the packages built for this host are on disk after a build: `--offline` without
    // a platform filter would need every target's dependencies (android_system_properties,
    // windows-sys, ...) downloaded. The crates are Linux-only, so the host's tree is the one
    // whose rust-version matters.
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let vv = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let vv = String::from_utf8_lossy(&vv.stdout);
    let host = vv
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host triple");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", host])
        .current_dir(&root)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();

    let mut needed = ((0, 0, 0), String::new());
    let mut declared = Vec::new();
    for p in packages {
        let Some(rv) = p["rust_version"].as_str() else {
            continue;
        };
        let id = p["id"].as_str().unwrap_or_default();
        let name = format!("{} {}", p["name"], p["version"]);
        let v = parse(rv).unwrap_or_else(|e| panic!("{name}: rust-version {e}"));
        if members.contains(&id) {
            declared.push((name, v));
        } else if v > needed.0 {
            needed = (v, name);
        }
    }
    assert!(
        packages.len() > 100,
        "the lock resolves the whole tree ({} packages)",
        packages.len()
    );
    assert_eq!(
        declared.len(),
        members.len(),
        "every member inherits rust-version"
    );
    let (need, by) = needed;
    for (member, v) in declared {
        assert_eq!(
            (v.0, v.1),
            (need.0, need.1),
            "{member} declares rust-version {}.{}, the lock needs {}.{} ({by}); set \
             [workspace.package] rust-version to it",
            v.0,
            v.1,
            need.0,
            need.1
        );
    }
}
