//! The guest kernel: Debian's bookworm kernel package as `images.lock` pins it, fetched and
//! SHA-256-checked by the image builder (`images::fetch`) into its cache under `target/`,
//! unpacked with `dpkg-deb`, and its bzImage's XZ payload
//! decompressed (in Rust, liblzma via `xz2`) into a `vmlinux` that QEMU boots directly
//! through its PVH entry point.
//!
//! Why the generic flavour and not `-cloud-`: the cloud kernel is built without 9p
//! (`# CONFIG_NET_9P is not set`), and the guest root is the host tree over virtio-9p.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The pinned kernel package: `[kernel] name` of the workspace's `images.lock` (read by
/// `vm/build.rs`), the one place the guest kernel's version is recorded; `just lock` moves it.
pub const KERNEL_PACKAGE: &str = env!("VM_KERNEL_PACKAGE");
/// The pinned Debian version of [`KERNEL_PACKAGE`] (`[kernel] version`).
pub const KERNEL_VERSION: &str = env!("VM_KERNEL_VERSION");
/// The kernel release (`uname -r` in the guest); names the package's /lib/modules directory.
pub const KERNEL_RELEASE: &str = env!("VM_KERNEL_RELEASE");
/// SHA-256 of the pinned `.deb` (`[kernel] sha256`); checked before it is unpacked.
pub const KERNEL_SHA256: &str = env!("VM_KERNEL_SHA256");

/// XZ stream magic: the bzImage's compressed payload starts with it.
const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";

/// An unpacked kernel: the bootable vmlinux and the package's module tree.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// Uncompressed ELF kernel with a PVH note, for `-kernel`.
    pub vmlinux: PathBuf,
    /// `lib/modules/<release>/kernel` of the package.
    pub modules: PathBuf,
    /// The cache directory everything lives in.
    pub dir: PathBuf,
}

/// Where the driver caches kernels and initramfs images: `$VM_CACHE_DIR`, else
/// `<workspace>/target/vm-cache`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("VM_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .unwrap_or(manifest)
        .join("target")
        .join("vm-cache")
}

impl Kernel {
    /// Returns the cached kernel, downloading and unpacking it first if needed.
    /// Safe to call from parallel processes: a file lock serialises the fetch.
    pub fn fetch() -> Result<Kernel> {
        let dir = cache_root().join(format!("{KERNEL_PACKAGE}_{KERNEL_VERSION}"));
        fs::create_dir_all(&dir).map_err(Error::io("create cache dir", &dir))?;
        let kernel = Kernel {
            vmlinux: dir.join("vmlinux"),
            modules: dir
                .join("root/lib/modules")
                .join(KERNEL_RELEASE)
                .join("kernel"),
            dir: dir.clone(),
        };
        let ready = dir.join("ready");
        if ready.exists() {
            return Ok(kernel);
        }
        let lock_path = dir.join("lock");
        let lock = fs::File::create(&lock_path).map_err(Error::io("create lock", &lock_path))?;
        // SAFETY: flock on a file descriptor we own for the duration of the call; the
        // lock is released when `lock` is dropped (fd closed).
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
            return Err(Error::io("lock", &lock_path)(
                std::io::Error::last_os_error(),
            ));
        }
        if ready.exists() {
            return Ok(kernel);
        }
        let deb = download()?;
        let root = dir.join("root");
        if root.exists() {
            fs::remove_dir_all(&root).map_err(Error::io("remove stale tree", &root))?;
        }
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
        let bz = root.join("boot").join(format!("vmlinuz-{KERNEL_RELEASE}"));
        extract_vmlinux(&bz, &kernel.vmlinux)?;
        if !kernel.modules.is_dir() {
            return Err(kernel_err(format!(
                "no module tree at {}",
                kernel.modules.display()
            )));
        }
        fs::write(&ready, b"").map_err(Error::io("write", &ready))?;
        Ok(kernel)
    }
}

fn kernel_err(detail: String) -> Error {
    Error::Kernel {
        package: format!("{KERNEL_PACKAGE}={KERNEL_VERSION}"),
        detail,
    }
}

