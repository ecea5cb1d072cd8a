//! Network namespaces held by file descriptor: create (anonymous or named under /run/netns),
//! open, delete, run a closure inside, spawn a process inside, sysctls, a netlink handle.
//!
//! setns(2) only moves the calling thread, so nothing here ever calls it on a caller's
//! thread: closures run on a short-lived dedicated thread, processes enter the namespace
//! between fork and exec (`pre_exec`).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Error, Result};
use crate::netlink::Netlink;

/// Where iproute2 (and netns-kit) keep named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A network namespace, kept alive by an open file descriptor (and, if named, a bind mount
/// under /run/netns). Dropping it closes the descriptor; a named namespace stays until
/// [`Netns::delete`].
#[derive(Debug, Clone)]
pub struct Netns {
    fd: Arc<OwnedFd>,
    name: Option<String>,
    inode: u64,
}

impl Netns {
    /// Create a new anonymous namespace, held only by the returned handle: it disappears
    /// (with everything inside) when the last handle and the last process inside are gone.
    pub fn new_anonymous() -> Result<Netns> {
        on_fresh_thread("create namespace", || Ok(create_here(None, |_| Ok(()))?.0))
    }

    /// Create a new namespace named `name` under /run/netns (visible to `ip netns`).
    pub fn new_named(name: &str) -> Result<Netns> {
        check_name(name)?;
        let name = name.to_string();
        on_fresh_thread("create namespace", move || {
            Ok(create_here(Some((&name, None)), |_| Ok(()))?.0)
        })
    }

    /// Open the existing namespace named `name` under /run/netns. An entry that is not a
    /// mounted namespace (a mount point never mounted, or left half-removed) is
    /// [`Error::Invalid`].
    pub fn open(name: &str) -> Result<Netns> {
        match inspect_named(name)? {
            NamedEntry::Mounted(ns) => Ok(ns),
            NamedEntry::Absent => Err(Error::NotFound {
                kind: "namespace",
                name: name.to_string(),
            }),
            NamedEntry::Unmounted { .. } => Err(Error::Invalid {
                kind: "namespace",
                value: Path::new(NETNS_RUN_DIR).join(name).display().to_string(),
                expected: "a mounted network namespace (this entry was never mounted)",
            }),
        }
    }

    /// Open a namespace by path (e.g. `/proc/<pid>/ns/net` or a bind-mount).
    pub fn open_path(path: &Path) -> Result<Netns> {
        let file =
            File::open(path).map_err(|e| Error::io("open", path.display().to_string(), e))?;
        let inode = file
            .metadata()
            .map_err(|e| Error::io("stat", path.display().to_string(), e))?
            .ino();
        Ok(Netns {
            fd: Arc::new(OwnedFd::from(file)),
            name: None,
            inode,
        })
    }

    /// The namespace the calling process started in (for reading only; netns-kit never
    /// changes anything there unless told to, e.g. a lab's host link).
    pub fn current_process() -> Result<Netns> {
        Netns::open_path(Path::new("/proc/self/ns/net"))
    }

    /// The namespace the calling thread is in (differs from [`Netns::current_process`]
    /// after the thread entered another one with setns).
    pub fn current_thread() -> Result<Netns> {
        Netns::open_path(Path::new("/proc/thread-self/ns/net"))
    }

