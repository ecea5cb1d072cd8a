//! Parsing and full validation of a topology spec into a [`Topology`]; the first problem found
//! is returned as a typed [`TopologyError`] naming the field path.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::alloc::{allocate, reserved_kind};
use super::error::TopologyError;
use super::names;
use super::plan::{VxlanPeer, VxlanUnderlay};
use super::spec::{
    HostAllowSpec, HostSpec, ImpairmentSpec, InterfaceSpec, NetworkSpec, NodeSpec, PolicySpec,
    PortSpec, RouterSpec, TopologySpec, VxlanSpec,
};
use super::{
    Host, Impairment, Interface, Network, Node, PolicyRule, Router, Target, Topology, Vxlan,
};
use crate::firewall::{PortRange, Proto};

/// Namespace keys that nodes and the router may not take.
pub const RESERVED_KEYS: [&str; 2] = [super::plan::FABRIC, super::plan::HOST];

/// Largest VXLAN network identifier (24 bits).
pub const VNI_MAX: u32 = 16_777_215;

/// Parses TOML text into a spec; syntax and shape errors carry line and column.
pub fn parse(text: &str) -> Result<TopologySpec, TopologyError> {
    toml::from_str::<TopologySpec>(text).map_err(|e| {
        let (line, column) = match e.span() {
            Some(span) => line_col(text, span.start),
            None => (1, 1),
        };
        let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        TopologyError::Syntax {
            line,
            column,
            message,
        }
    })
}

/// 1-based line and column (in characters) of byte offset `at` in `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Tracks first uses of names/addresses for duplicate detection.
struct Seen<K: Ord> {
    first: BTreeMap<K, String>,
}

impl<K: Ord> Seen<K> {
    fn new() -> Self {
        Seen {
            first: BTreeMap::new(),
        }
    }
    /// Records `key` at `field`; returns the earlier field if it was already there.
    fn insert(&mut self, key: K, field: &str) -> Option<String> {
        if let Some(prev) = self.first.get(&key) {
            return Some(prev.clone());
        }
        self.first.insert(key, field.to_string());
        None
    }
}

fn check_name(field: &str, value: &str) -> Result<(), TopologyError> {
    if names::is_valid_name(value) {
        Ok(())
    } else {
        Err(TopologyError::InvalidName {
            field: field.to_string(),
            value: value.to_string(),
            max: names::NAME_MAX,
        })
    }
}

fn check_ifname(field: &str, value: &str) -> Result<(), TopologyError> {
    if names::is_valid_ifname(value) {
        Ok(())
    } else {
        Err(TopologyError::BadIfname {
            field: field.to_string(),
            value: value.to_string(),
        })
    }
}

fn parse_cidr(field: &str, value: &str) -> Result<IpNet, TopologyError> {
    let bad = || TopologyError::BadCidr {
        field: field.to_string(),
        value: value.to_string(),
    };
    let net: IpNet = value.trim().parse().map_err(|_| bad())?;
    if net.trunc() != net || value.trim() != value {
        return Err(bad());
    }
    Ok(net)
}

fn parse_addr(field: &str, value: &str) -> Result<IpAddr, TopologyError> {
    value.parse().map_err(|_| TopologyError::BadAddress {
        field: field.to_string(),
        value: value.to_string(),
    })
}

/// Parses an address that must be a host address of `net` (named `network`).
fn parse_host_addr(
    field: &str,
    value: &str,
    network: &str,
    net: &IpNet,
) -> Result<IpAddr, TopologyError> {
    let addr = parse_addr(field, value)?;
    if !net.contains(&addr) {
        return Err(TopologyError::AddressOutsideSubnet {
            field: field.to_string(),
            value: addr.to_string(),
            network: network.to_string(),
            subnet: net.to_string(),
        });
    }
    if let Some(kind) = reserved_kind(net, addr) {
        return Err(TopologyError::ReservedAddress {
            field: field.to_string(),
            value: addr.to_string(),
            kind,
            subnet: net.to_string(),
        });
    }
    Ok(addr)
}

fn parse_proto(field: &str, value: Option<&str>) -> Result<Proto, TopologyError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("any") | Some("all") => Ok(Proto::Any),
        Some("tcp") => Ok(Proto::Tcp),
        Some("udp") => Ok(Proto::Udp),
        Some("icmp") => Ok(Proto::Icmp),
        Some(_) => Err(TopologyError::BadProto {
            field: field.to_string(),
            value: value.unwrap_or_default().to_string(),
        }),
    }
}

