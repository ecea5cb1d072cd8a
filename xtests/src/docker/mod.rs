//! The stack on Docker: fixtures for the end-to-end tests of the Docker path.
//!
//! - [`images`] builds `ecomm-services:local`, `ecomm-redis:local` and `ecomm-postgres:local`
//!   once per test binary (scripts/docker-images.sh; cached by content hash).
//! - [`containers::ContainerStack`] starts every service as a container through testcontainers.
//! - [`swarm::SwarmStack`] runs the deploy file `ecomm-services/deploy/docker/swarm-stack.yml`
//!   under a unique name.
//! - [`deployment::ComposeDeployment`] is the Compose stack as a [`crate::deployment::Deployment`]:
//!   one container per declared node and a router, the tier policy applied in their namespaces.
//! - [`generate`] derives those two files from the declaration (`lab compose`, `lab swarm`).
//! - [`tiers`] keeps the declared tier subnets to one deployment at a time on the host, and off
//!   subnets a host route or another Docker network already holds.
//!
//! Everything created carries the run id (in its name and the label `ecomm.run`); each fixture's
//! `Drop` removes what it created, and [`run::leftovers`] lets a test assert nothing remains.

pub mod api_shim;
pub mod containers;
pub mod deployment;
pub mod engine;
pub mod error;
pub mod generate;
pub mod host_load;
pub mod http;
pub mod images;
pub mod run;
pub mod swarm;
pub mod tiers;

pub use engine::{compose_ready, docker_ready};
pub use error::DockerError;
