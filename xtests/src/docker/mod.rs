//! The stack on Docker: fixtures for the end-to-end tests of the Docker path.
//!
//! - [`images`] builds `ecomm-services:local`, `ecomm-redis:local` and `ecomm-postgres:local`
//!   once per test binary (scripts/docker-images.sh; cached by content hash).
//! - [`containers::ContainerStack`] starts every service as a container through testcontainers.
//! - [`compose::ComposeProject`] and [`swarm::SwarmStack`] run the deploy files
//!   (`ecomm-services/deploy/docker/compose.yml`, `swarm-stack.yml`) under a unique name.
//! - [`generate`] derives those two files from the declaration (`lab compose`, `lab swarm`).
//!
//! Everything created carries the run id (in its name and the label `ecomm.run`); each fixture's
//! `Drop` removes what it created, and [`run::leftovers`] lets a test assert nothing remains.

pub mod api_shim;
pub mod compose;
pub mod containers;
pub mod engine;
pub mod error;
pub mod generate;
pub mod http;
pub mod images;
pub mod run;
pub mod swarm;

pub use engine::docker_ready;
pub use error::DockerError;
