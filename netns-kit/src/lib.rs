//! netns-kit: typed, leak-proof network namespaces and a declarative topology.

pub mod addr;
pub mod error;
pub mod fault;
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
