//! netns-kit: typed, leak-proof network namespaces and a declarative topology.

pub mod addr;
pub mod error;
pub mod firewall;
pub mod graph;
pub mod impair;
pub mod link;
pub mod netlink;
pub mod netns;
pub mod probe;
pub mod route;
pub mod runid;
pub mod sysctl;
pub mod topology;

pub use error::{Error, Result};
pub use firewall::{Ruleset, RulesetError};
pub use netns::Netns;
pub use probe::TcpProbe;
pub use topology::live::{ApplyError, ApplyOptions, LiveTopology};
pub use topology::{Topology, TopologyError};
