//! Placement: which host carries which nodes, the overlay derived from it, and the share of
//! one host ([`Topology::for_host`]).
//!
//! A network whose nodes (or router) sit on more than one host is stretched by one VXLAN per
//! host, all with the same derived name (`vx-<network>`, shortened to 15 bytes), VNI
//! (`underlay.vni_base + index of the network in the file`) and port. With `underlay.group`
//! the VXLAN floods to the multicast group `group + index` (any number of hosts); without it
//! the VXLAN is unicast, which joins exactly two hosts, from one's `underlay.hosts` address
//! to the other's. The VXLANs are created in the namespace apply runs in (the host's root
//! namespace, `underlay = "host"`) on `underlay.dev` and moved into the fabric.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use super::error::TopologyError;
use super::names;
use super::plan::{VxlanPeer, VxlanUnderlay};
use super::spec::TopologySpec;
use super::{Network, Node, Router, Topology, Vxlan};

/// Default VNI of the first network when `underlay.vni_base` is not given.
pub const VNI_BASE: u32 = 100;
/// Default VXLAN UDP port.
pub const VXLAN_PORT: u16 = 4789;

/// A validated placement with its derived overlay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    /// Host → the nodes (and router) it carries, as declared; hosts sorted by name.
    pub hosts: BTreeMap<String, Vec<String>>,
    /// The underlay the overlay runs on.
    pub underlay: Underlay,
    /// One entry per network spanning more than one host, in file order.
    pub overlay: Vec<Overlay>,
}

/// The validated underlay table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Underlay {
    /// The device on every host, e.g. "eth0".
    pub dev: Option<String>,
    /// UDP port.
    pub port: u16,
    /// VNI of the first network.
    pub vni_base: u32,
    /// Multicast base address, if the overlay floods to groups.
    pub group: Option<Ipv4Addr>,
    /// Each host's underlay address (those declared).
    pub addresses: BTreeMap<String, IpAddr>,
}

/// One stretched network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overlay {
    /// The network.
    pub network: String,
    /// The VXLAN interface name on every host.
    pub name: String,
    /// The VNI.
    pub vni: u32,
    /// The hosts it joins, sorted.
    pub hosts: Vec<String>,
    /// The multicast group, or `None` for unicast between the two hosts.
    pub group: Option<IpAddr>,
}

impl Placement {
    /// The host carrying `node` (or the router), if placed.
    pub fn host_of(&self, node: &str) -> Option<&str> {
        self.hosts
            .iter()
            .find(|(_, nodes)| nodes.iter().any(|n| n == node))
            .map(|(h, _)| h.as_str())
    }

