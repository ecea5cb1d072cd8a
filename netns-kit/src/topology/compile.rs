//! Turns a validated [`Topology`] into the [`Plan`] for one run, including the router's
//! nftables ruleset compiled from the policy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::error::TopologyError;
use super::names;
use super::plan::{
    AddressPlan, BridgePlan, Endpoint, FirewallPlan, HostLinkPlan, ImpairmentPlan, Naming, NsPlan,
    NsRole, Plan, RoutePlan, SysctlPlan, VethPlan, VxlanPlan, FABRIC, HOST,
};
use super::{Interface, PolicyRule, Topology};
use crate::firewall::{Action, Hook, Policy, Rule, Ruleset, DEFAULT_TABLE};

/// Longest run id / run name accepted (a /run/netns name is `<name>-<key>`).
pub const RUN_NAME_MAX: usize = 32;

fn check_run(field: &'static str, value: &str) -> Result<(), TopologyError> {
    if names::is_valid_name_max(value, RUN_NAME_MAX) {
        Ok(())
    } else {
        Err(TopologyError::BadRunName {
            field,
            value: value.to_string(),
            max: RUN_NAME_MAX,
        })
    }
}

fn default_route(addr: IpAddr) -> IpNet {
    match addr {
        IpAddr::V4(_) => IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
    .unwrap_or_default()
}

fn with_prefix(addr: IpAddr, subnet: &IpNet) -> IpNet {
    IpNet::new(addr, subnet.prefix_len()).unwrap_or_else(|_| IpNet::from(addr))
}

/// Builds the plan; see [`Plan::for_run`].
pub(crate) fn compile(t: &Topology, run_id: &str, naming: Naming) -> Result<Plan, TopologyError> {
    check_run("id", run_id)?;
    let prefix = match &naming {
        Naming::Anonymous => None,
        Naming::Named { prefix } => {
            check_run("name", prefix)?;
            Some(prefix.clone())
        }
    };
    let ns_name = |key: &str| prefix.as_ref().map(|p| format!("{p}-{key}"));

    let mut plan = Plan {
        topology: t.name.clone(),
        run_id: run_id.to_string(),
        naming: naming.clone(),
        namespaces: vec![NsPlan {
            key: FABRIC.to_string(),
            role: NsRole::Fabric,
            name: ns_name(FABRIC),
        }],
        bridges: Vec::new(),
        veths: Vec::new(),
        vxlans: Vec::new(),
        addresses: Vec::new(),
        routes: Vec::new(),
        sysctls: Vec::new(),
        firewalls: Vec::new(),
        impairments: Vec::new(),
        host_link: None,
    };

    for n in &t.networks {
        plan.bridges.push(BridgePlan {
            ns: FABRIC.to_string(),
            ifname: n.bridge.clone(),
            network: n.name.clone(),
            mtu: n.mtu,
            ipv6: n.subnet.addr().is_ipv6(),
        });
    }

    let attach = |plan: &mut Plan, owner: &str, itf: &Interface| {
        let (bridge, mtu, subnet) = match t.network(&itf.network) {
            Some(n) => (n.bridge.clone(), n.mtu, n.subnet),
            None => return,
        };
        plan.veths.push(VethPlan {
            a: Endpoint {
                ns: owner.to_string(),
                ifname: itf.ifname.clone(),
                master: None,
            },
            b: Endpoint {
                ns: FABRIC.to_string(),
                ifname: itf.fabric_ifname.clone(),
                master: Some(bridge),
            },
            mtu,
            ipv6: subnet.addr().is_ipv6(),
        });
        plan.addresses.push(AddressPlan {
            ns: owner.to_string(),
            ifname: itf.ifname.clone(),
            addr: with_prefix(itf.address, &subnet),
        });
    };

    if let Some(r) = t.router.as_ref().filter(|r| !r.remote) {
        plan.namespaces.push(NsPlan {
            key: r.name.clone(),
            role: NsRole::Router,
            name: ns_name(&r.name),
        });
        for itf in &r.interfaces {
            attach(&mut plan, &r.name, itf);
        }
        let v6 = r.interfaces.iter().any(|i| i.address.is_ipv6());
        let v4 = r.interfaces.iter().any(|i| i.address.is_ipv4()) || t.host.is_some();
        if v4 {
            plan.sysctls.push(SysctlPlan {
                ns: r.name.clone(),
                key: "net.ipv4.ip_forward".to_string(),
                value: "1".to_string(),
            });
        }
        if v6 {
            plan.sysctls.push(SysctlPlan {
                ns: r.name.clone(),
                key: "net.ipv6.conf.all.forwarding".to_string(),
                value: "1".to_string(),
            });
        }
    }

    for node in &t.nodes {
        plan.namespaces.push(NsPlan {
            key: node.name.clone(),
            role: NsRole::Node,
            name: ns_name(&node.name),
        });
        for itf in &node.interfaces {
            attach(&mut plan, &node.name, itf);
        }
        // Default route via the router on the first interface whose network the router is on
        // (one default per address family).
        if let Some(r) = &t.router {
            let mut done_v4 = false;
            let mut done_v6 = false;
            for itf in &node.interfaces {
                let Some(gw) = r.interfaces.iter().find(|ri| ri.network == itf.network) else {
                    continue;
                };
                let done = if gw.address.is_ipv4() {
                    &mut done_v4
                } else {
                    &mut done_v6
                };
                if *done {
                    continue;
                }
                *done = true;
                plan.routes.push(RoutePlan {
                    ns: node.name.clone(),
                    dest: default_route(gw.address),
                    via: Some(gw.address),
                    dev: Some(itf.ifname.clone()),
                    metric: None,
                });
            }
        }
        for (key, value) in &node.sysctls {
            plan.sysctls.push(SysctlPlan {
                ns: node.name.clone(),
                key: key.clone(),
                value: value.clone(),
            });
        }
    }

    for v in &t.vxlans {
        let (master, mtu) = match t.network(&v.network) {
            Some(n) => (Some(n.bridge.clone()), n.mtu),
            None => (None, None),
        };
        plan.vxlans.push(VxlanPlan {
            ns: FABRIC.to_string(),
            underlay: v.underlay,
            ifname: v.name.clone(),
            vni: v.vni,
            local: v.local,
            peer: v.peer,
            port: v.port,
            dev: v.dev.clone(),
            master,
            mtu,
        });
    }

    for imp in &t.impairments {
        plan.impairments.push(ImpairmentPlan {
            ns: imp.node.clone(),
            ifname: imp.ifname.clone(),
            netem: imp.netem.clone(),
        });
    }

    // Lab-mode host link: only for named runs.
    let local_router = t.router.as_ref().filter(|r| !r.remote);
    let host_link = match (&t.host, local_router, &prefix) {
        (Some(h), Some(r), Some(p)) => {
            let host_ifname = h.ifname.clone().unwrap_or_else(|| names::host_ifname(p));
            let mut host_routes = Vec::new();
            for net in h.allow.iter().flat_map(|a| routed_subnets(t, a)) {
                if !host_routes.iter().any(|x: &RoutePlan| x.dest == net) {
                    host_routes.push(RoutePlan {
                        ns: HOST.to_string(),
                        dest: net,
                        via: Some(h.router_addr),
                        dev: Some(host_ifname.clone()),
                        metric: None,
                    });
                }
            }
            let link = HostLinkPlan {
                host_ifname,
                host_addr: with_prefix(h.host_addr, &h.subnet),
                peer_ns: r.name.clone(),
                peer_ifname: names::ROUTER_HOST_IFNAME.to_string(),
                peer_addr: with_prefix(h.router_addr, &h.subnet),
                host_routes,
            };
            plan.addresses.push(AddressPlan {
                ns: r.name.clone(),
                ifname: link.peer_ifname.clone(),
                addr: link.peer_addr,
            });
            Some(link)
        }
        _ => None,
    };

    if let Some(r) = local_router {
        plan.firewalls.push(FirewallPlan {
            ns: r.name.clone(),
            ruleset: router_ruleset(t, host_link.as_ref()),
        });
    }
    plan.host_link = host_link;
    Ok(plan)
}

/// The subnets of the networks a rule's destination lives on (what the host must route).
fn routed_subnets(t: &Topology, rule: &PolicyRule) -> Vec<IpNet> {
    use super::Target;
    match &rule.to {
        Target::Network(n) => t.network(n).map(|n| vec![n.subnet]).unwrap_or_default(),
        Target::Node(n) => t
            .node(n)
            .map(|node| {
                node.interfaces
                    .iter()
                    .filter_map(|i| t.network(&i.network).map(|n| n.subnet))
                    .collect()
            })
            .unwrap_or_default(),
        Target::Host => Vec::new(),
    }
}

/// The router's table: forward policy drop, replies allowed, then one accept rule per policy
/// (source net × destination net) and per host-link allowance. Input and output accept.
pub fn router_ruleset(t: &Topology, host_link: Option<&HostLinkPlan>) -> Ruleset {
    let mut rules =
        vec![Rule::established_related(Hook::Forward).comment("replies to allowed connections")];
    for p in t.policy.iter().filter(|p| !p.same_network) {
        let label = format!("{} -> {}", p.from, p.to);
        for from in &p.from_nets {
            for to in &p.to_nets {
                if from.addr().is_ipv4() != to.addr().is_ipv4() {
                    continue;
                }
                rules.push(
                    Rule::new(Hook::Forward, Action::Accept)
                        .from(*from)
                        .to(*to)
                        .proto(p.proto, p.ports.clone())
                        .comment(label.clone()),
                );
            }
        }
    }
    if let (Some(h), Some(link)) = (&t.host, host_link) {
        for a in &h.allow {
            for to in &a.to_nets {
                rules.push(
                    Rule::new(Hook::Forward, Action::Accept)
                        .iif(link.peer_ifname.clone())
                        .to(*to)
                        .proto(a.proto, a.ports.clone())
                        .comment(format!("host -> {}", a.to)),
                );
            }
        }
    }
    Ruleset {
        table: DEFAULT_TABLE.to_string(),
        input: Policy::Accept,
        forward: Policy::Drop,
        output: Policy::Accept,
        rules,
    }
}
