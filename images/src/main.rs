//! `images lock` re-resolves `images.lock` and prints what changed;
//! `images build --ecomm PATH [--tags] [ROLE…]` builds the images (all roles when none is
//! named) and prints `IMAGE <name> sha256:<hex> <size>` lines; with `--tags` each line is
//! followed by `PATH <name> <file> <repo:tag>` (for scripts/docker-images.sh);
//! `images bench --ecomm PATH [--json FILE] [ROLE…]` builds them twice into a fresh cache
//! (cold, with downloads; then cached) and prints the times and each size against its goal,
//! also as JSON in FILE.

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
        Some("bench") => bench(&args[1..]),
        _ => Err(Error::Usage(format!(
            "unknown command {:?}: expected `lock`, `build` or `bench`",
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
    let (ecomm, tags, only) = parse_build(args)?;
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

/// The size goals of issue 10, in bytes (decimal megabytes).
const GOALS: &[(&str, u64)] = &[
    ("ecomm-services", 20_000_000),
    ("ecomm-postgres", 60_000_000),
    ("ecomm-redis", 15_000_000),
];

/// A cold build (an empty cache, downloads included) then a cached one into the same cache;
/// prints the IMAGE lines, both times and each size against its goal.
fn bench(args: &[String]) -> Result<()> {
    let mut rest = Vec::new();
    let mut json = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--json" {
            json = Some(PathBuf::from(
                it.next()
                    .ok_or_else(|| Error::Usage("--json needs a FILE".into()))?,
            ));
        } else {
            rest.push(a.clone());
        }
    }
    let (ecomm, _, only) = parse_build(&rest)?;
    let lock = Lock::read(&lock::default_path())?;
    let dir = std::env::temp_dir().join(format!("images-bench-{}", std::process::id()));
    let cache = Cache {
        debs: dir.join("debs"),
        work: dir.clone(),
    };
    let fetcher = Fetcher::from_host();
    let mut times = Vec::new();
    let mut built = Vec::new();
    for _ in ["cold", "cached"] {
        let start = std::time::Instant::now();
        let inputs = Inputs::from_workspace(&ecomm, &cache)?;
        built = images::build::build(&lock, &cache, &fetcher, &inputs, &only)?;
        times.push(start.elapsed().as_secs_f64());
    }
    let fetched = std::fs::read_dir(&cache.debs)
        .map(|d| d.count())
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    for b in &built {
        println!("{}", b.line());
    }
    println!(
        "BENCH images cold {:.1} s (empty cache, {fetched} .debs downloaded)",
        times[0]
    );
    println!("BENCH images cached {:.2} s", times[1]);
    let mut outputs = Vec::new();
    for b in &built {
        let goal = GOALS.iter().find(|(n, _)| *n == b.name).map(|(_, g)| *g);
        if let Some(goal) = goal {
            let verdict = if b.size <= goal { "meets" } else { "MISSES" };
            println!(
                "BENCH size {} {:.1} MB ({verdict} the {} MB goal)",
                b.name,
                b.size as f64 / 1e6,
                goal / 1_000_000
            );
        }
        outputs.push(serde_json::json!({
            "name": b.name,
            "sha256": b.sha256,
            "bytes": b.size,
            "goal_bytes": goal,
        }));
    }
    if let Some(path) = json {
        let doc = serde_json::json!({
            "cold_seconds": times[0],
            "cached_seconds": times[1],
            "debs_downloaded": fetched,
            "images": outputs,
        });
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| Error::Usage(format!("render {}: {e}", path.display())))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("create dir", dir))?;
        }
        std::fs::write(&path, text + "\n").map_err(Error::io("write", &path))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn parse_build(args: &[String]) -> Result<(PathBuf, bool, Vec<String>)> {
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
    Ok((ecomm, tags, only))
}