    /// The name under /run/netns, if this namespace is named.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// A label for messages: the name, or `netns:[inode]` for an anonymous one.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("netns:[{}]", self.inode),
        }
    }

    /// The namespace's inode number (its identity, as shown in `/proc/<pid>/ns/net`).
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// The descriptor holding the namespace.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Delete the namespace: unmount and remove its /run/netns name (if named) and close
    /// this handle. Processes still inside keep it alive until they exit.
    pub fn delete(self) -> Result<()> {
        if let Some(name) = &self.name {
            remove_named(name)?;
        }
        Ok(())
    }

    /// Delete many namespaces at once; returns (label, error) for each that failed.
    ///
    /// Unmounting a /run/netns name waits for an RCU grace period in the kernel (about
    /// half a millisecond, much more under load); unmounting from several threads lets
    /// those waits overlap, which is what makes tearing down 1000 named namespaces fast.
    pub fn delete_all(namespaces: Vec<Netns>) -> Vec<(String, Error)> {
        /// Namespaces per unmounting thread; below this, threads cost more than they save.
        const PER_THREAD: usize = 32;
        /// At most this many unmounting threads.
        const MAX_THREADS: usize = 16;
        let (named, anonymous): (Vec<Netns>, Vec<Netns>) =
            namespaces.into_iter().partition(|n| n.name.is_some());
        drop(anonymous);
        let threads = named.len().div_ceil(PER_THREAD).clamp(1, MAX_THREADS);
        let per = named.len().div_ceil(threads).max(1);
        let mut failed = Vec::new();
        std::thread::scope(|s| {
            let handles: Vec<_> = named
                .chunks(per)
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .filter_map(|ns| {
                                let name = ns.name.as_deref()?;
                                remove_named(name).err().map(|e| (ns.label(), e))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                match h.join() {
                    Ok(errs) => failed.extend(errs),
                    Err(_) => failed.push((
                        "namespaces".to_string(),
                        Error::ThreadPanicked("unmounting namespaces"),
                    )),
                }
            }
        });
        failed
    }

    /// Run `f` on a dedicated thread that has entered this namespace; returns its result.
    pub fn run<F, T>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let fd = self.fd.as_fd();
        let label = self.label();
        std::thread::scope(|s| {
            s.spawn(move || -> Result<T> {
                setns(fd, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::io("enter namespace", label, e.into()))?;
                Ok(f())
            })
            .join()
            .map_err(|_| Error::ThreadPanicked("running a closure inside a namespace"))?
        })
    }

    /// A process builder whose child enters this namespace before exec.
    pub fn command(&self, program: impl AsRef<OsStr>) -> NsCommand {
        NsCommand::new(self.clone(), program)
    }

    /// A netlink (rtnetlink) socket opened inside this namespace.
    pub fn netlink(&self) -> Result<Netlink> {
        let label = self.label();
        self.run(move || Netlink::open(label))?
    }

    /// Read a sysctl inside the namespace (`net.ipv4.ip_forward` or `net/ipv4/ip_forward`).
    pub fn sysctl_get(&self, key: &str) -> Result<String> {
        let path = crate::sysctl::path_of(key)?;
        self.run(move || crate::sysctl::read_here(&path))?
    }

    /// Write a sysctl inside the namespace.
    pub fn sysctl_set(&self, key: &str, value: &str) -> Result<()> {
        let path = crate::sysctl::path_of(key)?;
        self.run(move || crate::sysctl::write_here(&path, value))?
    }
}

/// Reject names that cannot be a file name under /run/netns.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            kind: "namespace name",
            value: name.to_string(),
            expected: "1-200 characters of letters, digits, '-', '_', '.'",
        })
    }
}

/// Run `f` on a short-lived thread (so whatever namespace it enters dies with it).
pub(crate) fn on_fresh_thread<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    std::thread::spawn(f)
        .join()
        .map_err(|_| Error::ThreadPanicked(what))?
}

