//! Starting a program inside a namespace, with its output in a log file, and stopping it again.
//!
//! The child joins the namespace between fork and exec (never a thread of ours), becomes the
//! leader of its own session and process group (so the whole tree — e.g. PostgreSQL's backends —
//! is signalled together), optionally drops to an unprivileged user, and carries the lab's run
//! id in its environment (`ECOMM_LAB_RUN`) so a leak check can find every process of a run.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netns_kit::procfs::Stat;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::error::LabError;
use crate::ns::NsHandle;
use crate::pinned::Confine;

/// The environment variable carrying the run id into every process the lab starts.
pub const RUN_ENV: &str = "ECOMM_LAB_RUN";

/// An unprivileged account a process runs as (PostgreSQL refuses to run as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id (also the only supplementary group).
    pub gid: u32,
}

impl RunAs {
    /// Looks an account up by name in the user database.
    pub fn lookup(name: &str) -> Result<Self, LabError> {
        match nix::unistd::User::from_name(name) {
            Ok(Some(user)) => Ok(Self {
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            }),
            Ok(None) => Err(LabError::Invalid {
                what: "user".into(),
                value: name.into(),
                expected: "an existing account (install the Debian package that creates it)".into(),
            }),
            Err(e) => Err(LabError::io(format!("look up user {name}"), e.into())),
        }
    }
}

/// What happens to a started process when the process that started it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Killed (SIGKILL) when the starting thread dies: test fixtures, so nothing outlives a test.
    TiedToParent,
    /// Keeps running after the starter exits: `lab up`, whose processes `lab down` stops.
    Detached,
}

/// A program and its arguments, environment and account: what to start, not where.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The executable (absolute path or a name looked up in PATH).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables (the rest is inherited).
    pub env: Vec<(String, String)>,
    /// Run as this account instead of root; `None` keeps the caller's.
    pub run_as: Option<RunAs>,
    /// Working directory; `None` keeps the caller's.
    pub cwd: Option<PathBuf>,
    /// Run over a pinned image's tree instead of the host's (see [`crate::pinned`]).
    pub confine: Option<Confine>,
}

impl Launch {
    /// A launch of `program` with no arguments.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            run_as: None,
            cwd: None,
            confine: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the program as `account`.
    pub fn run_as(mut self, account: RunAs) -> Self {
        self.run_as = Some(account);
        self
    }

    /// Runs the program over `confine`'s tree (a path without `/` is looked up in the
    /// image's [`crate::pinned::path_in_image`]).
    pub fn confined(mut self, confine: Option<Confine>) -> Self {
        self.confine = confine;
        self
    }

