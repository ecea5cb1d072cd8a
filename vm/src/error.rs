//! The driver's one error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while preparing, booting, driving or tearing down VMs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a named path failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the driver was doing.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A host tool (apt-get, dpkg-deb, qemu) could not be run or failed.
    #[error("host tool `{tool}` failed: {detail}")]
    Tool {
        /// The command line, shortened.
        tool: String,
        /// Exit status and the tail of its stderr.
        detail: String,
    },
    /// The kernel package does not hold what the driver expects.
    #[error("kernel package {package}: {detail}")]
    Kernel {
        /// The pinned package name and version.
        package: String,
        /// What was missing or malformed.
        detail: String,
    },
    /// A module named in the wanted list (or a dependency) is not in the package.
    #[error("kernel module `{0}` not found in the package's /lib/modules tree")]
    ModuleMissing(String),
    /// A VM did not get a ready agent before its deadline.
    #[error("vm {vm}: agent not ready after {after:?} ({accel})")]
    BootTimeout {
        /// The VM's name.
        vm: String,
        /// How long the driver waited.
        after: Duration,
        /// The accelerator in use.
        accel: String,
    },
    /// The agent connection broke or answered something unexpected.
    #[error("vm {vm}: agent: {detail}")]
    Agent {
        /// The VM's name.
        vm: String,
        /// What happened.
        detail: String,
    },
    /// A QMP command failed.
    #[error("vm {vm}: qmp `{command}`: {detail}")]
    Qmp {
        /// The VM's name.
        vm: String,
        /// The QMP command.
        command: String,
        /// The error QEMU returned, or the I/O failure.
        detail: String,
    },
    /// A guest command exceeded its timeout.
    #[error("vm {vm}: `{cmd}` timed out after {after:?}")]
    CommandTimeout {
        /// The VM's name.
        vm: String,
        /// The command.
        cmd: String,
        /// The timeout.
        after: Duration,
    },
    /// A cluster description is inconsistent.
    #[error("cluster spec: {0}")]
    Spec(String),
    /// A name did not match any VM or segment of the cluster.
    #[error("no {kind} named `{name}` (have: {have})")]
    UnknownName {
        /// "vm" or "segment".
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The names that exist.
        have: String,
    },
    /// `VM_ACCEL` holds something other than `tcg` or `kvm`.
    #[error("VM_ACCEL={0:?}: expected `tcg` or `kvm`")]
    BadAccel(String),
    /// The requested accelerator cannot boot a guest here.
    #[error("accelerator unavailable: {0}")]
    AccelUnavailable(String),
    /// The image builder failed (lock, fetch, closure, output).
    #[error("images: {0}")]
    Image(#[from] images::Error),
    /// Something the driver needs (qemu, the kernel cache) is not available on this host.
    #[error("capability missing: {0}")]
    Missing(String),
}

impl Error {
    /// Wraps an I/O error with what was being done and on which path.
    pub fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }
}

/// The driver's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
