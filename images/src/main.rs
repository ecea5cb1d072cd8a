//! `images lock` re-resolves `images.lock` and prints what changed;
//! `images build` builds every image and prints `IMAGE <name> sha256:<hex> <size>` lines.

use std::process::ExitCode;

use images::lock::{self, Lock};
use images::{resolve, roles, Error, Result};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("images: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("lock") => relock(),
        _ => Err(Error::Usage(format!(
            "unknown command {:?}: expected `lock` or `build`",
            args.first()
        ))),
    }
}

/// Re-resolves the closure from the apt lists and prints the changes against the old lock.
fn relock() -> Result<()> {
    let path = lock::default_path();
    let old = if path.exists() {
        Some(Lock::read(&path)?)
    } else {
        None
    };
    let new = resolve::resolve(roles::ROOTS)?;
    match &old {
        None => print!("new lock:\n{}", new.summary()),
        Some(old) => {
            let changes = new.diff(old);
            if changes.is_empty() {
                println!(
                    "images.lock: no changes ({} packages + kernel)",
                    new.package.len()
                );
            }
            for c in changes {
                println!("{c}");
            }
        }
    }
    new.write(&path)
}
