//! The serde model of a topology file, exactly as written (nothing resolved, nothing checked).
//!
//! A topology file is TOML. Everything below is what [`super::Topology::from_str`] accepts;
//! unknown keys are rejected, and every value is checked before any kernel call.
//!
//! ```toml
//! name = "three-tier"               # the topology's name (letters, digits, '-', '_')
//! vars = ["token"]                  # optional: values the runner supplies, used as ${token}
//!
//! [[networks]]                      # one bridge + one subnet (a "tier")
//! name = "frontend"
//! subnet = "172.20.0.0/24"          # IPv4 or IPv6 CIDR; must not overlap another network
//!                                   # (an IPv4 network's interfaces get no IPv6 link-local address;
//!                                   #  IPv6 addresses are added without duplicate address detection)
//! bridge = "br-frontend"            # optional; default "br-<name>" (shortened if needed), <= 15 bytes
//! mtu = 1500                        # optional; bytes, default: kernel default (1500)
//!
//! [[networks]]
//! name = "backend"
//! subnet = "172.21.0.0/24"
//!
//! [[nodes]]                         # one network namespace
//! name = "gateway"
//! interfaces = [{ network = "frontend", address = "172.20.0.10" }]
//! # address is optional: omitted, it is allocated deterministically (lowest free host address)
//! sysctls = { "net.ipv4.tcp_syncookies" = "1" }   # optional, set inside the node
//!
//! [[nodes]]
//! name = "product-1"
//! interfaces = [{ network = "backend" }]            # gets 172.21.0.2 (the router has .1)
//!
//! [router]                          # optional forwarding namespace; the policy is enforced here
//! name = "router"                   # default "router"
//! networks = ["frontend", "backend"]
//! addresses = { frontend = "172.20.0.1" }  # optional; default: first host address (.1)
//! # Every node on one of these networks gets "default via <router address on that network>".
//!
//! [[vxlans]]                        # stretch a network's bridge over a UDP underlay
//! name = "vx-backend"               # interface name, <= 15 bytes
//! network = "backend"               # the bridge it joins (always in the fabric namespace)
//! vni = 42                          # 1..=16777215
//! local = "10.0.0.1"                # optional underlay source address
//! remote = "10.0.0.2"               # exactly one of remote (unicast) / group (multicast)
//! port = 4789                       # optional UDP port, default 4789
//! # dev = "br-frontend"             # optional underlay device (required with group)
//! underlay = "fabric"               # where the VXLAN's UDP socket lives (default "fabric"):
//! #   "fabric": the fabric namespace; `dev` must be one of its bridges.
//! #   "host":   the namespace apply runs in (the machine's root namespace; on a VM guest,
//! #             the guest's), e.g. dev = "eth0": the device is created there and moved
//! #             into the fabric namespace in the same message, so its socket stays on
//! #             the real network. `dev` must exist there (checked at apply time).
//!
//! [[impairments]]                   # netem on a node's interface
//! node = "product-1"
//! network = "backend"               # which of the node's interfaces
//! delay_ms = 50                     # optional, milliseconds
//! jitter_ms = 5                     # optional, milliseconds (needs delay_ms)
//! loss_percent = 1.5                # optional, 0..=100
//! rate_kbit = 10000                 # optional, kbit/s
//!
//! [[policy]]                        # allow-list; everything else crossing the router is dropped
//! from = "frontend"                 # a network name or a node name
//! to = "backend"                    # a network name or a node name
//! proto = "tcp"                     # tcp | udp | icmp | any (default any)
//! ports = [8500, 8001, "9000-9010"] # destination ports (tcp/udp only); empty = all ports
//!
//! [host]                            # lab mode only: a veth from the host to the router
//! subnet = "172.29.0.0/30"          # host gets the first host address, the router the second
//! ifname = "nk-lab"                 # optional host-side name; default derived from the run name
//! allow = [{ to = "gateway", proto = "tcp", ports = [3000] }]
//!
//! [[services]]                      # a process on a node (see topology/service.rs)
//! name = "gateway"
//! node = "gateway"                  # or nodes = ["a", "b"]: one instance per listed node
//! command = ["ecomm", "gateway", "--listen", "${self.listen}", "--token", "${token}",
//!   "--product", "${services.product.addresses}"]   # placeholders resolve to declared values
//! env = { RUST_LOG = "info" }       # optional; values may hold placeholders
//! port = 3000                       # optional main port, on the node's address
//! ports = { admin = 3001 }          # optional named ports (${self.ports.admin})
//! ready = { probe = "http", path = "/readyz" }   # or { probe = "tcp" }; port = "admin" picks one
//! depends_on = ["product"]          # started after these are ready; no cycles
//!
//! [[services]]
//! name = "product"
//! nodes = ["product-1"]
//! command = ["ecomm", "product", "--listen", "${self.listen}", "--db", "${self.data.database}"]
//! port = 8001
//! data = { database = "products" }  # declared once; others read ${services.product.data.database}
//! ```
//!
//! A placement spreads the nodes over hosts; the overlay is derived from it (see
//! topology/placement.rs), so a file with a placement has no `[[vxlans]]`:
//!
//! ```toml
//! name = "two-hosts"
//!
//! [[networks]]
//! name = "backend"
//! subnet = "172.21.0.0/24"
//!
//! [[nodes]]
//! name = "api"
//! interfaces = [{ network = "backend" }]
//!
//! [[nodes]]
//! name = "db"
//! interfaces = [{ network = "backend" }]
//!
//! [placement]                       # host -> nodes (and the router); every one exactly once
//! alpha = ["api"]
//! beta = ["db"]
//!
//! [underlay]                        # how the hosts reach each other
//! dev = "eth0"                      # the device on every host (required with group)
//! port = 4789                       # optional UDP port, default 4789
//! vni_base = 100                    # optional; network i (file order) gets VNI vni_base + i
//! # group = "239.1.1.0"             # multicast base (network i: group + i), for > 2 hosts
//! hosts = { alpha = "192.168.100.11", beta = "192.168.100.12" }  # unicast endpoints
//! ```
//!
//! `netns-kit apply --host alpha FILE` builds alpha's share ([`super::Topology::for_host`]).
//!
//! Every example above is checked by `tests/validate_spec_doc.rs`.
//!
//! Replies to allowed connections are always allowed (conntrack established/related).
//! Traffic between two nodes on the same network never crosses the router, so a policy
//! between a network and itself is documentation only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A whole topology file as written.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    /// The topology's name (letters, digits, '-', '_').
    pub name: String,
    /// Names of the values the runner supplies at start (secrets, data directories),
    /// referenced in services as `${name}` and left unresolved by validation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<String>,
    /// Networks: one bridge and one subnet each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkSpec>,
    /// Nodes: one namespace each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeSpec>,
    /// The optional forwarding namespace that enforces the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterSpec>,
    /// VXLAN links stretching a network's bridge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vxlans: Vec<VxlanSpec>,
    /// Netem impairments on node interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub impairments: Vec<ImpairmentSpec>,
    /// Allow-list rules compiled into the router's forward chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy: Vec<PolicySpec>,
    /// The lab-mode link from the host's root namespace to the router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostSpec>,
    /// The processes that run on the nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
    /// Which host carries which nodes (host name → node names); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<BTreeMap<String, Vec<String>>>,
    /// How the hosts of the placement reach each other (the derived overlay's underlay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay: Option<UnderlaySpec>,
}

