//! The image builder's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while locking, fetching, assembling or writing images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a named path failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the builder was doing.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A host tool (apt-cache, apt-get, curl, dpkg-deb) could not be run or failed.
    #[error("host tool `{tool}` failed: {detail}")]
    Tool {
        /// The command line.
        tool: String,
        /// Exit status and the tail of its stderr.
        detail: String,
    },
    /// The lock file does not parse or lacks a field.
    #[error("lock file {path}: {detail}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A package the lock pins is no longer served by the archive.
    #[error("{package}={version} pinned in images.lock is no longer served by the archive: run `just lock`")]
    NotServed {
        /// The package name.
        package: String,
        /// The pinned version.
        version: String,
    },
    /// A package is not in the lock (a role asks for a package nobody locked).
    #[error("package `{0}` is not in images.lock: run `just lock`")]
    NotLocked(String),
    /// The archive's Packages index has no candidate for a package a role needs.
    #[error("package `{package}` has no installable candidate in the apt lists ({detail})")]
    NoCandidate {
        /// The package name.
        package: String,
        /// What apt-cache said.
        detail: String,
    },
    /// A Packages stanza lacks a field the lock records.
    #[error("package `{package}`: its index stanza has no `{field}` field")]
    MissingField {
        /// The package name.
        package: String,
        /// The missing field.
        field: &'static str,
    },
    /// A fetched file's SHA-256 differs from the lock's.
    #[error(
        "{package}: SHA-256 of the fetched {path} is {actual}, images.lock expects {expected}"
    )]
    HashMismatch {
        /// The package name and version.
        package: String,
        /// The fetched file.
        path: PathBuf,
        /// The lock's digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// No mirror for an archive is configured in /etc/apt/sources*.
    #[error("no `{archive}` mirror (a URI ending in /{archive}) in /etc/apt/sources.list*")]
    NoMirror {
        /// "debian" or "debian-security".
        archive: String,
    },
    /// An ELF file is malformed or of an unexpected class.
    #[error("ELF {path}: {detail}")]
    Elf {
        /// The file (inside the unpacked tree).
        path: String,
        /// What was expected.
        detail: String,
    },
    /// A file a role needs is in none of its packages.
    #[error("role {role}: `{path}` is in none of its packages ({packages})")]
    NotInTree {
        /// The role.
        role: String,
        /// The absolute path inside the image.
        path: String,
        /// The packages searched.
        packages: String,
    },
    /// A shared library a binary needs is in none of the role's packages.
    #[error("role {role}: `{binary}` needs `{library}`, which none of its packages ship (searched {dirs})")]
    LibraryMissing {
        /// The role.
        role: String,
        /// The binary or library that needs it.
        binary: String,
        /// The DT_NEEDED name.
        library: String,
        /// The directories searched.
        dirs: String,
    },
    /// A binary imports a function of a stubbed library that the stub does not define.
    #[error("role {role}: `{binary}` imports {missing} from `{library}`, which its stub does not define (images/src/stub.rs)")]
    StubTooSmall {
        /// The role.
        role: String,
        /// The importing binary.
        binary: String,
        /// The stubbed soname.
        library: String,
        /// The names not covered.
        missing: String,
    },
    /// A path does not fit the archive format.
    #[error("{format}: entry `{path}` {detail}")]
    Format {
        /// "tar" or "cpio".
        format: &'static str,
        /// The entry's path.
        path: String,
        /// Why it does not fit.
        detail: String,
    },
    /// A command-line argument is wrong.
    #[error("{0}")]
    Usage(String),
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

/// The builder's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
