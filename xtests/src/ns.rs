//! A handle on one network namespace the lab works in: an open file descriptor plus a name.
//!
//! The lab never enters a namespace on a shared thread: sockets are created on a short-lived
//! dedicated thread that joins the namespace (a socket stays bound to the namespace it was
//! created in, so it can then be used from anywhere), and processes join it between fork and
//! exec (see [`crate::process`]).

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

use crate::error::LabError;

/// The outcome of a TCP connection attempt from inside a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOutcome {
    /// The handshake completed: something listens and the path is open.
    Reachable,
    /// A reset came back: the path is open but nothing listens.
    Refused,
    /// No answer before the deadline: dropped on the way (e.g. by the router's policy).
    TimedOut,
}

/// One network namespace, held open by file descriptor (cheap to clone).
#[derive(Debug, Clone)]
pub struct NsHandle {
    name: String,
    fd: Arc<OwnedFd>,
}

impl NsHandle {
    /// Wraps an already open namespace descriptor (e.g. a dup of a netns-kit `Netns`).
    pub fn from_fd(name: impl Into<String>, fd: OwnedFd) -> Self {
        Self {
            name: name.into(),
            fd: Arc::new(fd),
        }
    }

    /// Opens a namespace file: `/run/netns/<name>` for named namespaces, or `/proc/<pid>/ns/net`.
    pub fn open(name: impl Into<String>, path: &Path) -> Result<Self, LabError> {
        let file = File::open(path).map_err(|source| LabError::Io {
            what: format!("open namespace file {}", path.display()),
            source,
        })?;
        Ok(Self::from_fd(name, OwnedFd::from(file)))
    }

    /// The name this handle was given (the topology node name, e.g. "gateway").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's descriptor, for joining it in a child before exec.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The namespace's inode number: its identity in /proc/*/ns/net.
    pub fn inode(&self) -> Result<u64, LabError> {
        let stat = nix::sys::stat::fstat(self.fd.as_fd()).map_err(|e| LabError::Io {
            what: format!("fstat namespace {}", self.name),
            source: e.into(),
        })?;
        Ok(stat.st_ino)
    }

    /// Runs `f` on a fresh thread that has joined this namespace, and returns its result.
    ///
    /// The thread ends when `f` returns, so no other code ever runs in the namespace by accident.
    pub fn run<R, F>(&self, f: F) -> Result<R, LabError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let fd = Arc::clone(&self.fd);
        let name = self.name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("in-ns-{name}"))
            .spawn(move || -> Result<R, LabError> {
                setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| LabError::Io {
                    what: format!("setns into namespace {name}"),
                    source: e.into(),
                })?;
                Ok(f())
            })
            .map_err(|source| LabError::Io {
                what: format!("spawn a thread for namespace {}", self.name),
                source,
            })?;
        thread.join().map_err(|_| LabError::Panicked {
            what: format!("a closure run inside namespace {}", self.name),
        })?
    }

    /// Opens a TCP connection to `addr` from inside this namespace within `timeout`.
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> Result<TcpStream, LabError> {
        let ns = self.name.clone();
        self.run(move || TcpStream::connect_timeout(&addr, timeout))?
            .map_err(|source| LabError::Connect { ns, addr, source })
    }

    /// Tries a TCP connection to `addr` from inside this namespace, waiting at most `deadline`.
    ///
    /// "No route" and other errors are errors, not outcomes: they mean the topology is wrong.
    pub fn probe_tcp(&self, addr: SocketAddr, deadline: Duration) -> Result<TcpOutcome, LabError> {
        match self.connect(addr, deadline) {
            Ok(_) => Ok(TcpOutcome::Reachable),
            Err(LabError::Connect { source, .. })
                if source.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                Ok(TcpOutcome::Refused)
            }
            Err(LabError::Connect { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                Ok(TcpOutcome::TimedOut)
            }
            Err(e) => Err(e),
        }
    }
}
