//! Supervised processes: spawn a program inside a namespace as a session leader that dies
//! with this process, optionally as another user, with its output appended to a log file;
//! stop it with a grace period and reap it.
//!
//! Between fork and exec the child does, in this order: enter the network namespace, become
//! a session (and process-group) leader, run the caller's [`Spawn::pre_exec`] hook (a mount
//! namespace and a chroot, say), drop to the requested user, and only then set its
//! parent-death signal. The order matters: the kernel clears the parent-death signal whenever
//! the effective uid or gid changes, so a death signal set before the user switch would be
//! lost.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process.
//! With [`Spawn::die_with_parent`] every child is therefore forked by one spawner thread that
//! lives as long as the process, so the signal means exactly "this process is gone", even
//! when a test's worker thread that asked for the spawn has long finished.
//!
//! ```no_run
//! use std::time::Duration;
//! use netns_kit::{supervise::Spawn, Netns};
//!
//! let ns = Netns::new_anonymous()?;
//! let mut server = Spawn::new("sleep")
//!     .arg("30")
//!     .in_netns(&ns)
//!     .log("/tmp/sleep.log")
//!     .die_with_parent()
//!     .spawn()?;
//! assert!(server.is_running());
//! let status = server.stop(Duration::from_secs(2))?;
//! assert!(!status.success());
//! # Ok::<(), netns_kit::Error>(())
//! ```

use std::ffi::{OsStr, OsString};
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::netns::Netns;

/// A pre-exec hook: runs in the forked child, see [`Spawn::pre_exec`].
type Hook = Box<dyn FnMut() -> io::Result<()> + Send + Sync + 'static>;

/// A program to start under supervision. Built with chained calls, started by
/// [`Spawn::spawn`].
pub struct Spawn {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    ns: Option<Netns>,
    log: Option<PathBuf>,
    user: Option<(u32, u32)>,
    die_with_parent: bool,
    hook: Option<Hook>,
}

impl std::fmt::Debug for Spawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawn")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("ns", &self.ns.as_ref().map(Netns::label))
            .field("log", &self.log)
            .field("user", &self.user)
            .field("die_with_parent", &self.die_with_parent)
            .field("hook", &self.hook.is_some())
            .finish_non_exhaustive()
    }
}

