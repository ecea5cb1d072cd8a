//! Reads the guest kernel's pin from the workspace's `images.lock` (`[kernel]`: `name`,
//! `version`, `release`, `sha256`, `pool`, `archive`, `size`, `arch`) into compile-time environment variables, so
//! `src/kernel.rs`'s consts are the lock's values and the lock is the one place they live.

use std::process::ExitCode;

const KEYS: &[(&str, &str)] = &[
    ("name", "VM_KERNEL_PACKAGE"),
    ("version", "VM_KERNEL_VERSION"),
    ("release", "VM_KERNEL_RELEASE"),
    ("sha256", "VM_KERNEL_SHA256"),
    ("pool", "VM_KERNEL_POOL"),
    ("archive", "VM_KERNEL_ARCHIVE"),
    ("size", "VM_KERNEL_SIZE"),
    ("arch", "VM_KERNEL_ARCH"),
];

fn main() -> ExitCode {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../images.lock");
    println!("cargo:rerun-if-changed={path}");
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("vm/build.rs: cannot read {path}: {e} (run `just lock`)");
            return ExitCode::FAILURE;
        }
    };
    // The `[kernel]` table: from its header to the next table header.
    let table = text
        .split_once("\n[kernel]\n")
        .map(|(_, rest)| rest.split("\n[").next().unwrap_or(rest));
    let Some(table) = table else {
        eprintln!("vm/build.rs: {path} has no [kernel] table (run `just lock`)");
        return ExitCode::FAILURE;
    };
    for (key, var) in KEYS {
        let value = table.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == *key).then(|| v.trim().trim_matches('"').to_string())
        });
        let Some(value) = value else {
            eprintln!("vm/build.rs: {path} [kernel] has no `{key}` (run `just lock`)");
            return ExitCode::FAILURE;
        };
        println!("cargo:rustc-env={var}={value}");
    }
    ExitCode::SUCCESS
}