/// Parses one port spec: 1..=65535, or "low-high" with low <= high.
pub fn parse_port(field: &str, spec: &PortSpec) -> Result<PortRange, TopologyError> {
    let bad = |v: String| TopologyError::BadPort {
        field: field.to_string(),
        value: v,
    };
    let one = |n: i64, raw: &str| -> Result<u16, TopologyError> {
        match u16::try_from(n) {
            Ok(p) if p != 0 => Ok(p),
            _ => Err(bad(raw.to_string())),
        }
    };
    match spec {
        PortSpec::Number(n) => {
            let p = one(*n, &n.to_string())?;
            Ok(PortRange::single(p))
        }
        PortSpec::Text(t) => {
            let num = |s: &str| -> Result<u16, TopologyError> {
                let n: i64 = s.trim().parse().map_err(|_| bad(t.clone()))?;
                one(n, t)
            };
            match t.split_once('-') {
                None => Ok(PortRange::single(num(t)?)),
                Some((a, b)) => {
                    let (first, last) = (num(a)?, num(b)?);
                    if first > last {
                        return Err(bad(t.clone()));
                    }
                    Ok(PortRange { first, last })
                }
            }
        }
    }
}

fn parse_ports(
    field: &str,
    proto: Proto,
    proto_text: Option<&str>,
    ports: &[PortSpec],
) -> Result<Vec<PortRange>, TopologyError> {
    let mut out = Vec::with_capacity(ports.len());
    for (k, p) in ports.iter().enumerate() {
        out.push(parse_port(&format!("{field}.ports[{k}]"), p)?);
    }
    if !out.is_empty() && !matches!(proto, Proto::Tcp | Proto::Udp) {
        return Err(TopologyError::PortsWithoutTransport {
            field: format!("{field}.proto"),
            value: proto_text.unwrap_or("any").to_string(),
        });
    }
    Ok(out)
}

fn host_net(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

/// Everything known about declared names while validating.
struct Ctx<'a> {
    networks: Vec<Network>,
    node_names: Vec<&'a str>,
}

impl Ctx<'_> {
    fn network(&self, name: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.name == name)
    }
    fn known_networks(&self) -> String {
        self.networks
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
    fn unknown_network(&self, field: String, value: &str) -> TopologyError {
        TopologyError::UnknownNetwork {
            field,
            value: value.to_string(),
            known: self.known_networks(),
        }
    }
}

/// Validates a parsed spec completely and resolves it into a [`Topology`].
pub fn validate(spec: &TopologySpec) -> Result<Topology, TopologyError> {
    check_name("name", &spec.name)?;

    // Networks.
    let mut names_seen: Seen<String> = Seen::new();
    let mut networks: Vec<Network> = Vec::new();
    for (i, n) in spec.networks.iter().enumerate() {
        networks.push(validate_network(i, n, &networks, &mut names_seen)?);
    }

    // Names of the router and nodes: unique among themselves, distinct from networks.
    let mut ns_seen: Seen<String> = Seen::new();
    if let Some(r) = &spec.router {
        check_ns_name("router.name", &r.name, &mut ns_seen, &names_seen)?;
    }
    for (i, node) in spec.nodes.iter().enumerate() {
        check_ns_name(
            &format!("nodes[{i}].name"),
            &node.name,
            &mut ns_seen,
            &names_seen,
        )?;
    }
    let ctx = Ctx {
        node_names: spec.nodes.iter().map(|n| n.name.as_str()).collect(),
        networks,
    };

    // Addresses: explicit first (router, then nodes), then defaults and allocation.
    let mut addr_seen: Seen<IpAddr> = Seen::new();
    let mut router_pending: Vec<(usize, String, Option<IpAddr>)> = Vec::new();
    if let Some(r) = &spec.router {
        router_pending = router_explicit(r, &ctx, &mut addr_seen)?;
    }
    let mut node_pending: Vec<Vec<(String, Option<IpAddr>)>> = Vec::new();
    for (i, node) in spec.nodes.iter().enumerate() {
        node_pending.push(node_explicit(i, node, &ctx, &mut addr_seen)?);
    }
    let mut taken: BTreeSet<IpAddr> = addr_seen.first.keys().copied().collect();

    let router = match &spec.router {
        None => None,
        Some(r) => {
            let mut interfaces = Vec::new();
            for (k, network, explicit) in router_pending {
                let field = format!("router.networks[{k}]");
                let net = ctx.network(&network).map(|n| n.subnet);
                let (address, allocated) = match (explicit, net) {
                    (Some(a), _) => (a, false),
                    (None, Some(subnet)) => {
                        let a = super::alloc::first_host(&subnet).ok_or_else(|| {
                            TopologyError::SubnetExhausted {
                                field: field.clone(),
                                subnet: subnet.to_string(),
                            }
                        })?;
                        if let Some(first) = addr_seen.insert(a, &format!("{field} (default .1)")) {
                            return Err(TopologyError::DuplicateAddress {
                                field: first,
                                value: a.to_string(),
                                first: format!("{field} (the router's default address)"),
                            });
                        }
                        taken.insert(a);
                        (a, true)
                    }
                    (None, None) => return Err(ctx.unknown_network(field, &network)),
                };
                interfaces.push(Interface {
                    ifname: names::node_ifname(k),
                    fabric_ifname: names::fabric_ifname(&r.name, k),
                    network,
                    address,
                    allocated,
                });
            }
            Some(Router {
                name: r.name.clone(),
                interfaces,
                remote: false,
            })
        }
    };

    let mut nodes = Vec::new();
    for (i, (node, pending)) in spec.nodes.iter().zip(node_pending).enumerate() {
        let mut interfaces = Vec::new();
        for (k, (network, explicit)) in pending.into_iter().enumerate() {
            let field = format!("nodes[{i}].interfaces[{k}].address");
            let (address, allocated) = match explicit {
                Some(a) => (a, false),
                None => {
                    let subnet = ctx
                        .network(&network)
                        .map(|n| n.subnet)
                        .ok_or_else(|| ctx.unknown_network(field.clone(), &network))?;
                    let a = allocate(&subnet, &taken).ok_or_else(|| {
                        TopologyError::SubnetExhausted {
                            field: field.clone(),
                            subnet: subnet.to_string(),
                        }
                    })?;
                    taken.insert(a);
                    (a, true)
                }
            };
            interfaces.push(Interface {
                ifname: names::node_ifname(k),
                fabric_ifname: names::fabric_ifname(&node.name, k),
                network,
                address,
                allocated,
            });
        }
        for (key, value) in &node.sysctls {
            check_sysctl(&format!("nodes[{i}].sysctls.\"{key}\""), key, value)?;
        }
        nodes.push(Node {
            name: node.name.clone(),
            interfaces,
            sysctls: node.sysctls.clone(),
        });
    }

    // VXLANs.
    let mut vxlans = Vec::new();
    for (i, v) in spec.vxlans.iter().enumerate() {
        vxlans.push(validate_vxlan(i, v, &ctx)?);
    }

    // Interface names in the fabric namespace must not collide.
    check_fabric_names(&ctx.networks, router.as_ref(), &nodes, &vxlans, spec)?;

    // Impairments.
    let mut impairments: Vec<Impairment> = Vec::new();
    for (i, imp) in spec.impairments.iter().enumerate() {
        let one = validate_impairment(i, imp, &nodes, &ctx)?;
        if let Some(j) = impairments
            .iter()
            .position(|o| o.node == one.node && o.ifname == one.ifname)
        {
            return Err(TopologyError::Conflict {
                field: format!("impairments[{i}]"),
                message: format!(
                    "node {:?} on network {:?} is already impaired by impairments[{j}]: expected one impairment per interface",
                    one.node, one.network
                ),
            });
        }
        impairments.push(one);
    }

    // Policy.
    let mut policy = Vec::new();
    for (i, p) in spec.policy.iter().enumerate() {
        policy.push(validate_policy(i, p, &ctx, &nodes, router.as_ref())?);
    }

    // Host link.
    let host = match &spec.host {
        None => None,
        Some(h) => Some(validate_host(h, &ctx, &nodes, router.as_ref())?),
    };

    // Services, then the placement and its derived overlay.
    let services = super::service::validate_services(&spec.services, &nodes, &spec.vars)?;
    let placement =
        super::placement::validate_placement(spec, &ctx.networks, &nodes, router.as_ref())?;

    Ok(Topology {
        name: spec.name.clone(),
        vars: spec.vars.clone(),
        networks: ctx.networks,
        nodes,
        router,
        vxlans,
        impairments,
        policy,
        host,
        services,
        placement,
    })
}