    /// The VXLAN host `host` creates for `o` (the caller checked `o.hosts` contains it).
    pub fn vxlan(&self, o: &Overlay, host: &str) -> Vxlan {
        let local = self.underlay.addresses.get(host).copied();
        let peer = match o.group {
            Some(g) => VxlanPeer::Group(g),
            None => {
                let other = o.hosts.iter().find(|h| *h != host);
                let remote = other.and_then(|h| self.underlay.addresses.get(h)).copied();
                // Validation guarantees both unicast addresses exist.
                VxlanPeer::Remote(remote.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
            }
        };
        Vxlan {
            name: o.name.clone(),
            network: o.network.clone(),
            vni: o.vni,
            local,
            peer,
            port: self.underlay.port,
            dev: self.underlay.dev.clone(),
            underlay: VxlanUnderlay::Host,
        }
    }
}

/// Validates `[placement]` and `[underlay]` and derives the overlay.
pub fn validate_placement(
    spec: &TopologySpec,
    networks: &[Network],
    nodes: &[Node],
    router: Option<&Router>,
) -> Result<Option<Placement>, TopologyError> {
    let Some(placed) = &spec.placement else {
        if spec.underlay.is_some() {
            return Err(TopologyError::Conflict {
                field: "underlay".to_string(),
                message: "an [underlay] needs a [placement] of nodes on hosts".to_string(),
            });
        }
        return Ok(None);
    };
    if !spec.vxlans.is_empty() {
        return Err(TopologyError::Conflict {
            field: "vxlans".to_string(),
            message: "with a [placement] the overlay is derived: expected no [[vxlans]]"
                .to_string(),
        });
    }
    let mut known: Vec<&str> = router.iter().map(|r| r.name.as_str()).collect();
    known.extend(nodes.iter().map(|n| n.name.as_str()));
    let mut first: BTreeMap<&str, String> = BTreeMap::new();
    for (host, list) in placed {
        if !names::is_valid_name(host) {
            return Err(TopologyError::InvalidName {
                field: format!("placement.{host}"),
                value: host.clone(),
                max: names::NAME_MAX,
            });
        }
        for (k, n) in list.iter().enumerate() {
            let field = format!("placement.{host}[{k}]");
            if !known.contains(&n.as_str()) {
                return Err(TopologyError::UnknownNode {
                    field,
                    value: n.clone(),
                    known: known.join(", "),
                });
            }
            if let Some(at) = first.get(n.as_str()) {
                return Err(TopologyError::PlacedTwice {
                    field,
                    value: n.clone(),
                    first: at.clone(),
                });
            }
            first.insert(n, field);
        }
    }
    if let Some(missing) = known.iter().find(|n| !first.contains_key(*n)) {
        return Err(TopologyError::Unplaced {
            field: "placement".to_string(),
            value: missing.to_string(),
        });
    }
    let host_list = || placed.keys().cloned().collect::<Vec<_>>().join(", ");

    let u = spec.underlay.clone().unwrap_or_default();
    let mut addresses = BTreeMap::new();
    for (host, a) in &u.hosts {
        let field = format!("underlay.hosts.{host}");
        if !placed.contains_key(host) {
            return Err(TopologyError::UnknownHost {
                field,
                value: host.clone(),
                known: host_list(),
            });
        }
        let addr: IpAddr = a.parse().map_err(|_| TopologyError::BadAddress {
            field,
            value: a.clone(),
        })?;
        addresses.insert(host.clone(), addr);
    }
    let group = match &u.group {
        None => None,
        Some(g) => match g.parse::<Ipv4Addr>() {
            Ok(a) if a.is_multicast() => Some(a),
            _ => {
                return Err(TopologyError::OutOfRange {
                    field: "underlay.group".to_string(),
                    value: g.clone(),
                    expected: "an IPv4 multicast address in 224.0.0.0/4".to_string(),
                })
            }
        },
    };
    if let Some(dev) = &u.dev {
        if !names::is_valid_ifname(dev) {
            return Err(TopologyError::BadIfname {
                field: "underlay.dev".to_string(),
                value: dev.clone(),
            });
        }
    }
    if u.port == Some(0) {
        return Err(TopologyError::BadPort {
            field: "underlay.port".to_string(),
            value: "0".to_string(),
        });
    }
    let vni_base = u.vni_base.unwrap_or(VNI_BASE);
    let last = u64::from(vni_base) + networks.len().saturating_sub(1) as u64;
    if vni_base == 0 || last > u64::from(super::validate::VNI_MAX) {
        return Err(TopologyError::OutOfRange {
            field: "underlay.vni_base".to_string(),
            value: vni_base.to_string(),
            expected: format!(
                "1..={} (one VNI per network: {} networks)",
                u64::from(super::validate::VNI_MAX).saturating_sub(networks.len() as u64) + 1,
                networks.len()
            ),
        });
    }

    let mut overlay = Vec::new();
    for (i, net) in networks.iter().enumerate() {
        let on_net = |name: &str| -> bool {
            let itfs = match router.filter(|r| r.name == name) {
                Some(r) => &r.interfaces,
                None => match nodes.iter().find(|n| n.name == name) {
                    Some(n) => &n.interfaces,
                    None => return false,
                },
            };
            itfs.iter().any(|x| x.network == net.name)
        };
        let hosts: Vec<String> = placed
            .iter()
            .filter(|(_, list)| list.iter().any(|n| on_net(n)))
            .map(|(h, _)| h.clone())
            .collect();
        if hosts.len() < 2 {
            continue;
        }
        let offset = u32::try_from(i).unwrap_or(u32::MAX);
        let g = match group {
            Some(base) => {
                let g = Ipv4Addr::from(u32::from(base).saturating_add(offset));
                if !g.is_multicast() {
                    return Err(TopologyError::OutOfRange {
                        field: "underlay.group".to_string(),
                        value: base.to_string(),
                        expected: format!(
                            "a base leaving room for {} groups inside 224.0.0.0/4",
                            networks.len()
                        ),
                    });
                }
                if u.dev.is_none() {
                    return Err(TopologyError::Conflict {
                        field: "underlay.dev".to_string(),
                        message: "a multicast overlay (underlay.group) needs the device to join the group on, e.g. dev = \"eth0\"".to_string(),
                    });
                }
                Some(IpAddr::V4(g))
            }
            None => {
                if hosts.len() > 2 {
                    return Err(TopologyError::Conflict {
                        field: "underlay.group".to_string(),
                        message: format!(
                            "network {:?} spans {} hosts ({}): a unicast VXLAN joins two; expected a multicast underlay.group",
                            net.name,
                            hosts.len(),
                            hosts.join(", ")
                        ),
                    });
                }
                if let Some(h) = hosts.iter().find(|h| !addresses.contains_key(*h)) {
                    return Err(TopologyError::Conflict {
                        field: format!("underlay.hosts.{h}"),
                        message: format!(
                            "network {:?} spans hosts {}: expected host {h:?}'s underlay address (unicast VXLAN endpoint)",
                            net.name,
                            hosts.join(", ")
                        ),
                    });
                }
                None
            }
        };
        let name = names::derive_ifname("vx-", &net.name);
        if let Some(j) = networks.iter().position(|n| n.bridge == name) {
            return Err(TopologyError::IfnameCollision {
                field: format!("networks[{j}].bridge"),
                value: name,
                ns: super::plan::FABRIC.to_string(),
                first: format!("the derived VXLAN of network {:?}", net.name),
            });
        }
        overlay.push(Overlay {
            network: net.name.clone(),
            name,
            vni: vni_base + offset,
            hosts,
            group: g,
        });
    }
    Ok(Some(Placement {
        hosts: placed.clone(),
        underlay: Underlay {
            dev: u.dev.clone(),
            port: u.port.unwrap_or(VXLAN_PORT),
            vni_base,
            group,
            addresses,
        },
        overlay,
    }))
}

impl Topology {
    /// The share of host `host`: its nodes, the networks they (and a local router) touch, the
    /// derived VXLANs joining those networks to the other hosts, impairments and services of
    /// its nodes; the router, the policy (enforced in the router) and the host link only where
    /// the router is placed. On other hosts the router is kept as `remote`, so its nodes still
    /// get their default routes via its addresses (reached over the overlay).
    pub fn for_host(&self, host: &str) -> Result<Topology, TopologyError> {
        let Some(p) = &self.placement else {
            return Err(TopologyError::Conflict {
                field: "placement".to_string(),
                message: format!(
                    "topology {:?} has no [placement], so there is no share of host {host:?}",
                    self.name
                ),
            });
        };
        let Some(local) = p.hosts.get(host) else {
            return Err(TopologyError::UnknownHost {
                field: "--host".to_string(),
                value: host.to_string(),
                known: p.hosts.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        let local: BTreeSet<&str> = local.iter().map(String::as_str).collect();
        let nodes: Vec<Node> = self
            .nodes
            .iter()
            .filter(|n| local.contains(n.name.as_str()))
            .cloned()
            .collect();
        let router_here = self
            .router
            .as_ref()
            .is_some_and(|r| local.contains(r.name.as_str()));
        let router = self.router.clone().map(|mut r| {
            r.remote = !router_here;
            r
        });
        let mut touched: BTreeSet<&str> = nodes
            .iter()
            .flat_map(|n| n.interfaces.iter().map(|i| i.network.as_str()))
            .collect();
        if let (true, Some(r)) = (router_here, &self.router) {
            touched.extend(r.interfaces.iter().map(|i| i.network.as_str()));
        }
        let networks = self
            .networks
            .iter()
            .filter(|n| touched.contains(n.name.as_str()))
            .cloned()
            .collect();
        let vxlans = p
            .overlay
            .iter()
            .filter(|o| o.hosts.iter().any(|h| h == host))
            .map(|o| p.vxlan(o, host))
            .collect();
        let impairments = self
            .impairments
            .iter()
            .filter(|i| local.contains(i.node.as_str()))
            .cloned()
            .collect();
        let services = self
            .services
            .iter()
            .filter_map(|s| {
                let mut s = s.clone();
                s.instances.retain(|i| local.contains(i.node.as_str()));
                (!s.instances.is_empty()).then_some(s)
            })
            .collect();
        Ok(Topology {
            name: self.name.clone(),
            vars: self.vars.clone(),
            networks,
            nodes,
            router,
            vxlans,
            impairments,
            policy: if router_here {
                self.policy.clone()
            } else {
                Vec::new()
            },
            host: if router_here { self.host.clone() } else { None },
            services,
            placement: self.placement.clone(),
        })
    }
}
