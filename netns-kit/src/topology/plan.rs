//! The resolved plan: everything the kernel layer needs to build one run of a topology,
//! with nothing left to decide. Produced by [`Plan::for_run`] from a validated [`Topology`].
//!
//! Namespaces are referred to by key: [`FABRIC`] (holds every bridge and the bridge-side veth
//! ends), the router's name, or a node's name. Interface names are final (<= 15 bytes) and
//! unique within their namespace. The kernel layer brings `lo` and every listed link up.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::firewall::Ruleset;
use crate::topology::Netem;

/// Key of the fabric namespace that holds the bridges.
pub const FABRIC: &str = "fabric";

/// Key used for the host's root namespace in [`HostLinkPlan`] (lab mode only).
pub const HOST: &str = "host";

/// How the run's namespaces are named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Naming {
    /// Held by file descriptor only (tests): no /run/netns entries, no host link.
    Anonymous,
    /// Named `<prefix>-<key>` under /run/netns (the lab, the CLI); the host link is planned.
    Named {
        /// The run's name, e.g. "lab"; namespaces become "lab-gateway", "lab-fabric", ….
        prefix: String,
    },
}

/// A fully validated, resolved topology for one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The topology's name (from the file).
    pub topology: String,
    /// The run id every kernel object carries.
    pub run_id: String,
    /// How namespaces are named.
    pub naming: Naming,
    /// Namespaces to create, fabric first, then the router, then nodes in file order.
    pub namespaces: Vec<NsPlan>,
    /// Bridges (all in the fabric namespace).
    pub bridges: Vec<BridgePlan>,
    /// Veth pairs, each end created directly in its namespace.
    pub veths: Vec<VethPlan>,
    /// VXLAN interfaces (in the fabric namespace, enslaved to a bridge).
    pub vxlans: Vec<VxlanPlan>,
    /// Addresses to add.
    pub addresses: Vec<AddressPlan>,
    /// Routes to add (after addresses).
    pub routes: Vec<RoutePlan>,
    /// Sysctls to set (before links come up).
    pub sysctls: Vec<SysctlPlan>,
    /// nftables tables to load (one per namespace at most).
    pub firewalls: Vec<FirewallPlan>,
    /// Netem impairments (after links are up).
    pub impairments: Vec<ImpairmentPlan>,
    /// The lab-mode host link (only with [`Naming::Named`] and a `[host]` section).
    pub host_link: Option<HostLinkPlan>,
}

/// What a namespace is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NsRole {
    /// Holds the bridges; nothing runs there.
    Fabric,
    /// Forwards between networks; enforces the policy.
    Router,
    /// A node where services run.
    Node,
}

/// One namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NsPlan {
    /// "fabric", the router's name, or a node's name.
    pub key: String,
    /// What it is for.
    pub role: NsRole,
    /// Its /run/netns name when named; `None` when held by fd only.
    pub name: Option<String>,
}

/// One bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BridgePlan {
    /// Namespace key (always [`FABRIC`]).
    pub ns: String,
    /// Interface name.
    pub ifname: String,
    /// The network it carries.
    pub network: String,
    /// MTU in bytes; `None` = kernel default.
    pub mtu: Option<u32>,
    /// Whether the network is IPv6. On an IPv4 network no interface gets an IPv6
    /// link-local address (addrgenmode none, as Docker does on IPv4-only networks): no
    /// DAD, MLD or router solicitations flooded to every port of the bridge.
    pub ipv6: bool,
}

/// One end of a veth pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Namespace key ([`HOST`] for the root namespace).
    pub ns: String,
    /// Interface name inside that namespace.
    pub ifname: String,
    /// Bridge to enslave this end to (same namespace), if any.
    pub master: Option<String>,
}

/// A veth pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VethPlan {
    /// The node/router end (`a`) …
    pub a: Endpoint,
    /// … and the fabric (bridge) end (`b`).
    pub b: Endpoint,
    /// MTU in bytes for both ends; `None` = kernel default.
    pub mtu: Option<u32>,
    /// Whether the network is IPv6 (see [`BridgePlan::ipv6`]).
    pub ipv6: bool,
}

/// Where a VXLAN sends its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VxlanPeer {
    /// Unicast remote endpoint.
    Remote(IpAddr),
    /// Multicast group.
    Group(IpAddr),
}

