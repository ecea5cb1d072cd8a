//! `lab up --pinned` (and [`crate::lab::LabBuilder::pinned`]): the lab's processes run inside
//! the root filesystems of the pinned container images, built from `images.lock` by the
//! `images` crate: `ecomm-services` for the services, `ecomm-redis` and `ecomm-postgres` for
//! the data stores. Those are the trees `docker load` gets, so the netns lab, the Docker
//! stack and the VM guests (whose `vm-stack` image holds the same locked packages) run the
//! same bytes, whatever the host has installed.
//!
//! Each process gets its own mount namespace (see [`Confine`]): a tmpfs-backed overlay over
//! the role's read-only tree, with the lab's state directory, `/dev` and `/proc` bound in at
//! their host paths, then `chroot`. Nothing is mounted in the host's mount namespace, and
//! everything a process mounted goes away with it.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::component::Kind;
use crate::error::LabError;
use crate::process::RunAs;

/// The image roles the lab's components run in.
const SERVICES: &str = "ecomm-services";
const REDIS: &str = "ecomm-redis";
const POSTGRES: &str = "ecomm-postgres";

/// Where the `ecomm` binary is in the services image.
pub const ECOMM_IN_IMAGE: &str = "/usr/local/bin/ecomm";

/// PostgreSQL's bin dir in the PostgreSQL image.
pub use images::roles::PG_BINDIR;

/// One role's root filesystem on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rootfs {
    /// The image role (`ecomm-redis`, …).
    pub role: String,
    /// The SHA-256 of the role's image, whose tree this is.
    pub image_sha256: String,
    /// The tree (never written to: each process writes into its own overlay).
    pub dir: PathBuf,
}

/// The roots of every component kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedRoots {
    /// The registry, product, order and gateway services.
    pub services: Rootfs,
    /// Redis.
    pub redis: Rootfs,
    /// PostgreSQL.
    pub postgres: Rootfs,
}

impl PinnedRoots {
    /// Builds (or finds in the image cache, `$ECOMM_IMAGE_CACHE`, default
    /// `target/image-cache`) the three images from `images.lock` with `ecomm` as the
    /// services' binary, and writes each image's tree once. The first build fetches the
    /// locked packages (minutes); later ones reuse the cache (seconds).
    pub fn build(ecomm: &Path) -> Result<PinnedRoots, LabError> {
        let fail = |e: images::Error| LabError::Image(e.to_string());
        let cache = images::fetch::Cache::from_env();
        let lock = images::lock::Lock::read(&images::lock::default_path()).map_err(fail)?;
        let fetcher = images::fetch::Fetcher::from_host();
        let inputs = images::roles::Inputs::from_workspace(ecomm, &cache).map_err(fail)?;
        let root = |role: &str| -> Result<Rootfs, LabError> {
            let made =
                images::build::root_dir(&lock, &cache, &fetcher, &inputs, role).map_err(fail)?;
            let scratch = scratch_of(&made.dir);
            fs::create_dir_all(&scratch)
                .map_err(|e| LabError::io(format!("create {}", scratch.display()), e))?;
            Ok(Rootfs {
                role: role.into(),
                image_sha256: made.image.sha256,
                dir: made.dir,
            })
        };
        Ok(PinnedRoots {
            services: root(SERVICES)?,
            redis: root(REDIS)?,
            postgres: root(POSTGRES)?,
        })
    }

    /// The root a component of `kind` runs in.
    pub fn for_kind(&self, kind: Kind) -> &Rootfs {
        match kind {
            Kind::Redis => &self.redis,
            Kind::Postgres => &self.postgres,
            _ => &self.services,
        }
    }
}

/// Where the program a component of `kind` runs is inside its image.
pub fn program_of(kind: Kind) -> String {
    match kind {
        Kind::Redis => "/usr/bin/redis-server".into(),
        Kind::Postgres => format!("{PG_BINDIR}/postgres"),
        _ => ECOMM_IN_IMAGE.into(),
    }
}