impl Spawn {
    /// `program` (a path, or a name looked up in `PATH`), with no arguments, in the caller's
    /// namespace, with stdin from /dev/null and output inherited.
    pub fn new(program: impl AsRef<OsStr>) -> Spawn {
        Spawn {
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            ns: None,
            log: None,
            user: None,
            die_with_parent: false,
            hook: None,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Spawn {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Spawn
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Spawn {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// The child's working directory (entered before the hook runs).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Spawn {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Runs the child inside `ns` (setns(2) between fork and exec; no thread of this process
    /// changes namespace).
    pub fn in_netns(mut self, ns: &Netns) -> Spawn {
        self.ns = Some(ns.clone());
        self
    }

    /// Appends the child's stdout and stderr to `path` (created if missing).
    pub fn log(mut self, path: impl AsRef<Path>) -> Spawn {
        self.log = Some(path.as_ref().to_path_buf());
        self
    }

    /// Runs the program as `uid`/`gid` (supplementary groups: `gid` only). Needs root.
    pub fn user(mut self, uid: u32, gid: u32) -> Spawn {
        self.user = Some((uid, gid));
        self
    }

    /// SIGKILLs the child when this process dies, however it dies.
    pub fn die_with_parent(mut self) -> Spawn {
        self.die_with_parent = true;
        self
    }

    /// Runs `hook` in the child after it entered the namespace and became a session leader,
    /// before it drops to [`Spawn::user`].
    ///
    /// # Safety
    ///
    /// The hook runs in a forked child of a possibly multi-threaded process: it must call
    /// only async-signal-safe functions (plain system calls through `libc`), allocate
    /// nothing and take no lock. Everything it needs must be built before the fork (see
    /// [`std::os::unix::process::CommandExt::pre_exec`]).
    pub unsafe fn pre_exec(
        mut self,
        hook: impl FnMut() -> io::Result<()> + Send + Sync + 'static,
    ) -> Spawn {
        self.hook = Some(Box::new(hook));
        self
    }

    /// What [`Spawn::spawn`] runs, for messages: the program and its arguments.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Starts the program. On error nothing is left running.
    pub fn spawn(self) -> Result<Supervised> {
        let what = match &self.ns {
            Some(ns) => format!("`{}` in {}", self.display(), ns.label()),
            None => format!("`{}`", self.display()),
        };
        let die_with_parent = self.die_with_parent;
        let (cmd, _ns) = self
            .into_command()
            .map_err(|e| Error::io("spawn", &*what, e))?;
        let child = if die_with_parent {
            spawn_on_spawner_thread(cmd)
        } else {
            let mut cmd = cmd;
            cmd.spawn()
        }
        .map_err(|e| Error::io("spawn", &*what, e))?;
        Supervised::new(child)
    }

    /// The [`Command`] with its pre-exec steps, and the namespace whose descriptor they use
    /// (kept open by the caller until the child has exec'd).
    fn into_command(self) -> io::Result<(Command, Option<Netns>)> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null());
        if let Some(path) = &self.log {
            let out = OpenOptions::new().create(true).append(true).open(path)?;
            cmd.stderr(out.try_clone()?).stdout(out);
        }
        let ns_fd: Option<RawFd> = self.ns.as_ref().map(|n| n.fd().as_raw_fd());
        let user = self.user;
        let mut hook = self.hook;
        let die_with_parent = self.die_with_parent;
        let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
        // SAFETY: the closure runs in the forked child before exec and calls only
        // async-signal-safe system calls through libc (setns, setsid, setgroups, setgid,
        // setuid, prctl, getppid) plus the caller's hook, whose own safety the caller promised
        // in `Spawn::pre_exec`. It allocates nothing (io::Error from a raw errno does not
        // allocate) and takes no lock. `ns_fd` is the descriptor of `self.ns`, which is
        // returned to `spawn` and lives until the child has exec'd; it is close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = ns_fd {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(hook) = hook.as_mut() {
                    hook()?;
                }
                if let Some((uid, gid)) = user {
                    let groups = [gid];
                    if libc::setgroups(1, groups.as_ptr()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
                // After the user switch: changing credentials clears the death signal.
                if die_with_parent {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // The parent may have died before prctl; nobody would signal us then.
                    if libc::getppid() != parent {
                        return Err(io::Error::from_raw_os_error(libc::ESRCH));
                    }
                }
                Ok(())
            });
        }
        Ok((cmd, self.ns))
    }
}

/// A command to fork and where to send the child.
type Job = (Command, Sender<io::Result<Child>>);

/// The spawner thread's queue. The thread starts on first use and never exits, because this
/// sender is never dropped.
static SPAWNER: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();

