//! The one error type of the Docker fixtures.

/// What went wrong driving Docker.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// A command (docker, docker-compose, the image script) exited unsuccessfully.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The tail of its output.
        output: String,
    },
    /// A command could not be started at all.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// testcontainers refused or failed a container operation.
    #[error("container {name}: {message}")]
    Container {
        /// The container's name.
        name: String,
        /// testcontainers' message.
        message: String,
    },
    /// A wait ran out before the condition held.
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long, in seconds.
        seconds: u64,
    },
    /// An HTTP exchange with a container failed or was malformed.
    #[error("HTTP {what}: {message}")]
    Http {
        /// The request.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// The declaration (three-tier.toml) lacks what the stack needs, or does not validate.
    #[error("declaration: {0}")]
    Declaration(String),
    /// Building the `ecomm` binary for the image failed.
    #[error("building ecomm: {0}")]
    Build(String),
}
