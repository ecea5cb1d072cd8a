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

/// Whether `role`'s image is a block image (EROFS on a virtio-blk drive, [`drives`]) rather
/// than a cpio appended to the initramfs ([`initrd`]).
pub fn is_block(role: &str) -> bool {
    images::roles::ROLES
        .iter()
        .any(|r| r.name == role && r.output == images::roles::Output::VmBlock)
}

/// The drives of a block-image root: `role`'s EROFS image and a layer with `binaries`
/// (guest path, host file; debug info stripped, libraries resolved in the locked packages)
/// and `dirs` (guest path, host directory: copied as they are, owners included), also
/// EROFS, both named by content. Returns them lowest first and their `IMAGE` lines.
pub fn drives(
    role: &str,
    binaries: &[(&str, &Path)],
    dirs: &[(&str, &Path)],
) -> Result<(Vec<PathBuf>, Vec<String>)> {
    drives_in(&images::fetch::Cache::from_env(), role, binaries, dirs)
}

/// [`drives`] with the image builder's cache given.
pub fn drives_in(
    cache: &images::fetch::Cache,
    role: &str,
    binaries: &[(&str, &Path)],
    dirs: &[(&str, &Path)],
) -> Result<(Vec<PathBuf>, Vec<String>)> {
    if !is_block(role) {
        return Err(Error::Spec(format!(
            "role `{role}` builds a cpio image (see `initrd`), expected a block-image role"
        )));
    }
    let base = base_image(cache, role)?;
    let mut extra = images::rootfs::Tree::new();
    for (guest, host) in dirs {
        extra.add_host_dir(host, guest)?;
    }
    let layer = layer(cache, role, binaries, &extra)?;
    Ok((
        vec![base.path.clone(), layer.path.clone()],
        vec![base.line(), layer.line()],
    ))
}

/// The run's layer for `role`: `binaries` stripped of debug info, with their libraries.
fn layer(
    cache: &images::fetch::Cache,
    role: &str,
    binaries: &[(&str, &Path)],
    extra: &images::rootfs::Tree,
) -> Result<images::build::Built> {
    let lock = images::lock::Lock::read(&images::lock::default_path())?;
    let fetcher = images::fetch::Fetcher::from_host();
    let mut files = Vec::new();
    for (dest, host) in binaries {
        // Debug info is most of a debug build's bytes and the guest reads them at boot:
        // the layer carries the binaries stripped of it.
        let bytes = fs::read(host).map_err(Error::io("read binary for the layer", *host))?;
        let bytes = if bytes.starts_with(b"\x7fELF") {
            images::roles::strip_debug(host, cache)?
        } else {
            bytes
        };
        files.push((*dest, bytes));
    }
    Ok(images::build::layer(
        &lock, cache, &fetcher, role, &files, extra,
    )?)
}

/// [`initrd`] with the image builder's cache and the output directory given.
pub fn initrd_in(
    cache: &images::fetch::Cache,
    out: &Path,
    role: &str,
    initramfs: &Path,
    binaries: &[(&str, &Path)],
) -> Result<(PathBuf, Vec<String>)> {
    if is_block(role) {
        return Err(Error::Spec(format!(
            "role `{role}` builds a block image (see `drives`), expected a cpio-image role"
        )));
    }
    let base = base_image(cache, role)?;
    let layer = layer(cache, role, binaries, &images::rootfs::Tree::new())?;
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

/// A PostgreSQL cluster made by the stack image's own initdb ([`Stack::initdb_command`]),
/// run on the host in a chroot of the image's tree (initdb takes a minute under a loaded
/// TCG guest, seconds natively): the same locked binaries, so the same cluster the guest
/// would make. Cached per image (`<vm-cache>/pg-template-<16 hex of the image's SHA-256>`).
/// Needs root (chroot, and the files owned by [`Stack::pg_user`]).
pub fn pg_template() -> Result<PathBuf> {
    let cache = images::fetch::Cache::from_env();
    let image = stack_image()?;
    let dir = cache_root().join(format!("pg-template-{}", &image.sha256[..16]));
    if dir.join("PG_VERSION").exists() {
        return Ok(dir);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::Missing(
            "the PostgreSQL template is made in a chroot: run as root".into(),
        ));
    }
    let lock = images::lock::Lock::read(&images::lock::default_path())?;
    let tree = images::build::tree(
        &lock,
        &cache,
        &images::fetch::Fetcher::from_host(),
        &images::roles::Inputs::default(),
        STACK_ROLE,
    )?;
    let root = cache_root().join(format!(".stack-root-{}", images::fetch::unique()));
    let made = (|| {
        tree.write_dir(&root)?;
        // The applet links init makes at boot, and the /dev/null initdb redirects to.
        let inside = "/pg-template";
        let script = format!(
            "/bin/busybox --install -s /bin && /bin/busybox mknod -m 666 /dev/null c 1 3 && {}",
            STACK.initdb_command(inside)
        );
        let out = std::process::Command::new("chroot")
            .arg(&root)
            .args(["/bin/sh", "-c", &script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .map_err(|e| Error::Tool {
                tool: "chroot".into(),
                detail: format!("spawn: {e}"),
            })?;
        if !out.status.success() {
            return Err(Error::Tool {
                tool: format!("chroot {} sh -c {script:?}", root.display()),
                detail: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        let tmp = cache_root().join(format!(".pg-template-{}", images::fetch::unique()));
        fs::rename(root.join(inside.trim_start_matches('/')), &tmp)
            .map_err(Error::io("move the template out of the chroot", &tmp))?;
        if fs::rename(&tmp, &dir).is_err() {
            // Made meanwhile by another process: keep that one.
            let _ = fs::remove_dir_all(&tmp);
        }
        Ok(dir.clone())
    })();
    let _ = fs::remove_dir_all(&root);
    made
}