/// On the calling (dedicated!) thread: unshare into a new namespace, run `setup` while
/// inside (sysctls, opening its netlink socket, tagging it), then, if named, bind it to
/// /run/netns/<name> — so a namespace only becomes visible once it carries its tag.
/// `name` is the /run/netns name and the run id its mount point is tagged with (see
/// [`reserve_mount_point`]).
///
/// Must only be called on a thread that is thrown away afterwards.
pub(crate) fn create_here<S, R>(name: Option<(&str, Option<&str>)>, setup: S) -> Result<(Netns, R)>
where
    S: FnOnce(&Netns) -> Result<R>,
{
    let label = name.map_or("anonymous", |(n, _)| n).to_string();
    let mount_point = match name {
        Some((n, run_id)) => Some(reserve_mount_point(n, run_id)?),
        None => None,
    };
    let name = name.map(|(n, _)| n);
    let created = (|| {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
            let e: io::Error = e.into();
            if e.raw_os_error() == Some(libc::EPERM) {
                Error::NotPrivileged(format!("unshare(CLONE_NEWNET) for namespace {label}: {e}"))
            } else {
                Error::io("create namespace", label.clone(), e)
            }
        })?;
        let mut ns = Netns::open_path(Path::new("/proc/thread-self/ns/net"))?;
        if let Some(n) = name {
            ns.name = Some(n.to_string());
        }
        let extra = setup(&ns)?;
        if let Some(mp) = &mount_point {
            mount(
                Some("/proc/thread-self/ns/net"),
                mp.as_path(),
                Some("none"),
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| Error::io("bind-mount namespace", mp.display().to_string(), e.into()))?;
        }
        Ok((ns, extra))
    })();
    if created.is_err() {
        if let Some(mp) = &mount_point {
            let _ = umount2(mp.as_path(), MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(mp);
        }
    }
    created
}

/// Make sure /run/netns exists and is a shared mount point (as iproute2 does), then create
/// the file a namespace gets bind-mounted on. Fails if the name is taken.
///
/// The file is born tagged: it is created as `.netns-kit-<run id>-<name>` (the run id in
/// its name) holding `netns-kit:<run id>`, then renamed to `<name>` with RENAME_NOREPLACE.
/// So whenever a process dies between here and the bind mount, what it leaves carries its
/// run id — in the name or in the content — and `gc` can prove it is that run's.
fn reserve_mount_point(name: &str, run_id: Option<&str>) -> Result<PathBuf> {
    ensure_run_dir()?;
    let dir = Path::new(NETNS_RUN_DIR);
    let path = dir.join(name);
    let owner = run_id.map_or_else(|| format!("p{}", std::process::id()), str::to_string);
    let tmp = dir.join(format!("{MOUNT_TEMP_PREFIX}{owner}-{name}"));
    let tag = run_id.map(|r| format!("{}{r}\n", crate::runid::ALIAS_PREFIX));
    let create = || -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        if let Some(t) = &tag {
            io::Write::write_all(&mut f, t.as_bytes())?;
        }
        if tag.is_some() {
            crate::fault::point(&format!(
                "mount point {name}: created under its temporary name"
            ));
        }
        nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            &tmp,
            nix::fcntl::AT_FDCWD,
            &path,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(io::Error::from)
    };
    create().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("create namespace file", path.display().to_string(), e)
    })?;
    Ok(path)
}

/// Name prefix of a mount point being created: `.netns-kit-<run id>-<name>` until renamed.
pub const MOUNT_TEMP_PREFIX: &str = ".netns-kit-";

/// What is at `/run/netns/<name>`.
#[derive(Debug)]
pub enum NamedEntry {
    /// Nothing.
    Absent,
    /// A mounted namespace.
    Mounted(Netns),
    /// A plain file on which no namespace is mounted: a mount point whose creator died
    /// before mounting (or while removing it). `tag` is its content when that is a
    /// netns-kit tag (`netns-kit:<run id>`), which proves which run made it.
    Unmounted {
        /// The run id the file is tagged with, if any.
        tag: Option<crate::runid::RunId>,
    },
}

/// Look at `/run/netns/<name>` without changing anything.
pub fn inspect_named(name: &str) -> Result<NamedEntry> {
    check_name(name)?;
    let path = Path::new(NETNS_RUN_DIR).join(name);
    let mut ns = match Netns::open_path(&path) {
        Ok(ns) => ns,
        Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(NamedEntry::Absent),
        Err(e) => return Err(e),
    };
    let fs = nix::sys::statfs::fstatfs(ns.fd())
        .map_err(|e| Error::io("statfs", path.display().to_string(), e.into()))?;
    if fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC {
        ns.name = Some(name.to_string());
        return Ok(NamedEntry::Mounted(ns));
    }
    // A tag is a few dozen bytes; read no more than that from a file someone else made.
    let mut text = String::new();
    if let Ok(f) = File::open(&path) {
        let _ = io::Read::read_to_string(&mut io::Read::take(f, 64), &mut text);
    }
    let tag = text
        .strip_suffix('\n')
        .and_then(crate::runid::RunId::from_alias);
    Ok(NamedEntry::Unmounted { tag })
}

