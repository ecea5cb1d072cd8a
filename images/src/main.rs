//! `images lock` re-resolves `images.lock` and prints what changed;
//! `images build --ecomm PATH [--tags] [ROLE…]` builds the images (all roles when none is
//! named) and prints `IMAGE <name> sha256:<hex> <size>` lines; with `--tags` each line is
//! followed by `PATH <name> <file> <repo:tag>` (for scripts/docker-images.sh).

use std::process::ExitCode;

use std::path::PathBuf;

use images::fetch::{Cache, Fetcher};
use images::lock::{self, Lock};
use images::roles::Inputs;
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
        Some("build") => build(&args[1..]),
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

/// Builds the images and prints one line per output.
fn build(args: &[String]) -> Result<()> {
    let mut ecomm = None;
    let mut tags = false;
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ecomm" => {
                let p = it
                    .next()
                    .ok_or_else(|| Error::Usage("--ecomm needs a PATH".into()))?;
                ecomm = Some(PathBuf::from(p));
            }
            "--tags" => tags = true,
            role => only.push(role.to_string()),
        }
    }
    let ecomm = ecomm
        .ok_or_else(|| Error::Usage("expected --ecomm PATH (the ecomm release binary)".into()))?;
    let lock = Lock::read(&lock::default_path())?;
    let cache = Cache::from_env();
    let inputs = Inputs::from_workspace(&ecomm, &cache)?;
    for built in images::build::build(&lock, &cache, &Fetcher::from_host(), &inputs, &only)? {
        println!("{}", built.line());
        if tags {
            println!(
                "PATH {} {} {}",
                built.name,
                built.path.display(),
                built.tag.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}