    /// The command line as text, for messages.
    pub fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// Builds the `Command`: joins `ns` (if any) and applies the lifetime and account in the child.
    fn command(
        &self,
        ns: Option<&NsHandle>,
        lifetime: Lifetime,
        run_id: &str,
    ) -> Result<Command, LabError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).env(RUN_ENV, run_id);
        let confine = match &self.confine {
            Some(c) => {
                // The start directory is entered after chroot, by `enter`.
                cmd.env("PATH", crate::pinned::path_in_image());
                Some(c.prepare(self.cwd.as_deref())?)
            }
            None => {
                if let Some(cwd) = &self.cwd {
                    cmd.current_dir(cwd);
                }
                None
            }
        };
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let ns_fd = ns.map(|n| n.fd().as_raw_fd());
        let run_as = self.run_as;
        // SAFETY: the closure runs in the forked child before exec and calls only
        // async-signal-safe system calls (setns, setsid, prctl, getppid, setgroups, setgid,
        // setuid, and for a confined launch those of `Prepared::enter`: unshare, mount,
        // mkdir, chroot, chdir on strings made before the fork) through libc, allocating
        // nothing and taking no locks. `ns_fd` stays open in
        // the child until exec: it is the parent's descriptor, borrowed from an `NsHandle` the
        // caller keeps alive across `spawn`, and it is close-on-exec so the program never sees it.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = ns_fd {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if lifetime == Lifetime::TiedToParent {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::getppid() == 1 {
                        // The parent died before prctl took effect.
                        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                    }
                }
                if let Some(c) = &confine {
                    c.enter()?;
                }
                if let Some(acct) = run_as {
                    let groups = [acct.gid];
                    if libc::setgroups(1, groups.as_ptr()) != 0
                        || libc::setgid(acct.gid) != 0
                        || libc::setuid(acct.uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// Starts the program inside `ns` (or the caller's namespace), output appended to `log`.
    pub fn spawn(
        &self,
        ns: Option<&NsHandle>,
        log: &Path,
        lifetime: Lifetime,
        run_id: &str,
    ) -> Result<Process, LabError> {
        let out = open_log(log)?;
        let err = out
            .try_clone()
            .map_err(|e| LabError::io(format!("duplicate log {}", log.display()), e))?;
        let child = self
            .command(ns, lifetime, run_id)?
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                LabError::io(
                    format!(
                        "start `{}` in namespace {}",
                        self.display(),
                        ns.map_or("(host)", |n| n.name())
                    ),
                    e,
                )
            })?;
        let pid = i32::try_from(child.id()).map_err(|_| LabError::Invalid {
            what: "child pid".into(),
            value: child.id().to_string(),
            expected: "a pid that fits in i32".into(),
        })?;
        let start_time = start_time(pid).unwrap_or(0);
        Ok(Process {
            pid,
            start_time,
            child: Some(child),
        })
    }

    /// Runs the program to completion inside `ns` and returns its stdout (stderr on failure).
    pub fn output(&self, ns: Option<&NsHandle>, run_id: &str) -> Result<String, LabError> {
        let out = self
            .command(ns, Lifetime::TiedToParent, run_id)?
            .stdin(Stdio::null())
            .output()
            .map_err(|e| LabError::io(format!("run `{}`", self.display()), e))?;
        if !out.status.success() {
            let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stdout));
            return Err(LabError::Command {
                command: self.display(),
                status: out.status.to_string(),
                output: last_lines(&text, 20),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs the program to completion inside `ns`, stdin from `input`, stdout into `output`.
    pub fn pipe(
        &self,
        ns: Option<&NsHandle>,
        run_id: &str,
        input: Stdio,
        output: Stdio,
    ) -> Result<(), LabError> {
        let out = self
            .command(ns, Lifetime::TiedToParent, run_id)?
            .stdin(input)
            .stdout(output)
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| LabError::io(format!("run `{}`", self.display()), e))?;
        if !out.status.success() {
            return Err(LabError::Command {
                command: self.display(),
                status: out.status.to_string(),
                output: last_lines(&String::from_utf8_lossy(&out.stderr), 20),
            });
        }
        Ok(())
    }
}

fn open_log(log: &Path) -> Result<File, LabError> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| LabError::io(format!("create log directory {}", dir.display()), e))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| LabError::io(format!("open log {}", log.display()), e))
}

/// A started process (the leader of its own process group).
#[derive(Debug)]
pub struct Process {
    pid: i32,
    start_time: u64,
    child: Option<Child>,
}