/// The pinned package as the image builder's lock entry.
pub fn kernel_package() -> images::lock::Package {
    images::lock::Package {
        name: KERNEL_PACKAGE.into(),
        version: KERNEL_VERSION.into(),
        arch: env!("VM_KERNEL_ARCH").into(),
        sha256: KERNEL_SHA256.into(),
        size: env!("VM_KERNEL_SIZE").parse().unwrap_or(0),
        pool: env!("VM_KERNEL_POOL").into(),
        archive: env!("VM_KERNEL_ARCHIVE").into(),
        depends: Vec::new(),
    }
}

/// Fetches the pinned package by hash into the image builder's cache (`apt-get download`,
/// else the archive's pool path; the SHA-256 is checked before `dpkg-deb` sees it). When
/// apt's lists lack it and we are root, runs `apt-get update` and retries once.
fn download() -> Result<PathBuf> {
    let pkg = kernel_package();
    let cache = images::fetch::Cache::from_env();
    let fetcher = images::fetch::Fetcher::from_host();
    let attempt = || fetcher.fetch(&pkg, &cache);
    let fetched = match attempt() {
        Ok(deb) => Ok(deb),
        // SAFETY: geteuid has no preconditions and cannot fail.
        Err(images::Error::NotServed { .. }) | Err(images::Error::Tool { .. })
            if unsafe { libc::geteuid() } == 0 && fetcher.use_apt =>
        {
            run(Command::new("apt-get").args(["update", "-qq"]))?;
            attempt()
        }
        Err(e) => Err(e),
    };
    fetched.map_err(|e| kernel_err(e.to_string()))
}

/// Finds the XZ payload in a bzImage and decompresses its first stream (the trailing
/// bytes after the stream belong to the bzImage and are ignored).
pub fn extract_vmlinux(bzimage: &Path, out: &Path) -> Result<()> {
    let data = fs::read(bzimage).map_err(Error::io("read", bzimage))?;
    let at = data
        .windows(XZ_MAGIC.len())
        .position(|w| w == XZ_MAGIC)
        .ok_or_else(|| {
            kernel_err(format!(
                "{}: no XZ payload (CONFIG_KERNEL_XZ expected)",
                bzimage.display()
            ))
        })?;
    let elf = decompress_xz(&data[at..])?;
    if !elf.starts_with(b"\x7fELF") {
        return Err(kernel_err(
            "decompressed payload is not an ELF vmlinux".into(),
        ));
    }
    let tmp = out.with_extension("tmp");
    fs::write(&tmp, &elf).map_err(Error::io("write", &tmp))?;
    fs::rename(&tmp, out).map_err(Error::io("rename", out))
}

/// Decodes the first XZ stream of `input` and stops at its end (what follows is not XZ).
fn decompress_xz(input: &[u8]) -> Result<Vec<u8>> {
    let mut stream = xz2::stream::Stream::new_stream_decoder(u64::MAX, 0)
        .map_err(|e| kernel_err(format!("xz decoder: {e}")))?;
    let mut out = Vec::with_capacity(96 << 20);
    loop {
        let consumed = stream.total_in() as usize;
        if out.len() == out.capacity() {
            out.reserve(16 << 20);
        }
        let status = stream
            .process_vec(&input[consumed..], &mut out, xz2::stream::Action::Run)
            .map_err(|e| kernel_err(format!("decompressing the bzImage payload: {e}")))?;
        if status == xz2::stream::Status::StreamEnd {
            return Ok(out);
        }
        if stream.total_in() as usize >= input.len() && out.len() < out.capacity() {
            return Err(kernel_err("XZ payload ends before its stream does".into()));
        }
    }
}

/// Runs a host tool, mapping a non-zero exit into [`Error::Tool`] with its stderr tail
/// ([`images::fetch::run`], whose only error is its own `Tool`).
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    images::fetch::run(cmd).map_err(|e| match e {
        images::Error::Tool { tool, detail } => Error::Tool { tool, detail },
        other => Error::Image(other),
    })
}
