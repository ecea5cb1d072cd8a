//! Pinned, content-addressed images, in the manner of Nix and nixpkgs' `dockerTools`:
//! every input is a Debian package pinned by SHA-256 in `images.lock`, fetched and verified
//! before it is unpacked, and each role's root filesystem is the closure of what it runs
//! (its binaries, their `DT_NEEDED` libraries resolved inside the unpacked packages, its data
//! files), written deterministically and named by its content hash.
//!
//! | stage | module |
//! | --- | --- |
//! | lock: resolve the closure once | [`resolve`], [`lock`] |
//! | fetch by hash, cache, unpack | [`fetch`] |
//! | closures per role | [`elf`], [`rootfs`], [`roles`], [`icu`] (ICU data cut to what PostgreSQL loads), [`stub`] |
//! | outputs named by content | [`tar`], [`cpio`], [`erofs`], [`docker`], [`build`] |

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod build;
pub mod cpio;
pub mod docker;
pub mod elf;
pub mod erofs;
pub mod error;
pub mod fetch;
pub mod icu;
pub mod lock;
pub mod resolve;
pub mod roles;
pub mod rootfs;
pub mod stub;
pub mod tar;

pub use error::{Error, Result};

use std::path::{Path, PathBuf};

/// The workspace root (this crate's parent directory).
pub fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Whether a missing capability must fail instead of skip (`ECOMM_REQUIRE_ALL=1`).
pub fn require_all() -> bool {
    std::env::var("ECOMM_REQUIRE_ALL").is_ok_and(|v| v == "1")
}