/// One service: a program run on one node, or one instance per listed node.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// The service's name (what `${services.<name>.…}` and `depends_on` refer to).
    pub name: String,
    /// The node it runs on; exactly one of `node` / `nodes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// One instance per listed node (each instance is named after its node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Program and arguments; `${…}` placeholders resolve to declared values.
    pub command: Vec<String>,
    /// Environment variables; values may hold placeholders.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The main port it listens on (on its node's address), 1..=65535; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 65_535)))]
    pub port: Option<i64>,
    /// Further named ports (e.g. `dns = 8600`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "schema", schemars(extend("additionalProperties" = { "type": "integer", "minimum": 1, "maximum": 65_535 })))]
    pub ports: BTreeMap<String, i64>,
    /// How the runner knows an instance is ready; default: no probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<ReadySpec>,
    /// Services that must be ready before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Named values declared once (e.g. `database = "products"`), for `${self.data.<key>}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

/// A readiness probe as written.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadySpec {
    /// "tcp" (a connection is accepted) or "http" (GET `path` answers 200).
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["tcp", "http"])))]
    pub probe: String,
    /// The HTTP path (http only), starting with '/'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A name from `ports`; default: the main `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

/// The underlay of a placement: how the hosts reach each other.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnderlaySpec {
    /// The device on every host the overlay is bound to, e.g. "eth0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// UDP port of the overlay; default 4789.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// VNI of the first network; network `i` (file order) gets `vni_base + i`. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni_base: Option<u32>,
    /// Multicast base: network `i` uses group `group + i`. Without it the overlay is
    /// unicast, which joins exactly two hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Underlay address of each host (host name → address), the VXLAN's local/remote.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, String>,
}

