//! The pinned guest root: instead of the host's `/` over 9p, the guest's root is the
//! `vm-base` image built from `images.lock` (busybox, ip, nft and their libraries, all from
//! the locked Debian packages) plus a per-run layer holding the workspace's binaries (the
//! agent first) with their libraries resolved in the same packages. Both are newc cpio
//! archives named by content; they are appended to the initramfs, the kernel unpacks all
//! three into the RAM root, and init execs the agent there (`vm.root=image`): guest writes
//! stay in guest RAM, and nothing of the host is visible.
//!
//! Two base images: `vm-base` (busybox, ip, tc, ss, nft) and the full stack a placement
//! host runs, [`STACK_ROLE`] (the base plus PostgreSQL, Redis, bash, curl, pgrep, their
//! users and a manifest, [`STACK`]); [`crate::ClusterSpec::stack_root`] boots the latter with
//! netns-kit and `ecomm` in the layer at the manifest's paths.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::kernel::cache_root;

/// Where the agent lands in the pinned root.
pub const AGENT: &str = "/usr/local/bin/vm-agent";

pub use images::roles::{Stack, STACK, STACK_ROLE};

/// The small guest base (busybox, ip, tc, ss, nft): the default pinned root.
pub const BASE_ROLE: &str = "vm-base";

/// The pinned initrd for `initramfs` with `binaries` (guest path, host file) in its layer;
/// the agent is one of them, at [`AGENT`]. `role` is the base image ([`BASE_ROLE`] or
/// [`STACK_ROLE`]). Returns the file (named by its content) and the `IMAGE` lines of the
/// base image and the layer.
pub fn initrd(
    role: &str,
    initramfs: &Path,
    binaries: &[(&str, &Path)],
) -> Result<(PathBuf, Vec<String>)> {
    initrd_in(
        &images::fetch::Cache::from_env(),
        &cache_root().join("initramfs"),
        role,
        initramfs,
        binaries,
    )
}

/// The full stack image ([`STACK_ROLE`]) built from `images.lock` (or found in the image
/// cache): its file, SHA-256 and size.
pub fn stack_image() -> Result<images::build::Built> {
    base_image(&images::fetch::Cache::from_env(), STACK_ROLE)
}

fn base_image(cache: &images::fetch::Cache, role: &str) -> Result<images::build::Built> {
    let lock = images::lock::Lock::read(&images::lock::default_path())?;
    images::build::build(
        &lock,
        cache,
        &images::fetch::Fetcher::from_host(),
        &images::roles::Inputs::default(),
        &[role.into()],
    )?
    .into_iter()
    .next()
    .ok_or_else(|| Error::Missing(format!("no {role} image built")))
}

/// [`initrd`] with the image builder's cache and the output directory given.
pub fn initrd_in(
    cache: &images::fetch::Cache,
    out: &Path,
    role: &str,
    initramfs: &Path,
    binaries: &[(&str, &Path)],
) -> Result<(PathBuf, Vec<String>)> {
    let cache = cache.clone();
    let lock = images::lock::Lock::read(&images::lock::default_path())?;
    let fetcher = images::fetch::Fetcher::from_host();
    let base = base_image(&cache, role)?;
    let mut files = Vec::new();
    for (dest, host) in binaries {
        // Debug info is most of a debug build's bytes and the guest unpacks every byte at
        // boot: the layer carries the binaries stripped of it.
        let bytes = fs::read(host).map_err(Error::io("read binary for the layer", *host))?;
        let bytes = if bytes.starts_with(b"\x7fELF") {
            images::roles::strip_debug(host, &cache)?
        } else {
            bytes
        };
        files.push((*dest, bytes));
    }
    let layer = images::build::layer(&lock, &cache, &fetcher, role, &files)?;
    let mut bytes = fs::read(initramfs).map_err(Error::io("read", initramfs))?;
    for part in [&base.path, &layer.path] {
        bytes.extend(fs::read(part).map_err(Error::io("read", part))?);
    }
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = out.to_path_buf();
    fs::create_dir_all(&dir).map_err(Error::io("create cache dir", &dir))?;
    let path = dir.join(format!("pinned-{hex}.cpio"));
    if !path.exists() {
        let tmp = dir.join(format!(".pinned-{hex}.{}", images::fetch::unique()));
        fs::write(&tmp, &bytes).map_err(Error::io("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(Error::io("rename", &path))?;
    }
    Ok((path, vec![base.line(), layer.line()]))
}
