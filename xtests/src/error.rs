//! The lab's one error type: every message names the component, value or file involved.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong bringing the lab up, running it, or tearing it down.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A system call or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, e.g. "open /run/netns/lab-gateway".
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Code run on a helper thread panicked.
    #[error("{what} panicked")]
    Panicked {
        /// Which closure.
        what: String,
    },
    /// A TCP connection from inside a namespace failed.
    #[error("connect from namespace {ns} to {addr}: {source}")]
    Connect {
        /// The namespace the connection started in.
        ns: String,
        /// The destination.
        addr: SocketAddr,
        /// The underlying error (refused, timed out, unreachable…).
        #[source]
        source: std::io::Error,
    },
    /// An HTTP exchange failed or the answer could not be parsed.
    #[error("HTTP {method} http://{addr}{path}: {reason}")]
    Http {
        /// The request method.
        method: String,
        /// The server address.
        addr: SocketAddr,
        /// The request path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A component did not become ready in time.
    #[error("{component} not ready after {waited:?}: {last}\n--- last lines of {log} ---\n{tail}")]
    NotReady {
        /// The component, e.g. "product-1".
        component: String,
        /// How long the lab waited.
        waited: Duration,
        /// The last readiness failure seen.
        last: String,
        /// The component's log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// A component's process exited while the lab needed it running.
    #[error("{component} exited ({status})\n--- last lines of {log} ---\n{tail}")]
    Exited {
        /// The component.
        component: String,
        /// How it exited.
        status: String,
        /// The component's log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// An external command (initdb, psql, dot…) failed.
    #[error("{command} failed ({status}): {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of its output.
        output: String,
    },
    /// A component name the lab does not know.
    #[error("unknown component {name:?}; expected one of: {known}")]
    UnknownComponent {
        /// What was asked for.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
    /// The lab is down, or some of its components are not ready.
    #[error("{0}")]
    Unhealthy(String),
    /// Building a pinned image or its root filesystem failed (`lab up --pinned`).
    #[error("pinned images: {0}")]
    Image(String),
    /// The topology layer (netns-kit) failed.
    #[error("topology: {0}")]
    Topology(String),
    /// The lab needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and does not have it.
    #[error("the lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); run it with sudo")]
    NotRoot,
    /// Bad input from the command line or a state file.
    #[error("invalid {what}: {value:?}; expected {expected}")]
    Invalid {
        /// What was being parsed, e.g. "instance number".
        what: String,
        /// The offending value.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
}

impl LabError {
    /// Shorthand for an [`LabError::Io`] with a description.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