/// Remove `/run/netns/<name>` if it is an unmounted file tagged with `run_id` (and only
/// then); returns whether it removed it.
pub fn remove_unmounted(name: &str, run_id: &crate::runid::RunId) -> Result<bool> {
    match inspect_named(name)? {
        NamedEntry::Unmounted { tag: Some(t) } if &t == run_id => {
            let path = Path::new(NETNS_RUN_DIR).join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(Error::io(
                    "remove namespace file",
                    path.display().to_string(),
                    e,
                )),
            }
        }
        _ => Ok(false),
    }
}

/// Mount points being created by run `run_id` (file names under /run/netns that start
/// with `.netns-kit-<run id>-`): left only by a process killed while creating a named
/// namespace's mount point.
pub fn mount_point_temps(run_id: &crate::runid::RunId) -> Vec<String> {
    let prefix = format!("{MOUNT_TEMP_PREFIX}{run_id}-");
    let Ok(rd) = std::fs::read_dir(NETNS_RUN_DIR) else {
        return Vec::new();
    };
    let mut found: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    found.sort();
    found
}

/// Remove a file listed by [`mount_point_temps`] (never a mount: a temporary is renamed
/// before anything is mounted on it).
pub fn remove_mount_point_temp(file_name: &str) -> Result<()> {
    if !file_name.starts_with(MOUNT_TEMP_PREFIX) || file_name.contains('/') {
        return Err(Error::Invalid {
            kind: "mount point temporary",
            value: file_name.to_string(),
            expected: "a file name starting with .netns-kit-",
        });
    }
    let path = Path::new(NETNS_RUN_DIR).join(file_name);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(
            "remove namespace file",
            path.display().to_string(),
            e,
        )),
    }
}

/// Create /run/netns and make it a shared mount point, so bind mounts propagate.
fn ensure_run_dir() -> Result<()> {
    static READY: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    let r = READY.get_or_init(|| {
        std::fs::create_dir_all(NETNS_RUN_DIR).map_err(|e| format!("mkdir: {e}"))?;
        let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
        match mount(
            None::<&str>,
            NETNS_RUN_DIR,
            Some("none"),
            shared,
            None::<&str>,
        ) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::EINVAL) => {
                let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
                mount(
                    Some(NETNS_RUN_DIR),
                    NETNS_RUN_DIR,
                    Some("none"),
                    bind,
                    None::<&str>,
                )
                .map_err(|e| format!("bind-mount on itself: {e}"))?;
                mount(
                    None::<&str>,
                    NETNS_RUN_DIR,
                    Some("none"),
                    shared,
                    None::<&str>,
                )
                .map_err(|e| format!("make shared: {e}"))
            }
            Err(e) => Err(format!("make shared: {e}")),
        }
    });
    r.clone()
        .map_err(|detail| Error::io("prepare", NETNS_RUN_DIR, io::Error::other(detail)))
}

/// Unmount and remove /run/netns/<name>. A name that is already gone is not an error.
pub(crate) fn remove_named(name: &str) -> Result<()> {
    check_name(name)?;
    let path = Path::new(NETNS_RUN_DIR).join(name);
    match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::io(
                "unmount namespace",
                path.display().to_string(),
                e.into(),
            ))
        }
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(
            "remove namespace file",
            path.display().to_string(),
            e,
        )),
    }
}

/// The names under /run/netns (empty if the directory does not exist).
pub fn list_named() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_RUN_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", NETNS_RUN_DIR, e)),
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// A [`Command`] whose child enters a namespace between fork and exec.
#[derive(Debug)]
pub struct NsCommand {
    cmd: Command,
    ns: Netns,
}