/// Forks `cmd` on the process-long spawner thread (see the module docs).
fn spawn_on_spawner_thread(cmd: Command) -> io::Result<Child> {
    let queue = SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        // Without the thread there is no spawner; the send below then reports it.
        let _ = std::thread::Builder::new()
            .name("netns-kit-spawner".into())
            .spawn(move || {
                while let Ok((mut cmd, reply)) = rx.recv() {
                    let _ = reply.send(cmd.spawn());
                }
            });
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = channel();
    queue
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("the netns-kit spawner thread is not running"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the netns-kit spawner thread stopped"))?
}

/// A running supervised process: the leader of its own process group. Dropping it kills the
/// group (SIGKILL) and reaps the leader, unless it was [`Supervised::detach`]ed.
#[derive(Debug)]
pub struct Supervised {
    child: Option<Child>,
    pid: i32,
    start_time: u64,
}

impl Supervised {
    fn new(mut child: Child) -> Result<Supervised> {
        let Ok(pid) = i32::try_from(child.id()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::io(
                "spawn",
                format!("pid {}", child.id()),
                io::Error::other("the pid does not fit in pid_t"),
            ));
        };
        let start_time = crate::procfs::Stat::of(child.id()).map_or(0, |s| s.start_time);
        Ok(Supervised {
            child: Some(child),
            pid,
            start_time,
        })
    }

    /// The pid (also the process-group and session id).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The start time (clock ticks after boot): with the pid, names this process for good.
    pub fn start_time(&self) -> u64 {
        self.start_time
    }

    /// Whether the leader still runs (reaps it if it has exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The exit status, if the leader has exited (reaped here).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        let pid = self.pid;
        match self.child.as_mut() {
            Some(c) => c
                .try_wait()
                .map_err(|e| Error::io("wait for", format!("pid {pid}"), e)),
            None => Ok(None),
        }
    }

    /// Sends `signal` (a `libc::SIG*` number) to the whole process group.
    pub fn signal_group(&self, signal: i32) -> Result<()> {
        // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
        if unsafe { libc::kill(-self.pid, signal) } != 0 {
            return Err(Error::io(
                "signal",
                format!("process group {}", self.pid),
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// SIGTERM to the group, up to `grace` for the leader to exit, then SIGKILL to the group;
    /// reaps the leader and returns its exit status.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + grace;
        // An already-exited group (ESRCH) is what stopping wants.
        let _ = self.signal_group(libc::SIGTERM);
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait()? {
                let _ = self.signal_group(libc::SIGKILL);
                self.child = None;
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill()
    }

    /// SIGKILL to the group at once; reaps the leader and returns its exit status.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        let _ = self.signal_group(libc::SIGKILL);
        let pid = self.pid;
        let Some(mut child) = self.child.take() else {
            return Err(Error::io(
                "wait for",
                format!("pid {pid}"),
                io::Error::other("already reaped"),
            ));
        };
        child
            .wait()
            .map_err(|e| Error::io("wait for", format!("pid {pid}"), e))
    }

    /// Lets the process outlive this handle; returns the child (whose owner must reap it).
    pub fn detach(mut self) -> Option<Child> {
        self.child.take()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_terminates_the_group_and_reaps_the_leader() {
        let log = std::env::temp_dir().join(format!("supervise-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        // The shell's child `sleep` is in the leader's group: stopping must end both.
        let mut p = Spawn::new("sh")
            .args(["-c", "echo started; sleep 30 & wait"])
            .log(&log)
            .die_with_parent()
            .spawn()
            .unwrap();
        let pid = p.pid();
        assert_eq!(crate::procfs::Stat::of(pid as u32).unwrap().pgrp, pid);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("started")
        {
            assert!(Instant::now() < deadline, "no output in {}", log.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = p.stop(Duration::from_secs(5)).unwrap();
        assert!(!status.success());
        assert!(!p.is_running());
        // Nothing of the group is left (zombies of ours included: the leader was reaped).
        std::thread::sleep(Duration::from_millis(50));
        let left: Vec<u32> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&q| {
                crate::procfs::Stat::of(q).is_some_and(|s| s.pgrp == pid && !s.is_zombie())
            })
            .collect();
        assert!(left.is_empty(), "left in group {pid}: {left:?}");
        std::fs::remove_file(&log).unwrap();
    }

    #[test]
    fn a_missing_program_is_an_error_naming_it() {
        let e = Spawn::new("/nonexistent/program")
            .arg("x")
            .spawn()
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/program x"), "{e}");
    }

    #[test]
    fn a_failing_hook_fails_the_spawn() {
        // SAFETY: the hook only builds an io::Error from an errno, which does not allocate.
        let s = unsafe {
            Spawn::new("true").pre_exec(|| Err(io::Error::from_raw_os_error(libc::EPERM)))
        };
        let e = s.spawn().unwrap_err();
        assert_eq!(e.errno(), Some(libc::EPERM), "{e}");
    }

    #[test]
    fn dropping_kills() {
        let p = Spawn::new("sleep")
            .arg("30")
            .die_with_parent()
            .spawn()
            .unwrap();
        let pid = p.pid() as u32;
        drop(p);
        assert!(!crate::procfs::is_running(pid));
    }
}
