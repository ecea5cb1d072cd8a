//! netns-kit: typed, leak-proof network namespaces and a declarative topology.

pub mod firewall;
pub mod topology;
