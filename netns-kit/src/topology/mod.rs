//! The declarative topology: a TOML file ([`spec`]) validated into a [`Topology`]
//! (`Topology::from_str`), then resolved per run into a [`Plan`] ([`plan`]) that the kernel layer applies.
//!
//! Everything in this part is pure: no kernel calls. The file format is documented in [`spec`].
//! Applying a plan, and the runs that result, are [`crate::runs`] (re-exported here as
//! `topology::{live, state, status, gc}`).

pub mod alloc;
mod compile;
pub mod error;
pub mod names;
pub mod placement;
pub mod plan;
pub mod policy;
#[cfg(feature = "schema")]
pub mod schema;
pub mod service;
pub mod spec;
pub(crate) mod validate;

// The run side lives in `crate::runs`; these paths keep `netns_kit::topology::live::…` (and
// state, status, gc) working for code written against them.
pub use crate::runs::{gc, live, state, status};

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::Serialize;

pub use error::TopologyError;
pub use placement::{Overlay, Placement};
pub use plan::{Naming, Plan};
pub use service::{Instance, Ready, Service};
pub use spec::{Netem, TopologySpec};

use crate::firewall::{PortRange, Proto};

/// A validated topology: every name, address, reference and port checked; addresses allocated;
/// interface names derived. Build one with [`Topology::from_str`] or [`Topology::from_path`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topology {
    /// The topology's name.
    pub name: String,
    /// Runtime variables the runner supplies (`${name}` in services).
    pub vars: Vec<String>,
    /// Networks in file order.
    pub networks: Vec<Network>,
    /// Nodes in file order.
    pub nodes: Vec<Node>,
    /// The router, if declared.
    pub router: Option<Router>,
    /// VXLAN links.
    pub vxlans: Vec<Vxlan>,
    /// Impairments.
    pub impairments: Vec<Impairment>,
    /// Allow-list rules, resolved to subnets/addresses.
    pub policy: Vec<PolicyRule>,
    /// The lab-mode host link, if declared.
    pub host: Option<Host>,
    /// Services in file order, placeholders resolved.
    pub services: Vec<Service>,
    /// Which host carries which nodes, and the derived overlay; `None` = one host.
    pub placement: Option<Placement>,
}

/// A validated network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Network {
    /// Name.
    pub name: String,
    /// Subnet (host bits clear).
    pub subnet: IpNet,
    /// Bridge interface name in the fabric namespace.
    pub bridge: String,
    /// MTU in bytes; `None` = kernel default.
    pub mtu: Option<u32>,
}

/// A validated node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Name (namespace key).
    pub name: String,
    /// Interfaces in file order.
    pub interfaces: Vec<Interface>,
    /// Sysctls to set inside the node.
    pub sysctls: BTreeMap<String, String>,
}

/// A validated interface of a node or of the router.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interface {
    /// The network it is on.
    pub network: String,
    /// Name inside the owner's namespace (eth0, eth1, …).
    pub ifname: String,
    /// Name of the veth's other end, in the fabric namespace, enslaved to the bridge.
    pub fabric_ifname: String,
    /// The address (explicit or allocated).
    pub address: IpAddr,
    /// True when the address was allocated rather than written in the file.
    pub allocated: bool,
}

/// The validated router.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Router {
    /// Name (namespace key).
    pub name: String,
    /// One interface per network, in the order listed.
    pub interfaces: Vec<Interface>,
    /// True in a host's share ([`Topology::for_host`]) when the router is on another host:
    /// nothing of it is built here, its addresses are only its nodes' default gateways.
    pub remote: bool,
}

/// A validated VXLAN link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vxlan {
    /// Interface name.
    pub name: String,
    /// The network whose bridge it joins.
    pub network: String,
    /// VNI.
    pub vni: u32,
    /// Underlay source.
    pub local: Option<IpAddr>,
    /// Remote or group.
    pub peer: plan::VxlanPeer,
    /// UDP port.
    pub port: u16,
    /// Underlay device.
    pub dev: Option<String>,
    /// Where the underlay lives (fabric or host namespace).
    pub underlay: plan::VxlanUnderlay,
}

/// A validated impairment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Impairment {
    /// The node.
    pub node: String,
    /// The node's interface name.
    pub ifname: String,
    /// The network that interface is on.
    pub network: String,
    /// Parameters.
    pub netem: Netem,
}

/// What a policy endpoint names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Target {
    /// A whole network (its subnet).
    Network(String),
    /// One node (its addresses).
    Node(String),
    /// The host, over the host link (lab mode).
    Host,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Network(n) | Target::Node(n) => f.write_str(n),
            Target::Host => f.write_str("host"),
        }
    }
}

/// A validated allow-list rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyRule {
    /// Source.
    pub from: Target,
    /// Destination.
    pub to: Target,
    /// Protocol.
    pub proto: Proto,
    /// Destination ports (tcp/udp); empty = every port.
    pub ports: Vec<PortRange>,
    /// Source networks/addresses (empty for [`Target::Host`]: matched by interface).
    pub from_nets: Vec<IpNet>,
    /// Destination networks/addresses.
    pub to_nets: Vec<IpNet>,
    /// True when every source and destination share one network: never crosses the router.
    pub same_network: bool,
}

/// The validated host link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Host {
    /// The link subnet.
    pub subnet: IpNet,
    /// Host-side address.
    pub host_addr: IpAddr,
    /// Router-side address.
    pub router_addr: IpAddr,
    /// Explicit host-side interface name, if given.
    pub ifname: Option<String>,
    /// What the host may reach (compiled into the router's forward chain).
    pub allow: Vec<PolicyRule>,
}

impl Topology {
    /// Parses and fully validates topology TOML text.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Result<Topology, TopologyError> {
        let spec = validate::parse(text)?;
        validate::validate(&spec)
    }

    /// Reads, parses and fully validates a topology file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Topology, TopologyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| TopologyError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Topology::from_str(&text)
    }

    /// Validates an already parsed spec.
    pub fn from_spec(spec: &TopologySpec) -> Result<Topology, TopologyError> {
        validate::validate(spec)
    }

    /// The network called `name`.
    pub fn network(&self, name: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.name == name)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Services in start order: by stage, file order within a stage.
    pub fn start_order(&self) -> Vec<&Service> {
        let mut order: Vec<&Service> = self.services.iter().collect();
        order.sort_by_key(|s| s.stage);
        order
    }

    /// The spec this topology is equivalent to, with allocated addresses written out.
    pub fn to_spec(&self) -> TopologySpec {
        validate::to_spec(self)
    }

    /// TOML text that parses back into an equal topology.
    pub fn to_toml(&self) -> String {
        // Serializing our own plain data cannot fail (no maps with non-string keys).
        toml::to_string(&self.to_spec()).unwrap_or_default()
    }
}

impl std::str::FromStr for Topology {
    type Err = TopologyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Topology::from_str(s)
    }
}