impl Process {
    /// Re-attaches to a process started by an earlier `lab up`, if it is still that process.
    pub fn adopt(pid: i32, start_time: u64) -> Option<Self> {
        (start_time != 0 && self::start_time(pid) == Some(start_time)).then_some(Self {
            pid,
            start_time,
            child: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The kernel's start time of the process (clock ticks since boot): with the pid, its identity.
    pub fn start_time(&self) -> u64 {
        self.start_time
    }

    /// True while the process runs (a zombie counts as gone; it is reaped here if it is ours).
    pub fn is_running(&mut self) -> bool {
        if let Some(child) = &mut self.child {
            return matches!(child.try_wait(), Ok(None));
        }
        start_time(self.pid) == Some(self.start_time) && !is_zombie(self.pid)
    }

    /// How the process ended, if it has (only known for processes this lab started).
    pub fn exit_status(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        child.try_wait().ok().flatten().map(|s| s.to_string())
    }

    /// Sends `signal` to the process's whole group.
    pub fn signal(&self, signal: Signal) {
        let _ = killpg(Pid::from_raw(self.pid), signal);
    }

    /// Stops the whole process group: `signal` first, SIGKILL after `grace`; waits until gone.
    pub fn stop(&mut self, signal: Signal, grace: Duration) {
        self.signal(signal);
        let deadline = Instant::now() + grace;
        while self.group_alive() && Instant::now() < deadline {
            let _ = self.is_running();
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.group_alive() {
            self.signal(Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.group_alive() && Instant::now() < deadline {
                let _ = self.is_running();
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if let Some(child) = &mut self.child {
            let _ = child.wait();
        }
    }

    /// Kills the process group at once with SIGKILL (a crash, as the failover test wants it).
    pub fn kill(&mut self) {
        self.stop(Signal::SIGKILL, Duration::ZERO);
    }

    fn group_alive(&mut self) -> bool {
        // The leader may be a zombie of ours: reap it so the group check is accurate.
        let leader = self.is_running();
        leader || kill(Pid::from_raw(-self.pid), None).is_ok() && group_has_live_member(self.pid)
    }
}

/// True if some non-zombie process is still in process group `pgid`.
fn group_has_live_member(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| stat(pid).is_some_and(|s| s.state != 'Z' && s.pgrp == pgid))
}

/// /proc/PID/stat of `pid`, if it exists.
fn stat(pid: i32) -> Option<Stat> {
    Stat::of(u32::try_from(pid).ok()?)
}

/// The start time (field 22 of /proc/PID/stat) of a live process.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// True for a zombie (exited, not yet reaped) or dead process.
pub fn is_zombie(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.is_zombie())
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The last `n` lines of a log file ("(no log yet)" when it does not exist).
pub fn tail_file(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => last_lines(&String::from_utf8_lossy(&bytes), n),
        Err(_) => "(no log yet)".to_string(),
    }
}

/// Every process whose environment carries `ECOMM_LAB_RUN=<run_id>`: a run's leftovers.
pub fn processes_of_run(run_id: &str) -> Vec<i32> {
    let needle = format!("{RUN_ENV}={run_id}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| !is_zombie(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
        })
        .collect()
}

/// Every live (non-zombie) process whose network namespace is one of `inodes`.
pub fn processes_in_namespaces(inodes: &BTreeSet<u64>) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| in_namespaces(*pid, inodes))
        .filter(|pid| !is_zombie(*pid))
        .collect()
}

fn in_namespaces(pid: i32, inodes: &BTreeSet<u64>) -> bool {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .is_ok_and(|m| inodes.contains(&std::os::unix::fs::MetadataExt::ino(&m)))
}

/// Sends `signal` to process `pid` only if it is inside one of `inodes`, without a window
/// for pid reuse: the process is pinned with a pidfd first, its namespace checked, and the
/// signal sent through the pidfd. If `pid` died and was reused by a process elsewhere before
/// the check, the check fails; if it died after, the signal reaches no one (ESRCH).
fn signal_inside(pid: i32, inodes: &BTreeSet<u64>, signal: Signal) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open(2) takes a pid and flags by value, touches no memory of ours, and
    // returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let Ok(fd) = i32::try_from(fd) else {
        return;
    };
    if fd < 0 {
        // Gone already (ESRCH), or a kernel without pidfds (before 5.3): checked kill.
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS)
            && in_namespaces(pid, inodes)
        {
            let _ = kill(Pid::from_raw(pid), signal);
        }
        return;
    }
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nothing else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
    if !in_namespaces(pid, inodes) {
        return;
    }
    // SAFETY: pidfd_send_signal(2) takes our open pidfd, a signal number, a null siginfo
    // (allowed: the kernel fills in what kill(2) would) and flags 0; nothing is written.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
}

/// Stops every process inside the namespaces `inodes`: `signal(pid)` first (`None`: leave it
/// to its parent, e.g. a PostgreSQL backend to its postmaster), SIGKILL to whatever is left
/// after `grace`, then waits (at most 5 s more) until none is left. Returns how many
/// processes were found; an error names those still there. Only processes inside namespaces
/// the caller owns are ever signalled, so a pid reused elsewhere is never touched.
pub fn stop_all_in(
    inodes: &BTreeSet<u64>,
    signal: impl Fn(i32) -> Option<Signal>,
    grace: Duration,
) -> Result<usize, Vec<i32>> {
    let found = processes_in_namespaces(inodes);
    for pid in &found {
        if let Some(signal) = signal(*pid) {
            signal_inside(*pid, inodes, signal);
        }
    }
    let deadline = Instant::now() + grace;
    while !processes_in_namespaces(inodes).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_in_namespaces(inodes);
        if left.is_empty() {
            return Ok(found.len());
        }
        if Instant::now() >= deadline {
            return Err(left);
        }
        for pid in &left {
            signal_inside(*pid, inodes, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_process_outside_the_namespaces_is_never_signalled() {
        let mut bystander = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = i32::try_from(bystander.id()).unwrap();
        // No namespace has this inode number (never a real one: other tests' namespaces live).
        let elsewhere = BTreeSet::from([u64::MAX]);
        assert_eq!(
            stop_all_in(&elsewhere, |_| Some(Signal::SIGKILL), Duration::ZERO),
            Ok(0)
        );
        signal_inside(pid, &elsewhere, Signal::SIGKILL);
        assert!(
            bystander.try_wait().unwrap().is_none(),
            "the bystander runs"
        );
        bystander.kill().unwrap();
        bystander.wait().unwrap();
    }
}