impl NsCommand {
    fn new(ns: Netns, program: impl AsRef<OsStr>) -> NsCommand {
        let mut cmd = Command::new(program);
        let raw: RawFd = ns.fd.as_raw_fd();
        // SAFETY: the closure runs in the child between fork and exec and only calls
        // setns(2), an async-signal-safe system call, on a descriptor that `self.ns` keeps
        // open for the whole life of the NsCommand (hence across the fork). It allocates
        // nothing and touches no lock.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        NsCommand { cmd, ns }
    }

    /// Add an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// Add arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Set an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.env(key, value);
        self
    }

    /// Set the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Configure the child's stdin (default: inherited).
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stdin(cfg);
        self
    }

    /// Configure the child's stdout (default: inherited).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stdout(cfg);
        self
    }

    /// Configure the child's stderr (default: inherited).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stderr(cfg);
        self
    }

    /// The underlying [`Command`], for options not mirrored here.
    pub fn as_command_mut(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// The command (its pre_exec already enters the namespace) and the namespace whose
    /// descriptor that pre_exec uses: whoever takes the command must keep the namespace.
    #[cfg(feature = "tokio")]
    pub(crate) fn into_parts(self) -> (Command, Netns) {
        (self.cmd, self.ns)
    }

    /// Spawn the child; it is killed when the returned handle drops unless detached.
    pub fn spawn(&mut self) -> Result<NsChild> {
        let program = self.cmd.get_program().to_string_lossy().into_owned();
        let child = self
            .cmd
            .spawn()
            .map_err(|e| Error::io("spawn", format!("{program} in {}", self.ns.label()), e))?;
        Ok(NsChild { child })
    }

    /// Run to completion, capturing stdout and stderr.
    pub fn output(&mut self) -> Result<Output> {
        let program = self.cmd.get_program().to_string_lossy().into_owned();
        self.cmd
            .output()
            .map_err(|e| Error::io("run", format!("{program} in {}", self.ns.label()), e))
    }

    /// Run to completion with inherited stdio, returning the exit status.
    pub fn status(&mut self) -> Result<ExitStatus> {
        let program = self.cmd.get_program().to_string_lossy().into_owned();
        self.cmd
            .status()
            .map_err(|e| Error::io("run", format!("{program} in {}", self.ns.label()), e))
    }
}

/// A child process running inside a namespace; killed (SIGKILL) and reaped on drop unless
/// [`NsChild::detach`]ed.
#[derive(Debug)]
pub struct NsChild {
    child: Child,
}

impl NsChild {
    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child (for its stdin/stdout pipes, wait, try_wait...).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Wait for the child to exit.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        let pid = self.id();
        self.child
            .wait()
            .map_err(|e| Error::io("wait for", format!("pid {pid}"), e))
    }

    /// Kill the child (SIGKILL) and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Let the child outlive this handle.
    pub fn detach(self) -> Child {
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never dropped (ManuallyDrop) and never used again, so moving the
        // field out by a bitwise read leaves exactly one owner of the Child.
        unsafe { std::ptr::read(&me.child) }
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pids of the processes (other than this one) whose network namespace is one of `inodes`.
pub fn pids_in(inodes: &std::collections::HashSet<u64>) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| inodes.contains(&m.ino()))
                .unwrap_or(false)
        })
        .collect()
}

/// SIGKILL every process (other than this one) inside the namespaces `inodes`; returns how
/// many were signalled.
pub fn kill_processes_in(inodes: &std::collections::HashSet<u64>) -> usize {
    let pids = pids_in(inodes);
    for pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    pids.len()
}

/// Every network namespace some process (other than this one) is in: its inode and the
/// pids inside, by inode.
pub fn processes_by_namespace() -> std::collections::BTreeMap<u64, Vec<i32>> {
    let me = std::process::id() as i32;
    let mut by = std::collections::BTreeMap::<u64, Vec<i32>>::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return by;
    };
    for pid in rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| *pid != me)
    {
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
            by.entry(m.ino()).or_default().push(pid);
        }
    }
    by
}