fn validate_network(
    i: usize,
    n: &NetworkSpec,
    earlier: &[Network],
    names_seen: &mut Seen<String>,
) -> Result<Network, TopologyError> {
    let field = format!("networks[{i}].name");
    check_name(&field, &n.name)?;
    if let Some(first) = names_seen.insert(n.name.clone(), &field) {
        return Err(TopologyError::DuplicateName {
            field,
            value: n.name.clone(),
            first,
        });
    }
    let sfield = format!("networks[{i}].subnet");
    let subnet = parse_cidr(&sfield, &n.subnet)?;
    for (j, other) in earlier.iter().enumerate() {
        if overlaps(&subnet, &other.subnet) {
            return Err(TopologyError::OverlappingSubnets {
                field: sfield,
                value: subnet.to_string(),
                other_field: format!("networks[{j}].subnet"),
                other: other.subnet.to_string(),
            });
        }
    }
    let bridge = match &n.bridge {
        Some(b) => {
            check_ifname(&format!("networks[{i}].bridge"), b)?;
            b.clone()
        }
        None => names::bridge_ifname(&n.name),
    };
    if let Some(mtu) = n.mtu {
        check_mtu(&format!("networks[{i}].mtu"), mtu)?;
    }
    Ok(Network {
        name: n.name.clone(),
        subnet,
        bridge,
        mtu: n.mtu,
    })
}

/// Smallest and largest MTU the kernel accepts on a bridge/veth (bytes).
pub const MTU_RANGE: (u32, u32) = (68, 65535);