/// Checks that process `pid` runs over `root`: the executable it runs has the bytes of
/// `program` in the image's tree (by SHA-256), and the `/etc/passwd` it sees is the image's,
/// not the host's. Returns one line saying what matched, or what did not.
pub fn verify(pid: i32, root: &Rootfs, program: &str) -> Result<String, String> {
    let sha = |p: &Path| images::fetch::sha256_file(p).map_err(|e| e.to_string());
    let running = sha(Path::new(&format!("/proc/{pid}/exe")))?;
    let in_image = sha(&root.dir.join(program.trim_start_matches('/')))?;
    if running != in_image {
        return Err(format!(
            "pid {pid} runs sha256:{running}, but {program} in image {} is sha256:{in_image}",
            root.role
        ));
    }
    let read = |p: PathBuf| fs::read(&p).map_err(|e| format!("read {}: {e}", p.display()));
    let seen = read(PathBuf::from(format!("/proc/{pid}/root/etc/passwd")))?;
    if seen != read(root.dir.join("etc/passwd"))? {
        return Err(format!(
            "pid {pid} sees an /etc/passwd that is not image {}'s: it is not over the image's tree",
            root.role
        ));
    }
    if seen == read(PathBuf::from("/etc/passwd"))? {
        return Err(format!(
            "pid {pid}: image {}'s /etc/passwd is the host's, so the check proves nothing",
            root.role
        ));
    }
    Ok(format!(
        "pid {pid} runs {program} sha256:{} of image {} (sha256:{}), over its tree",
        &running[..16],
        root.role,
        &root.image_sha256[..16]
    ))
}

/// The empty directory beside a tree that each confined process mounts its private tmpfs on.
fn scratch_of(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".mnt");
    dir.with_file_name(name)
}

impl Rootfs {
    /// The account `user` of the image's own `/etc/passwd` (uid and gid as the image has
    /// them: the host's may differ or not exist).
    pub fn account(&self, user: &str) -> Result<RunAs, LabError> {
        let path = self.dir.join("etc/passwd");
        let text = fs::read_to_string(&path)
            .map_err(|e| LabError::io(format!("read {}", path.display()), e))?;
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 4 && f[0] == user).then(|| (f[2].parse().ok(), f[3].parse().ok()))
            })
            .find_map(|ids| match ids {
                (Some(uid), Some(gid)) => Some(RunAs { uid, gid }),
                _ => None,
            })
            .ok_or_else(|| LabError::Invalid {
                what: format!("user of image {}", self.role),
                value: user.into(),
                expected: format!("an account in {}", path.display()),
            })
    }

    /// How to run a program over this tree, with `state_dir` (the lab's state directory)
    /// bound in at its own path.
    pub fn confine(&self, state_dir: &Path) -> Confine {
        Confine {
            root: self.dir.clone(),
            scratch: scratch_of(&self.dir),
            binds: vec![state_dir.to_path_buf(), "/dev".into(), "/proc".into()],
        }
    }
}

/// Where a launched program runs: over `root`, in its own mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confine {
    /// The image's tree, the overlay's read-only lower layer.
    pub root: PathBuf,
    /// An empty directory (beside `root`) the process's private tmpfs is mounted on: the
    /// overlay's upper and work directories and its mount point.
    pub scratch: PathBuf,
    /// Host directories bound in at the same path (absolute; created in the overlay).
    pub binds: Vec<PathBuf>,
}

/// The search path confined programs get (the images' layouts).
pub fn path_in_image() -> String {
    format!("/usr/local/bin:{PG_BINDIR}:/usr/bin:/bin")
}

/// [`Confine`]'s system calls with every argument made before fork: the child allocates
/// nothing.
#[derive(Debug)]
pub(crate) struct Prepared {
    scratch: CString,
    upper: CString,
    work: CString,
    merged: CString,
    overlay: CString,
    /// Per bind: the source, the directories to make for the target (outermost first), the
    /// target.
    binds: Vec<(CString, Vec<CString>, CString)>,
    cwd: CString,
}

fn cstring(p: &Path) -> Result<CString, LabError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| LabError::Invalid {
        what: "path".into(),
        value: p.display().to_string(),
        expected: "a path without NUL bytes".into(),
    })
}

impl Confine {
    /// Makes every argument of [`Prepared::enter`]; `cwd` is where the program starts
    /// (inside the tree or a bound directory; default `/`).
    pub(crate) fn prepare(&self, cwd: Option<&Path>) -> Result<Prepared, LabError> {
        for p in [&self.root, &self.scratch] {
            let text = p.to_string_lossy();
            if !p.is_absolute() || text.contains([',', ':', '\\']) {
                return Err(LabError::Invalid {
                    what: "image root path".into(),
                    value: text.into_owned(),
                    expected: "an absolute path without ',', ':' or '\\' (overlayfs options)"
                        .into(),
                });
            }
        }
        let merged = self.scratch.join("root");
        let mut binds = Vec::new();
        for b in &self.binds {
            let rel = b.strip_prefix("/").map_err(|_| LabError::Invalid {
                what: "bind mount source".into(),
                value: b.display().to_string(),
                expected: "an absolute path".into(),
            })?;
            let mut dirs = Vec::new();
            let mut at = merged.clone();
            for part in rel.components() {
                at.push(part);
                dirs.push(cstring(&at)?);
            }
            binds.push((cstring(b)?, dirs, cstring(&at)?));
        }
        let overlay = format!(
            "lowerdir={},upperdir={},workdir={}",
            self.root.display(),
            self.scratch.join("upper").display(),
            self.scratch.join("work").display()
        );
        Ok(Prepared {
            scratch: cstring(&self.scratch)?,
            upper: cstring(&self.scratch.join("upper"))?,
            work: cstring(&self.scratch.join("work"))?,
            merged: cstring(&merged)?,
            overlay: CString::new(overlay).map_err(|_| LabError::Invalid {
                what: "overlay options".into(),
                value: self.root.display().to_string(),
                expected: "paths without NUL bytes".into(),
            })?,
            binds,
            cwd: cstring(cwd.unwrap_or(Path::new("/")))?,
        })
    }
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn mkdir(path: &CString) -> std::io::Result<()> {
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::mkdir(path.as_ptr(), 0o755) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EEXIST) {
        Ok(())
    } else {
        Err(e)
    }
}

