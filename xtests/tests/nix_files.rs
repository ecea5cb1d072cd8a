//! Every `.nix` file in the repository parses (`nix-instantiate --parse`). No nixpkgs and no
//! binary cache are reachable here, so this is the part of the Nix side that can be checked on
//! any machine: a syntax error in `flake.nix` or `nix/` fails `just test`, not the first
//! `nix flake check` someone runs elsewhere.
//!
//! `nix-instantiate` comes from Debian's `nix-bin` (scripts/setup.sh). Without it the test says
//! so and passes, unless `ECOMM_REQUIRE_ALL=1`, where a missing binary is a failure.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `--store dummy://`: parsing needs no store. Without it, a non-root user's nix-instantiate
/// tries the daemon socket and fails before reading the file.
const NIX_INSTANTIATE: &str = "nix-instantiate";
const STORE: [&str; 2] = ["--store", "dummy://"];

/// Directories that hold build output or VCS data, never sources: not walked.
const SKIP_DIRS: [&str; 2] = ["target", ".git"];

/// Every `*.nix` regular file under `dir`. Symlinks are not followed (a `result` link
/// from `nix build` points into the store).
fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("read an entry of {}: {e}", dir.display()));
        let path = entry.path();
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| panic!("file type of {}: {e}", path.display()));
        if kind.is_dir() {
            let skipped = entry
                .file_name()
                .to_str()
                .is_some_and(|n| SKIP_DIRS.contains(&n));
            if !skipped {
                nix_files(&path, out);
            }
        } else if kind.is_file() && path.extension().is_some_and(|x| x == "nix") {
            out.push(path);
        }
    }
}

/// True when nix-instantiate runs. Otherwise says why the test is skipped and returns false,
/// except with `ECOMM_REQUIRE_ALL=1`, where it panics.
fn nix_instantiate_present() -> bool {
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
        panic!("the .nix parse check needs nix-instantiate (nix-bin, just setup): {missing}, and ECOMM_REQUIRE_ALL=1 is set");
    }
    eprintln!(
        "skipped: the .nix parse check needs nix-instantiate (nix-bin, just setup): {missing}"
    );
    false
}

#[test]
fn every_nix_file_parses() {
    if !nix_instantiate_present() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtests sits in the workspace root")
        .to_path_buf();
    let mut files = Vec::new();
    nix_files(&root, &mut files);
    files.sort();
    assert!(
        files.contains(&root.join("flake.nix")),
        "the walk from {} found flake.nix (found: {files:?})",
        root.display()
    );

    let mut failures = Vec::new();
    for file in &files {
        let out = Command::new(NIX_INSTANTIATE)
            .args(STORE)
            .arg("--parse")
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("run {NIX_INSTANTIATE} --parse {}: {e}", file.display()));
        if !out.status.success() {
            let rel = file.strip_prefix(&root).unwrap_or(file);
            failures.push(format!(
                "{} ({}):\n{}",
                rel.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} .nix files do not parse:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
    eprintln!("{} .nix files parse", files.len());
}