/// One network: a bridge in the fabric namespace and a subnet.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// The network's (tier's) name.
    pub name: String,
    /// The subnet in CIDR notation, e.g. "172.20.0.0/24".
    pub subnet: String,
    /// Bridge interface name; default "br-<name>" (shortened deterministically to 15 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// MTU in bytes for the bridge and every veth on it; default: the kernel's (1500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// One node: a namespace with interfaces on networks.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// The node's name (also its namespace key).
    pub name: String,
    /// The node's interfaces, in order (named eth0, eth1, … inside the node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceSpec>,
    /// Sysctls set inside the node (key → value), e.g. "net.ipv4.tcp_syncookies" = "1".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
}

/// One node interface on a network.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceSpec {
    /// The network this interface attaches to.
    pub network: String,
    /// Static address (no prefix; the network's prefix applies); omitted = allocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// The router: a forwarding namespace on several networks.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSpec {
    /// The router's name (its namespace key); default "router".
    #[serde(default = "default_router_name")]
    pub name: String,
    /// The networks the router is attached to.
    pub networks: Vec<String>,
    /// Explicit router addresses per network; default: the subnet's first host address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addresses: BTreeMap<String, String>,
}

fn default_router_name() -> String {
    "router".to_string()
}

/// A VXLAN interface in the fabric namespace, enslaved to a network's bridge.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VxlanSpec {
    /// Interface name (<= 15 bytes).
    pub name: String,
    /// The network whose bridge the VXLAN joins.
    pub network: String,
    /// VXLAN network identifier, 1..=16777215.
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 16_777_215)))]
    pub vni: u32,
    /// Underlay source address; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// Unicast remote endpoint; exactly one of `remote` / `group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Multicast group; exactly one of `remote` / `group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// UDP destination port; default 4789.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Underlay device (required with `group`): with `underlay = "fabric"` one of the
    /// fabric's bridges; with `underlay = "host"` a device of the host namespace (e.g. eth0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Where the VXLAN's UDP socket lives: "fabric" (default) or "host" (the namespace
    /// apply runs in; the device itself is moved into the fabric namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["fabric", "host"])))]
    pub underlay: Option<String>,
}

/// Netem parameters on one node interface.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpairmentSpec {
    /// The node whose interface is impaired.
    pub node: String,
    /// The network that selects which of the node's interfaces.
    pub network: String,
    /// Added delay in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u32>,
    /// Delay jitter in milliseconds (only with a delay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u32>,
    /// Random loss in percent, 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 100)))]
    pub loss_percent: Option<f64>,
    /// Rate limit in kbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_kbit: Option<u64>,
}

impl ImpairmentSpec {
    /// The netem parameters of this impairment.
    pub fn netem(&self) -> Netem {
        Netem {
            delay_ms: self.delay_ms,
            jitter_ms: self.jitter_ms,
            loss_percent: self.loss_percent,
            rate_kbit: self.rate_kbit,
        }
    }
}

/// Netem parameters: plain data, applied by the kernel layer (`tc qdisc … netem`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Netem {
    /// Added delay in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u32>,
    /// Delay jitter in milliseconds (only with a delay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u32>,
    /// Random loss in percent, 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_percent: Option<f64>,
    /// Rate limit in kbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_kbit: Option<u64>,
}

/// One allow-list rule between networks and/or nodes.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Source: a network name or a node name.
    pub from: String,
    /// Destination: a network name or a node name.
    pub to: String,
    /// "tcp", "udp", "icmp" or "any" (default "any").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["tcp", "udp", "icmp", "any"])))]
    pub proto: Option<String>,
    /// Destination ports: numbers or "low-high" ranges; empty = every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
}

/// A port as written: a number, or a "low-high" range string.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortSpec {
    /// A single port, e.g. 8500 (checked to be 1..=65535).
    Number(#[cfg_attr(feature = "schema", schemars(range(min = 1, max = 65_535)))] i64),
    /// A range, e.g. "9000-9010" (or a single port as a string).
    Text(String),
}

/// The lab-mode host link: a veth from the root namespace to the router.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// The link's subnet; the host takes the first host address, the router the second.
    pub subnet: String,
    /// Host-side interface name (<= 15 bytes); default derived from the run's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// What the host may reach (nothing else is forwarded from it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<HostAllowSpec>,
}

/// One thing the host may reach over the host link.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostAllowSpec {
    /// Destination: a network name or a node name.
    pub to: String,
    /// "tcp", "udp", "icmp" or "any" (default "any").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["tcp", "udp", "icmp", "any"])))]
    pub proto: Option<String>,
    /// Destination ports: numbers or "low-high" ranges; empty = every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
}
