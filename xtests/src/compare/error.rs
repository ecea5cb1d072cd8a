//! The one error type of `lab bench-compare`.

use crate::docker::DockerError;
use crate::error::LabError;

/// What can stop a comparison run (teardown still runs after every one of them).
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The netns lab (bringing it up, its state, its namespaces) failed.
    #[error("netns lab: {0}")]
    Lab(#[from] LabError),
    /// The Docker side (images, Compose, Swarm) failed.
    #[error("docker: {0}")]
    Docker(#[from] DockerError),
    /// The Compose deployment (starting it, wiring it) failed.
    #[error("{0}")]
    Deploy(#[from] crate::deployment::DeployError),
    /// A tool (ab, wrk, ip) failed or printed something unreadable.
    #[error("`{command}` failed ({status}): {output}")]
    Tool {
        /// The command line.
        command: String,
        /// Its exit status, or why it could not run.
        status: String,
        /// The tail of its output.
        output: String,
    },
    /// The sides do not serve the same thing, so their numbers would not compare.
    #[error("{side} serves {got}, expected {expected} (what the netns lab serves)")]
    Mismatch {
        /// The side that differs ("compose", "swarm").
        side: String,
        /// What it served.
        got: String,
        /// What the lab served.
        expected: String,
    },
    /// Bad input: an option or a file.
    #[error("invalid {what}: {value:?}; expected {expected}")]
    Invalid {
        /// What was being read.
        what: String,
        /// The offending value.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// Ctrl-C (SIGINT) or SIGTERM arrived; everything was torn down.
    #[error("interrupted; everything this run created was removed")]
    Interrupted,
    /// Teardown left something behind (listed one per line).
    #[error("teardown left behind:\n{0}")]
    Leftovers(String),
}

impl From<CompareError> for LabError {
    /// The `lab` binary's error: bad input stays bad input (exit 2), the rest is a failure.
    fn from(e: CompareError) -> Self {
        match e {
            CompareError::Lab(e) => e,
            CompareError::Invalid {
                what,
                value,
                expected,
            } => LabError::Invalid {
                what,
                value,
                expected,
            },
            other => LabError::Unhealthy(format!("bench-compare: {other}")),
        }
    }
}
