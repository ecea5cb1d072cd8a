//! The kernel layer's error type: every failure names the object and the operation.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while talking to the kernel or the tools netns-kit drives.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation failed.
    #[error("{op} {what}: {source}")]
    Io {
        /// What we were doing (e.g. "create namespace", "open").
        op: &'static str,
        /// The object (a path, a namespace name, ...).
        what: String,
        /// The operating-system error.
        #[source]
        source: io::Error,
    },
    /// The kernel rejected a netlink request.
    #[error("netlink {op} in namespace {ns}: {source}{detail}")]
    Netlink {
        /// The request, described (e.g. "create veth n-gateway (peer eth0)").
        op: String,
        /// The namespace the socket lives in.
        ns: String,
        /// The errno the kernel answered with.
        #[source]
        source: io::Error,
        /// The kernel's extended-ack text as " (kernel: ...)", or empty.
        detail: String,
    },
    /// A netlink answer could not be decoded.
    #[error("netlink answer in namespace {ns} could not be decoded: {detail}")]
    NetlinkDecode {
        /// The namespace the socket lives in.
        ns: String,
        /// What was wrong.
        detail: String,
    },
    /// A helper program (`nft`, `tc`) exited with a failure.
    #[error("`{program}` in namespace {ns} failed ({status}): {stderr}")]
    Tool {
        /// The program.
        program: String,
        /// The namespace it ran in.
        ns: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// A namespace, run or node was not found.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// What kind of object ("namespace", "run", "node").
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A name given to the kernel layer is not acceptable.
    #[error("invalid {kind} {value:?}: expected {expected}")]
    Invalid {
        /// What kind of value.
        kind: &'static str,
        /// The value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The caller lacks CAP_SYS_ADMIN/CAP_NET_ADMIN.
    #[error("netns-kit needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN): {0}")]
    NotPrivileged(String),
    /// A state file could not be read or written.
    #[error("state file {path}: {detail}")]
    State {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The running kernel lacks a feature (e.g. netem: CONFIG_NET_SCH_NETEM).
    #[error("the running kernel does not support {feature}: {detail}")]
    Unsupported {
        /// The feature, with the kernel option that provides it.
        feature: &'static str,
        /// What the tool or kernel said.
        detail: String,
    },
    /// Another process holds the lock of run `name` (an `apply` or `destroy` of it is
    /// running).
    #[error("run {name:?} is busy: {detail}")]
    Busy {
        /// The run name.
        name: String,
        /// Who holds it.
        detail: String,
    },
    /// A failure injected on purpose by a test (`ApplyOptions::fail_after`).
    #[error("failure injected after {0} apply steps")]
    Injected(usize),
    /// A helper thread panicked.
    #[error("a namespace worker thread panicked while {0}")]
    ThreadPanicked(&'static str),
}

impl Error {
    /// An [`Error::Io`] for `op` on `what`.
    pub fn io(op: &'static str, what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            op,
            what: what.into(),
            source,
        }
    }

    /// The OS error number, when the failure came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::Netlink { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Result with the kernel layer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