fn check_mtu(field: &str, mtu: u32) -> Result<(), TopologyError> {
    if mtu < MTU_RANGE.0 || mtu > MTU_RANGE.1 {
        return Err(TopologyError::OutOfRange {
            field: field.to_string(),
            value: mtu.to_string(),
            expected: format!("{}..={} bytes", MTU_RANGE.0, MTU_RANGE.1),
        });
    }
    Ok(())
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check_ns_name(
    field: &str,
    name: &str,
    ns_seen: &mut Seen<String>,
    network_names: &Seen<String>,
) -> Result<(), TopologyError> {
    check_name(field, name)?;
    if RESERVED_KEYS.contains(&name) {
        return Err(TopologyError::ReservedName {
            field: field.to_string(),
            value: name.to_string(),
            reason: format!(
                "{:?} and {:?} are netns-kit's own namespace keys",
                "fabric", "host"
            ),
        });
    }
    if let Some(net_field) = network_names.first.get(name) {
        return Err(TopologyError::ReservedName {
            field: field.to_string(),
            value: name.to_string(),
            reason: format!("{net_field} is a network of that name, so policy rules naming it would be ambiguous"),
        });
    }
    if let Some(first) = ns_seen.insert(name.to_string(), field) {
        return Err(TopologyError::DuplicateName {
            field: field.to_string(),
            value: name.to_string(),
            first,
        });
    }
    Ok(())
}

/// Checks the router's networks and explicit addresses; returns (index, network, explicit).
fn router_explicit(
    r: &RouterSpec,
    ctx: &Ctx<'_>,
    addr_seen: &mut Seen<IpAddr>,
) -> Result<Vec<(usize, String, Option<IpAddr>)>, TopologyError> {
    let mut on: Seen<String> = Seen::new();
    for (k, net) in r.networks.iter().enumerate() {
        let field = format!("router.networks[{k}]");
        if ctx.network(net).is_none() {
            return Err(ctx.unknown_network(field, net));
        }
        if let Some(first) = on.insert(net.clone(), &field) {
            return Err(TopologyError::DuplicateName {
                field,
                value: net.clone(),
                first,
            });
        }
    }
    for key in r.addresses.keys() {
        if !r.networks.contains(key) {
            return Err(TopologyError::UnknownNetwork {
                field: format!("router.addresses.{key}"),
                value: key.clone(),
                known: r.networks.join(", "),
            });
        }
    }
    let mut out = Vec::new();
    for (k, net) in r.networks.iter().enumerate() {
        let explicit = match r.addresses.get(net) {
            None => None,
            Some(text) => {
                let field = format!("router.addresses.{net}");
                let subnet = ctx.network(net).map(|n| n.subnet);
                let Some(subnet) = subnet else {
                    return Err(ctx.unknown_network(field, net));
                };
                let a = parse_host_addr(&field, text, net, &subnet)?;
                if let Some(first) = addr_seen.insert(a, &field) {
                    return Err(TopologyError::DuplicateAddress {
                        field,
                        value: a.to_string(),
                        first,
                    });
                }
                Some(a)
            }
        };
        out.push((k, net.clone(), explicit));
    }
    Ok(out)
}

/// Checks a node's interfaces and explicit addresses; returns (network, explicit) per interface.
fn node_explicit(
    i: usize,
    node: &NodeSpec,
    ctx: &Ctx<'_>,
    addr_seen: &mut Seen<IpAddr>,
) -> Result<Vec<(String, Option<IpAddr>)>, TopologyError> {
    let mut on: Seen<String> = Seen::new();
    let mut out = Vec::new();
    for (k, InterfaceSpec { network, address }) in node.interfaces.iter().enumerate() {
        let nfield = format!("nodes[{i}].interfaces[{k}].network");
        let Some(net) = ctx.network(network) else {
            return Err(ctx.unknown_network(nfield, network));
        };
        if let Some(first) = on.insert(network.clone(), &nfield) {
            return Err(TopologyError::DuplicateName {
                field: nfield,
                value: network.clone(),
                first,
            });
        }
        let explicit = match address {
            None => None,
            Some(text) => {
                let field = format!("nodes[{i}].interfaces[{k}].address");
                let a = parse_host_addr(&field, text, network, &net.subnet)?;
                if let Some(first) = addr_seen.insert(a, &field) {
                    return Err(TopologyError::DuplicateAddress {
                        field,
                        value: a.to_string(),
                        first,
                    });
                }
                Some(a)
            }
        };
        out.push((network.clone(), explicit));
    }
    Ok(out)
}

fn check_sysctl(field: &str, key: &str, value: &str) -> Result<(), TopologyError> {
    let key_ok = !key.is_empty()
        && key.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if !key_ok {
        return Err(TopologyError::BadSysctl {
            field: field.to_string(),
            value: key.to_string(),
        });
    }
    if value.is_empty() || value.contains(['\n', '\0']) {
        return Err(TopologyError::OutOfRange {
            field: field.to_string(),
            value: format!("{value:?}"),
            expected: "a non-empty single-line value".to_string(),
        });
    }
    Ok(())
}

fn validate_vxlan(i: usize, v: &VxlanSpec, ctx: &Ctx<'_>) -> Result<Vxlan, TopologyError> {
    let f = |s: &str| format!("vxlans[{i}].{s}");
    check_ifname(&f("name"), &v.name)?;
    if ctx.network(&v.network).is_none() {
        return Err(ctx.unknown_network(f("network"), &v.network));
    }
    if v.vni == 0 || v.vni > VNI_MAX {
        return Err(TopologyError::OutOfRange {
            field: f("vni"),
            value: v.vni.to_string(),
            expected: format!("1..={VNI_MAX}"),
        });
    }
    let local = v
        .local
        .as_deref()
        .map(|a| parse_addr(&f("local"), a))
        .transpose()?;
    let peer = match (&v.remote, &v.group) {
        (Some(r), None) => {
            let a = parse_addr(&f("remote"), r)?;
            if a.is_multicast() {
                return Err(TopologyError::Conflict {
                    field: f("remote"),
                    message: format!("{a} is a multicast address: use `group` for multicast"),
                });
            }
            VxlanPeer::Remote(a)
        }
        (None, Some(g)) => {
            let a = parse_addr(&f("group"), g)?;
            if !a.is_multicast() {
                return Err(TopologyError::Conflict {
                    field: f("group"),
                    message: format!("{a} is not a multicast address: use `remote` for unicast"),
                });
            }
            if v.dev.is_none() {
                return Err(TopologyError::Conflict {
                    field: f("dev"),
                    message: "a multicast `group` needs an underlay `dev`".to_string(),
                });
            }
            VxlanPeer::Group(a)
        }
        _ => {
            return Err(TopologyError::Conflict {
                field: f("remote"),
                message: "expected exactly one of `remote` (unicast) or `group` (multicast)"
                    .to_string(),
            })
        }
    };
    let peer_addr = match peer {
        VxlanPeer::Remote(a) | VxlanPeer::Group(a) => a,
    };
    if let Some(l) = local {
        if l.is_ipv4() != peer_addr.is_ipv4() {
            return Err(TopologyError::Conflict {
                field: f("local"),
                message: format!("{l} and {peer_addr} are of different address families"),
            });
        }
    }
    let port = v.port.unwrap_or(4789);
    if port == 0 {
        return Err(TopologyError::BadPort {
            field: f("port"),
            value: "0".to_string(),
        });
    }
    let underlay = match v.underlay.as_deref() {
        None | Some("fabric") => VxlanUnderlay::Fabric,
        Some("host") => VxlanUnderlay::Host,
        Some(other) => {
            return Err(TopologyError::Conflict {
                field: f("underlay"),
                message: format!(
                    "{other:?} is not an underlay: expected \"fabric\" (the VXLAN's socket in the fabric namespace, dev a fabric bridge) or \"host\" (its socket in the namespace apply runs in, dev e.g. \"eth0\")"
                ),
            })
        }
    };
    if let Some(d) = &v.dev {
        check_ifname(&f("dev"), d)?;
        // A fabric-underlay VXLAN is created in the fabric namespace, where the only
        // devices are bridges (and the veth ends netns-kit names itself). A host-underlay
        // dev can only be resolved at apply time.
        if underlay == VxlanUnderlay::Fabric && !ctx.networks.iter().any(|n| &n.bridge == d) {
            let bridges: Vec<&str> = ctx.networks.iter().map(|n| n.bridge.as_str()).collect();
            return Err(TopologyError::Conflict {
                field: f("dev"),
                message: format!(
                    "{d:?} is not a device of the fabric namespace, where the VXLAN is created: expected one of the bridges [{}], or underlay = \"host\" for a device of the host namespace",
                    bridges.join(", ")
                ),
            });
        }
    }
    Ok(Vxlan {
        name: v.name.clone(),
        network: v.network.clone(),
        vni: v.vni,
        local,
        peer,
        port,
        dev: v.dev.clone(),
        underlay,
    })
}

fn check_fabric_names(
    networks: &[Network],
    router: Option<&Router>,
    nodes: &[Node],
    vxlans: &[Vxlan],
    spec: &TopologySpec,
) -> Result<(), TopologyError> {
    let mut seen: Seen<String> = Seen::new();
    let mut add = |name: &str, field: String| -> Result<(), TopologyError> {
        match seen.insert(name.to_string(), &field) {
            None => Ok(()),
            Some(first) => Err(TopologyError::IfnameCollision {
                field,
                value: name.to_string(),
                ns: super::plan::FABRIC.to_string(),
                first,
            }),
        }
    };
    for (i, n) in networks.iter().enumerate() {
        let field = if spec
            .networks
            .get(i)
            .and_then(|s| s.bridge.as_ref())
            .is_some()
        {
            format!("networks[{i}].bridge")
        } else {
            format!("networks[{i}].name (bridge {:?})", n.bridge)
        };
        add(&n.bridge, field)?;
    }
    if let Some(r) = router {
        for (k, itf) in r.interfaces.iter().enumerate() {
            add(
                &itf.fabric_ifname,
                format!("router.networks[{k}] (veth {:?})", itf.fabric_ifname),
            )?;
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        for (k, itf) in node.interfaces.iter().enumerate() {
            add(
                &itf.fabric_ifname,
                format!("nodes[{i}].interfaces[{k}] (veth {:?})", itf.fabric_ifname),
            )?;
        }
    }
    for (i, v) in vxlans.iter().enumerate() {
        add(&v.name, format!("vxlans[{i}].name"))?;
    }
    Ok(())
}

fn validate_impairment(
    i: usize,
    imp: &ImpairmentSpec,
    nodes: &[Node],
    ctx: &Ctx<'_>,
) -> Result<Impairment, TopologyError> {
    let f = |s: &str| format!("impairments[{i}].{s}");
    let Some(node) = nodes.iter().find(|n| n.name == imp.node) else {
        return Err(TopologyError::UnknownNode {
            field: f("node"),
            value: imp.node.clone(),
            known: ctx.node_names.join(", "),
        });
    };
    if ctx.network(&imp.network).is_none() {
        return Err(ctx.unknown_network(f("network"), &imp.network));
    }
    let Some(itf) = node.interfaces.iter().find(|x| x.network == imp.network) else {
        return Err(TopologyError::UnknownNetwork {
            field: f("network"),
            value: imp.network.clone(),
            known: node
                .interfaces
                .iter()
                .map(|x| x.network.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let netem = imp.netem();
    if netem.delay_ms.is_none()
        && netem.jitter_ms.is_none()
        && netem.loss_percent.is_none()
        && netem.rate_kbit.is_none()
    {
        return Err(TopologyError::Conflict {
            field: format!("impairments[{i}]"),
            message: "expected at least one of delay_ms, jitter_ms, loss_percent, rate_kbit"
                .to_string(),
        });
    }
    if netem.jitter_ms.is_some() && netem.delay_ms.is_none() {
        return Err(TopologyError::Conflict {
            field: f("jitter_ms"),
            message: "jitter needs a delay_ms".to_string(),
        });
    }
    if let (Some(d), Some(j)) = (netem.delay_ms, netem.jitter_ms) {
        if j > d {
            return Err(TopologyError::OutOfRange {
                field: f("jitter_ms"),
                value: j.to_string(),
                expected: format!("0..={d} (at most delay_ms)"),
            });
        }
    }
    if let Some(d) = netem.delay_ms {
        if d > DELAY_MAX_MS {
            return Err(TopologyError::OutOfRange {
                field: f("delay_ms"),
                value: d.to_string(),
                expected: format!("0..={DELAY_MAX_MS} milliseconds"),
            });
        }
    }
    if let Some(l) = netem.loss_percent {
        if !(0.0..=100.0).contains(&l) {
            return Err(TopologyError::OutOfRange {
                field: f("loss_percent"),
                value: l.to_string(),
                expected: "0..=100 percent".to_string(),
            });
        }
    }
    if let Some(r) = netem.rate_kbit {
        if r == 0 || r > RATE_MAX_KBIT {
            return Err(TopologyError::OutOfRange {
                field: f("rate_kbit"),
                value: r.to_string(),
                expected: format!("1..={RATE_MAX_KBIT} kbit/s"),
            });
        }
    }
    Ok(Impairment {
        node: node.name.clone(),
        ifname: itf.ifname.clone(),
        network: imp.network.clone(),
        netem,
    })
}

/// Largest netem delay accepted, in milliseconds (one hour).
pub const DELAY_MAX_MS: u32 = 3_600_000;
/// Largest netem rate accepted, in kbit/s (about 4 Tbit/s, netem's 32-bit byte/s limit).
pub const RATE_MAX_KBIT: u64 = 34_359_738;

/// Resolves a policy endpoint name; returns the target, its networks and its nets.
fn resolve_target(
    field: &str,
    name: &str,
    ctx: &Ctx<'_>,
    nodes: &[Node],
) -> Result<(Target, Vec<String>, Vec<IpNet>), TopologyError> {
    if let Some(n) = ctx.network(name) {
        return Ok((
            Target::Network(name.to_string()),
            vec![n.name.clone()],
            vec![n.subnet],
        ));
    }
    if let Some(node) = nodes.iter().find(|n| n.name == name) {
        return Ok((
            Target::Node(name.to_string()),
            node.interfaces.iter().map(|i| i.network.clone()).collect(),
            node.interfaces
                .iter()
                .map(|i| host_net(i.address))
                .collect(),
        ));
    }
    let mut known: Vec<&str> = ctx.networks.iter().map(|n| n.name.as_str()).collect();
    known.extend(ctx.node_names.iter().copied());
    let reason_host = name == "host";
    if reason_host {
        return Err(TopologyError::ReservedName {
            field: field.to_string(),
            value: name.to_string(),
            reason: "the host is reached only through [host] allow = [...]".to_string(),
        });
    }
    Err(TopologyError::UnknownPolicyTarget {
        field: field.to_string(),
        value: name.to_string(),
        known: known.join(", "),
    })
}

fn router_reason(router: Option<&Router>, net: &str) -> Option<String> {
    match router {
        None => Some("there is no [router]".to_string()),
        Some(r) if !r.interfaces.iter().any(|i| i.network == net) => Some(format!(
            "the router is not on network {net:?} (router.networks)"
        )),
        Some(_) => None,
    }
}

fn validate_policy(
    i: usize,
    p: &PolicySpec,
    ctx: &Ctx<'_>,
    nodes: &[Node],
    router: Option<&Router>,
) -> Result<PolicyRule, TopologyError> {
    let field = format!("policy[{i}]");
    let (from, from_networks, from_nets) =
        resolve_target(&format!("{field}.from"), &p.from, ctx, nodes)?;
    let (to, to_networks, to_nets) = resolve_target(&format!("{field}.to"), &p.to, ctx, nodes)?;
    let proto = parse_proto(&format!("{field}.proto"), p.proto.as_deref())?;
    let ports = parse_ports(&field, proto, p.proto.as_deref(), &p.ports)?;
    for fnet in from_networks.iter().filter(|n| !to_networks.contains(n)) {
        for tnet in to_networks.iter().filter(|n| !from_networks.contains(n)) {
            let reason = router_reason(router, fnet).or_else(|| router_reason(router, tnet));
            if let Some(reason) = reason {
                return Err(TopologyError::RouterMissing {
                    field,
                    rule: format!("{:?} -> {:?}", p.from, p.to),
                    from_net: fnet.clone(),
                    to_net: tnet.clone(),
                    reason,
                });
            }
        }
    }
    let same_network = from_networks.len() == 1 && from_networks == to_networks;
    Ok(PolicyRule {
        from,
        to,
        proto,
        ports,
        from_nets,
        to_nets,
        same_network,
    })
}

fn validate_host(
    h: &HostSpec,
    ctx: &Ctx<'_>,
    nodes: &[Node],
    router: Option<&Router>,
) -> Result<Host, TopologyError> {
    let subnet = parse_cidr("host.subnet", &h.subnet)?;
    for (j, other) in ctx.networks.iter().enumerate() {
        if overlaps(&subnet, &other.subnet) {
            return Err(TopologyError::OverlappingSubnets {
                field: "host.subnet".to_string(),
                value: subnet.to_string(),
                other_field: format!("networks[{j}].subnet"),
                other: other.subnet.to_string(),
            });
        }
    }
    if router.is_none() {
        return Err(TopologyError::Conflict {
            field: "host".to_string(),
            message: "the host link attaches to the router: expected a [router] section"
                .to_string(),
        });
    }
    let host_addr = super::alloc::first_host(&subnet);
    let router_addr = host_addr.and_then(|a| allocate(&subnet, &BTreeSet::from([a])));
    let (Some(host_addr), Some(router_addr)) = (host_addr, router_addr) else {
        return Err(TopologyError::SubnetExhausted {
            field: "host.subnet".to_string(),
            subnet: subnet.to_string(),
        });
    };
    if let Some(name) = &h.ifname {
        check_ifname("host.ifname", name)?;
    }
    let mut allow = Vec::new();
    for (k, a) in h.allow.iter().enumerate() {
        allow.push(validate_host_allow(k, a, ctx, nodes, router)?);
    }
    Ok(Host {
        subnet,
        host_addr,
        router_addr,
        ifname: h.ifname.clone(),
        allow,
    })
}

fn validate_host_allow(
    k: usize,
    a: &HostAllowSpec,
    ctx: &Ctx<'_>,
    nodes: &[Node],
    router: Option<&Router>,
) -> Result<PolicyRule, TopologyError> {
    let field = format!("host.allow[{k}]");
    let (to, to_networks, to_nets) = resolve_target(&format!("{field}.to"), &a.to, ctx, nodes)?;
    let proto = parse_proto(&format!("{field}.proto"), a.proto.as_deref())?;
    let ports = parse_ports(&field, proto, a.proto.as_deref(), &a.ports)?;
    for tnet in &to_networks {
        if let Some(reason) = router_reason(router, tnet) {
            return Err(TopologyError::RouterMissing {
                field,
                rule: format!("\"host\" -> {:?}", a.to),
                from_net: "host".to_string(),
                to_net: tnet.clone(),
                reason,
            });
        }
    }
    Ok(PolicyRule {
        from: Target::Host,
        to,
        proto,
        ports,
        from_nets: Vec::new(),
        to_nets,
        same_network: false,
    })
}

/// The spec equivalent to a validated topology (allocated addresses left out, so the
/// round trip re-allocates them identically).
pub fn to_spec(t: &Topology) -> TopologySpec {
    let ports = |ps: &[PortRange]| -> Vec<PortSpec> {
        ps.iter()
            .map(|p| {
                if p.first == p.last {
                    PortSpec::Number(i64::from(p.first))
                } else {
                    PortSpec::Text(p.to_string())
                }
            })
            .collect()
    };
    let proto = |p: Proto| -> Option<String> {
        Some(
            match p {
                Proto::Any => "any",
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
                Proto::Icmp => "icmp",
            }
            .to_string(),
        )
    };
    TopologySpec {
        name: t.name.clone(),
        vars: t.vars.clone(),
        services: t.services.iter().map(service_spec).collect(),
        placement: t.placement.as_ref().map(|p| p.hosts.clone()),
        underlay: t.placement.as_ref().and_then(underlay_spec),
        networks: t
            .networks
            .iter()
            .map(|n| NetworkSpec {
                name: n.name.clone(),
                subnet: n.subnet.to_string(),
                bridge: Some(n.bridge.clone()),
                mtu: n.mtu,
            })
            .collect(),
        nodes: t
            .nodes
            .iter()
            .map(|n| NodeSpec {
                name: n.name.clone(),
                interfaces: n
                    .interfaces
                    .iter()
                    .map(|i| InterfaceSpec {
                        network: i.network.clone(),
                        address: (!i.allocated).then(|| i.address.to_string()),
                    })
                    .collect(),
                sysctls: n.sysctls.clone(),
            })
            .collect(),
        router: t.router.as_ref().map(|r| RouterSpec {
            name: r.name.clone(),
            networks: r.interfaces.iter().map(|i| i.network.clone()).collect(),
            addresses: r
                .interfaces
                .iter()
                .filter(|i| !i.allocated)
                .map(|i| (i.network.clone(), i.address.to_string()))
                .collect(),
        }),
        vxlans: t
            .vxlans
            .iter()
            .map(|v| {
                let (remote, group) = match v.peer {
                    VxlanPeer::Remote(a) => (Some(a.to_string()), None),
                    VxlanPeer::Group(a) => (None, Some(a.to_string())),
                };
                VxlanSpec {
                    name: v.name.clone(),
                    network: v.network.clone(),
                    vni: v.vni,
                    local: v.local.map(|a| a.to_string()),
                    remote,
                    group,
                    port: Some(v.port),
                    dev: v.dev.clone(),
                    underlay: (v.underlay != VxlanUnderlay::Fabric)
                        .then(|| v.underlay.as_str().to_string()),
                }
            })
            .collect(),
        impairments: t
            .impairments
            .iter()
            .map(|i| ImpairmentSpec {
                node: i.node.clone(),
                network: i.network.clone(),
                delay_ms: i.netem.delay_ms,
                jitter_ms: i.netem.jitter_ms,
                loss_percent: i.netem.loss_percent,
                rate_kbit: i.netem.rate_kbit,
            })
            .collect(),
        policy: t
            .policy
            .iter()
            .map(|p| PolicySpec {
                from: p.from.to_string(),
                to: p.to.to_string(),
                proto: proto(p.proto),
                ports: ports(&p.ports),
            })
            .collect(),
        host: t.host.as_ref().map(|h| HostSpec {
            subnet: h.subnet.to_string(),
            ifname: h.ifname.clone(),
            allow: h
                .allow
                .iter()
                .map(|a| HostAllowSpec {
                    to: a.to.to_string(),
                    proto: proto(a.proto),
                    ports: ports(&a.ports),
                })
                .collect(),
        }),
    }
}

fn service_spec(s: &super::Service) -> super::spec::ServiceSpec {
    use super::spec::{ReadySpec, ServiceSpec};
    let nodes: Vec<String> = s.instances.iter().map(|i| i.node.clone()).collect();
    let (node, nodes) = match (s.single, nodes.as_slice()) {
        (true, [one]) => (Some(one.clone()), Vec::new()),
        _ => (None, nodes),
    };
    let port_name = |p: u16| {
        (s.port != Some(p))
            .then(|| {
                s.ports
                    .iter()
                    .find(|(_, x)| **x == p)
                    .map(|(n, _)| n.clone())
            })
            .flatten()
    };
    let ready = match &s.ready {
        super::Ready::None => None,
        super::Ready::Tcp { port } => Some(ReadySpec {
            probe: "tcp".to_string(),
            path: None,
            port: port_name(*port),
        }),
        super::Ready::Http { port, path } => Some(ReadySpec {
            probe: "http".to_string(),
            path: Some(path.clone()),
            port: port_name(*port),
        }),
    };
    ServiceSpec {
        name: s.name.clone(),
        node,
        nodes,
        command: s.command_template.clone(),
        env: s.env_template.clone(),
        port: s.port.map(i64::from),
        ports: s
            .ports
            .iter()
            .map(|(k, v)| (k.clone(), i64::from(*v)))
            .collect(),
        ready,
        depends_on: s.depends_on.clone(),
        data: s.data.clone(),
    }
}

fn underlay_spec(p: &super::Placement) -> Option<super::spec::UnderlaySpec> {
    let u = &p.underlay;
    let spec = super::spec::UnderlaySpec {
        dev: u.dev.clone(),
        port: (u.port != super::placement::VXLAN_PORT).then_some(u.port),
        vni_base: (u.vni_base != super::placement::VNI_BASE).then_some(u.vni_base),
        group: u.group.map(|g| g.to_string()),
        hosts: u
            .addresses
            .iter()
            .map(|(h, a)| (h.clone(), a.to_string()))
            .collect(),
    };
    (spec != super::spec::UnderlaySpec::default()).then_some(spec)
}
