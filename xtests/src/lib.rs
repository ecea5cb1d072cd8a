//! The three-tier lab: the whole e-commerce stack running in network namespaces built by
//! netns-kit, with real PostgreSQL and Redis in the database tier.
//!
//! - [`Lab`] is the test fixture: the stack with a unique run id, no host link, torn down on drop.
//! - The `lab` binary is `just up` / `down` / `status` / `logs` / `scale` / `backup` / `restore`.

pub mod backend;
pub mod datastores;
pub mod deployment;
pub mod docker;
pub mod error;
pub mod footprint;
pub mod http;
pub mod ns;
pub mod pinned;
pub mod process;
pub mod scenarios;

pub mod component;
pub mod services;
pub mod stack;
pub mod topology_file;
pub use error::LabError;
pub mod cli;
pub mod compare;
pub mod lab;
pub mod live;
pub mod state;

pub use lab::{privileged, Lab, LabBuilder};
