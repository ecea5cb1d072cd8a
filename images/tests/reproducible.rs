//! Building every image twice, from two empty assembly caches (side by side), gives
//! identical outputs.
//!
//! The two builds share one download cache (`<workspace>/target/image-cache/debs`, or
//! `$ECOMM_IMAGE_DEBS`): `.deb` files are reused by their verified SHA-256 only, so sharing
//! them cannot make the outputs agree by accident, while everything derived from them
//! (unpacked trees, closures, archives) is built from nothing in each of the two caches.
//! The `ecomm` input is this crate's own `images` binary (a real dynamically linked ELF;
//! the image builder treats every workspace binary the same way).
//! Skips when the packages cannot be fetched here, unless ECOMM_REQUIRE_ALL=1.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use images::build::{build, Built};
use images::fetch::{Cache, Fetcher};
use images::lock::{self, Lock};
use images::roles::{Inputs, ROLES};

fn cache(tag: &str) -> Cache {
    let work = std::env::temp_dir().join(format!("images-repro-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let debs = std::env::var_os("ECOMM_IMAGE_DEBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| images::workspace().join("target/image-cache/debs"));
    Cache { debs, work }
}

fn build_all(cache: &Cache) -> Option<Vec<Built>> {
    let lock = Lock::read(&lock::default_path()).unwrap();
    let inputs = Inputs::from_workspace(env!("CARGO_BIN_EXE_images").as_ref(), cache).unwrap();
    match build(&lock, cache, &Fetcher::from_host(), &inputs, &[]) {
        Ok(b) => Some(b),
        Err(e) if images::require_all() => {
            panic!("ECOMM_REQUIRE_ALL=1 but the images cannot be built: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

#[test]
fn two_builds_from_empty_caches_print_identical_lines_and_write_identical_bytes() {
    let (a, b) = (cache("a"), cache("b"));
    // The two builds run side by side (each is mostly one core's unpacking and hashing):
    // they share nothing but the verified `.deb`s, whose fetches write beside and rename.
    let (first, second) = std::thread::scope(|s| {
        let second = s.spawn(|| build_all(&b));
        (build_all(&a), second.join().unwrap())
    });
    let Some(first) = first else { return };
    let second = second.unwrap();
    let lines = |v: &[Built]| v.iter().map(Built::line).collect::<Vec<_>>();
    assert_eq!(lines(&first), lines(&second));
    assert_eq!(first.len(), ROLES.len(), "one output per role");
    for (x, y) in first.iter().zip(&second) {
        assert_ne!(x.path, y.path, "each build wrote into its own cache");
        assert_eq!(
            std::fs::read(&x.path).unwrap(),
            std::fs::read(&y.path).unwrap(),
            "{}",
            x.name
        );
        assert!(
            x.path.to_string_lossy().contains(&x.sha256[..16]),
            "named by content: {}",
            x.path.display()
        );
        assert_eq!(x.tag, y.tag);
    }
    // A second build into the same cache reuses the outputs (a cached `just images`).
    assert_eq!(lines(&build_all(&a).unwrap()), lines(&first));
    for c in [a, b] {
        std::fs::remove_dir_all(&c.work).unwrap();
    }
}