impl Prepared {
    /// Enters the confinement: a new mount namespace (mounts private), a tmpfs on the
    /// scratch directory, the overlay over the tree on `<scratch>/root`, the binds, then
    /// `chroot` into it and `chdir` to the start directory.
    ///
    /// Only system calls (unshare, mount, mkdir, chroot, chdir) on strings made before the
    /// fork: no allocation, no lock, so it is safe between fork and exec. Call it only
    /// there: it changes the calling process's mount namespace and root.
    pub(crate) fn enter(&self) -> std::io::Result<()> {
        let none = std::ptr::null::<libc::c_char>();
        // SAFETY: every pointer is either null (where mount(2) allows it) or a NUL-terminated
        // string owned by `self`, alive for the whole call; these calls touch only the
        // calling process's own mount namespace and root.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                c"tmpfs".as_ptr(),
                self.scratch.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"mode=0755".as_ptr().cast(),
            ))?;
            mkdir(&self.upper)?;
            mkdir(&self.work)?;
            mkdir(&self.merged)?;
            check(libc::mount(
                c"overlay".as_ptr(),
                self.merged.as_ptr(),
                c"overlay".as_ptr(),
                0,
                self.overlay.as_ptr().cast(),
            ))?;
            for (source, dirs, target) in &self.binds {
                for d in dirs {
                    mkdir(d)?;
                }
                check(libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    none,
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
            }
            check(libc::chroot(self.merged.as_ptr()))?;
            check(libc::chdir(self.cwd.as_ptr()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prepare_makes_every_target_directory_outermost_first() {
        let c = Confine {
            root: "/cache/roots/ecomm-redis-ab".into(),
            scratch: "/cache/roots/ecomm-redis-ab.mnt".into(),
            binds: vec!["/tmp/lab-1".into()],
        };
        let p = c.prepare(None).unwrap();
        let (source, dirs, target) = &p.binds[0];
        assert_eq!(source.to_str().unwrap(), "/tmp/lab-1");
        let dirs: Vec<&str> = dirs.iter().map(|d| d.to_str().unwrap()).collect();
        assert_eq!(
            dirs,
            [
                "/cache/roots/ecomm-redis-ab.mnt/root/tmp",
                "/cache/roots/ecomm-redis-ab.mnt/root/tmp/lab-1"
            ]
        );
        assert_eq!(
            target.to_str().unwrap(),
            "/cache/roots/ecomm-redis-ab.mnt/root/tmp/lab-1"
        );
        assert_eq!(
            p.overlay.to_str().unwrap(),
            "lowerdir=/cache/roots/ecomm-redis-ab,upperdir=/cache/roots/ecomm-redis-ab.mnt/upper,workdir=/cache/roots/ecomm-redis-ab.mnt/work"
        );
        assert_eq!(p.cwd.to_str().unwrap(), "/");
    }

    #[test]
    fn a_root_overlayfs_cannot_parse_is_refused_by_name() {
        let c = Confine {
            root: "/cache/a,b".into(),
            scratch: "/cache/a.mnt".into(),
            binds: vec![],
        };
        let e = c.prepare(None).unwrap_err().to_string();
        assert!(e.contains("/cache/a,b") && e.contains("overlayfs"), "{e}");
    }

    #[test]
    fn accounts_come_from_the_image_passwd() {
        let dir = std::env::temp_dir().join(format!("pinned-passwd-{}", std::process::id()));
        fs::create_dir_all(dir.join("etc")).unwrap();
        fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nredis:x:999:998:redis:/data:/bin/sh\n",
        )
        .unwrap();
        let r = Rootfs {
            role: "ecomm-redis".into(),
            image_sha256: "00".into(),
            dir: dir.clone(),
        };
        assert_eq!(r.account("redis").unwrap(), RunAs { uid: 999, gid: 998 });
        let e = r.account("postgres").unwrap_err().to_string();
        assert!(e.contains("postgres") && e.contains("ecomm-redis"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