/// Which namespace a VXLAN's underlay (its UDP socket and `dev`) lives in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VxlanUnderlay {
    /// The fabric namespace: `dev` is one of its bridges (default).
    #[default]
    Fabric,
    /// The namespace apply runs in ([`crate::runs::live::ApplyOptions::underlay_netns`],
    /// default the caller's): the device is created there and moved into the fabric in
    /// the same netlink message, so its socket stays bound to the real underlay.
    Host,
}

impl VxlanUnderlay {
    /// The name used in topology files ("fabric" / "host").
    pub fn as_str(&self) -> &'static str {
        match self {
            VxlanUnderlay::Fabric => "fabric",
            VxlanUnderlay::Host => "host",
        }
    }
}

/// A VXLAN interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VxlanPlan {
    /// Namespace key the interface ends up in (always [`FABRIC`]).
    pub ns: String,
    /// Where its underlay lives (where it is created and `dev` is resolved).
    pub underlay: VxlanUnderlay,
    /// Interface name.
    pub ifname: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// Underlay source address.
    pub local: Option<IpAddr>,
    /// Remote or group.
    pub peer: VxlanPeer,
    /// UDP destination port (default 4789).
    pub port: u16,
    /// Underlay device name, in the underlay's namespace.
    pub dev: Option<String>,
    /// Bridge to enslave it to.
    pub master: Option<String>,
    /// MTU in bytes; `None` = kernel default.
    pub mtu: Option<u32>,
}

/// An address on an interface (address + the network's prefix length).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressPlan {
    /// Namespace key.
    pub ns: String,
    /// Interface name.
    pub ifname: String,
    /// Address with prefix, e.g. 172.20.0.10/24.
    pub addr: IpNet,
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoutePlan {
    /// Namespace key.
    pub ns: String,
    /// Destination; 0.0.0.0/0 (or ::/0) for the default route.
    pub dest: IpNet,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output interface.
    pub dev: Option<String>,
    /// Metric; `None` = kernel default.
    pub metric: Option<u32>,
}

impl RoutePlan {
    /// The destination as the kernel layer takes it: `None` for a default route, else the
    /// network and its prefix length.
    pub fn dest_prefix(&self) -> Option<(IpAddr, u8)> {
        (self.dest.prefix_len() != 0).then(|| (self.dest.network(), self.dest.prefix_len()))
    }
}

/// A sysctl to set inside a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlPlan {
    /// Namespace key.
    pub ns: String,
    /// Dotted key, e.g. "net.ipv4.ip_forward".
    pub key: String,
    /// Value as written to /proc/sys.
    pub value: String,
}

/// An nftables table for one namespace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirewallPlan {
    /// Namespace key.
    pub ns: String,
    /// The table.
    pub ruleset: Ruleset,
}

/// Netem on one interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImpairmentPlan {
    /// Namespace key.
    pub ns: String,
    /// Interface name.
    pub ifname: String,
    /// Parameters.
    pub netem: Netem,
}

/// The lab-mode link between the host's root namespace and the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostLinkPlan {
    /// Interface name in the root namespace (unique per run name).
    pub host_ifname: String,
    /// Address on the host side, e.g. 172.29.0.1/30.
    pub host_addr: IpNet,
    /// Router's namespace key.
    pub peer_ns: String,
    /// Interface name inside the router.
    pub peer_ifname: String,
    /// Address on the router side, e.g. 172.29.0.2/30.
    pub peer_addr: IpNet,
    /// Routes the host needs (in the root namespace), e.g. 172.20.0.0/24 via 172.29.0.2.
    pub host_routes: Vec<RoutePlan>,
}

impl Plan {
    /// The namespace plan for `key`, if any.
    pub fn namespace(&self, key: &str) -> Option<&NsPlan> {
        self.namespaces.iter().find(|n| n.key == key)
    }
}

use super::{Topology, TopologyError};

impl Plan {
    /// Resolves `topology` for one run: `run_id` tags every object, `naming` decides whether
    /// namespaces get /run/netns names (and whether the host link is planned). Fails only on
    /// a bad run id or run name.
    pub fn for_run(
        topology: &Topology,
        run_id: &str,
        naming: Naming,
    ) -> Result<Plan, TopologyError> {
        super::compile::compile(topology, run_id, naming)
    }
}
pub use super::compile::RUN_NAME_MAX;
