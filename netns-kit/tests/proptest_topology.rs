//! Property tests: the parser and validator never panic on anything; every valid generated
//! topology survives a serialize → parse round trip unchanged; allocation never duplicates.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use netns_kit::graph::{self, Format};
use netns_kit::topology::alloc::{allocate, reserved_kind};
use netns_kit::topology::spec::{
    HostAllowSpec, HostSpec, ImpairmentSpec, InterfaceSpec, NetworkSpec, NodeSpec, PolicySpec,
    PortSpec, RouterSpec, TopologySpec, VxlanSpec,
};
use netns_kit::topology::{Naming, Plan, Topology};
use proptest::prelude::*;

/// Text pieces that look like topology files, so random mixes reach the validator.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("name = \"t\"\n".to_string()),
        Just("[[networks]]\n".to_string()),
        Just("[[nodes]]\n".to_string()),
        Just("[router]\n".to_string()),
        Just("[[policy]]\n".to_string()),
        Just("[[vxlans]]\n".to_string()),
        Just("[[impairments]]\n".to_string()),
        Just("[host]\n".to_string()),
        "[a-z]{1,6}".prop_map(|n| format!("name = \"{n}\"\n")),
        (0u8..=255, 0u8..=255, 0u8..=40)
            .prop_map(|(a, b, p)| format!("subnet = \"10.{a}.{b}.0/{p}\"\n")),
        "[a-z]{1,4}".prop_map(|n| format!("interfaces = [{{ network = \"{n}\" }}]\n")),
        (0u8..=255).prop_map(|d| format!(
            "interfaces = [{{ network = \"n\", address = \"10.0.0.{d}\" }}]\n"
        )),
        "[a-z]{1,4}".prop_map(|n| format!("networks = [\"{n}\"]\n")),
        "[a-z]{1,4}".prop_map(|n| format!("from = \"{n}\"\nto = \"{n}\"\n")),
        any::<i64>().prop_map(|p| format!("ports = [{p}]\n")),
        any::<u32>().prop_map(|v| format!("vni = {v}\n")),
        any::<f64>().prop_map(|l| format!("loss_percent = {l:?}\n")),
        "\\PC{0,12}",
    ]
}

/// Arbitrary (mostly invalid) structured specs.
fn any_spec() -> impl Strategy<Value = TopologySpec> {
    let name = "[a-z0-9-]{0,20}";
    let net = (
        name,
        "[0-9./:a-f]{0,20}",
        proptest::option::of("[a-z-]{0,18}"),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(name, subnet, bridge, mtu)| NetworkSpec {
            name,
            subnet,
            bridge,
            mtu,
        });
    let itf = (name, proptest::option::of("[0-9.]{0,15}"))
        .prop_map(|(network, address)| InterfaceSpec { network, address });
    let node =
        (name, proptest::collection::vec(itf, 0..3)).prop_map(|(name, interfaces)| NodeSpec {
            name,
            interfaces,
            sysctls: Default::default(),
        });
    let port = prop_oneof![
        any::<i64>().prop_map(PortSpec::Number),
        "[0-9-]{0,12}".prop_map(PortSpec::Text)
    ];
    let policy = (
        name,
        name,
        proptest::option::of("tcp|udp|icmp|any|xyz"),
        proptest::collection::vec(port.clone(), 0..3),
    )
        .prop_map(|(from, to, proto, ports)| PolicySpec {
            from,
            to,
            proto,
            ports,
        });
    let vx = (
        name,
        name,
        any::<u32>(),
        proptest::option::of("[0-9.]{0,15}"),
        proptest::option::of("2[0-9.]{0,14}"),
        proptest::option::of(any::<u16>()),
        proptest::option::of(prop_oneof![
            Just("fabric".to_string()),
            Just("host".to_string()),
            "[a-z]{0,6}",
        ]),
        proptest::option::of("[a-z0-9]{0,16}"),
    )
        .prop_map(
            |(name, network, vni, remote, group, port, underlay, dev)| VxlanSpec {
                name,
                network,
                vni,
                local: None,
                remote,
                group,
                port,
                dev,
                underlay,
            },
        );
    let imp = (
        name,
        name,
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(-10.0f64..200.0),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(node, network, delay_ms, jitter_ms, loss_percent, rate_kbit)| ImpairmentSpec {
                node,
                network,
                delay_ms,
                jitter_ms,
                loss_percent,
                rate_kbit,
            },
        );
    let router = proptest::option::of((name, proptest::collection::vec(name, 0..4)).prop_map(
        |(name, networks)| RouterSpec {
            name,
            networks,
            addresses: Default::default(),
        },
    ));
    let host = proptest::option::of(
        (
            "[0-9./]{0,18}",
            proptest::collection::vec((name, proptest::collection::vec(port, 0..2)), 0..2),
        )
            .prop_map(|(subnet, allow)| HostSpec {
                subnet,
                ifname: None,
                allow: allow
                    .into_iter()
                    .map(|(to, ports)| HostAllowSpec {
                        to,
                        proto: Some("tcp".into()),
                        ports,
                    })
                    .collect(),
            }),
    );
    (
        name,
        proptest::collection::vec(net, 0..4),
        proptest::collection::vec(node, 0..5),
        router,
        proptest::collection::vec(vx, 0..2),
        proptest::collection::vec(imp, 0..2),
        proptest::collection::vec(policy, 0..3),
        host,
    )
        .prop_map(
            |(name, networks, nodes, router, vxlans, impairments, policy, host)| TopologySpec {
                name,
                networks,
                nodes,
                router,
                vxlans,
                impairments,
                policy,
                host,
                ..TopologySpec::default()
            },
        )
}

/// Valid topologies by construction: disjoint /24s, unique names and addresses, a router on
/// every network, policies between declared things.
fn valid_spec() -> impl Strategy<Value = TopologySpec> {
    (
        1usize..5,
        proptest::collection::vec((0usize..8, any::<bool>(), 0usize..4), 0..12),
        proptest::collection::vec(
            (
                0usize..16,
                0usize..16,
                0u8..4,
                proptest::collection::vec(1u16..=65535, 0..3),
            ),
            0..6,
        ),
        any::<bool>(),
        proptest::option::of((0usize..12, 1u32..500)),
    )
        .prop_map(|(n_nets, node_specs, policies, with_host, impairment)| {
            let networks: Vec<NetworkSpec> = (0..n_nets)
                .map(|i| NetworkSpec {
                    name: format!("net{i}"),
                    // The fourth network (when present) is IPv6.
                    subnet: if i == 3 {
                        "fd00:3::/64".to_string()
                    } else {
                        format!("10.{i}.0.0/24")
                    },
                    bridge: None,
                    mtu: if i % 2 == 0 { None } else { Some(1400) },
                })
                .collect();
            let nodes: Vec<NodeSpec> = node_specs
                .iter()
                .enumerate()
                .map(|(k, (net, explicit, _))| {
                    let net = net % n_nets;
                    NodeSpec {
                        name: format!("node-{k}"),
                        interfaces: vec![InterfaceSpec {
                            network: format!("net{net}"),
                            // Explicit addresses live in .100.., allocation fills from .2 up.
                            address: explicit.then(|| {
                                if net == 3 {
                                    format!("fd00:3::{:x}", 0x100 + k)
                                } else {
                                    format!("10.{net}.0.{}", 100 + k)
                                }
                            }),
                        }],
                        sysctls: Default::default(),
                    }
                })
                .collect();
            let mut targets: Vec<String> = networks.iter().map(|n| n.name.clone()).collect();
            targets.extend(nodes.iter().map(|n| n.name.clone()));
            let policy = policies
                .into_iter()
                .map(|(f, t, proto, ports)| {
                    let proto_s = ["tcp", "udp", "icmp", "any"][proto as usize];
                    PolicySpec {
                        from: targets[f % targets.len()].clone(),
                        to: targets[t % targets.len()].clone(),
                        proto: Some(proto_s.to_string()),
                        ports: if proto < 2 {
                            ports
                                .into_iter()
                                .map(|p| PortSpec::Number(i64::from(p)))
                                .collect()
                        } else {
                            vec![]
                        },
                    }
                })
                .collect();
            let impairments = match impairment {
                Some((k, delay)) if !nodes.is_empty() => {
                    let node = &nodes[k % nodes.len()];
                    vec![ImpairmentSpec {
                        node: node.name.clone(),
                        network: node.interfaces[0].network.clone(),
                        delay_ms: Some(delay),
                        jitter_ms: None,
                        loss_percent: Some(0.5),
                        rate_kbit: None,
                    }]
                }
                _ => vec![],
            };
            TopologySpec {
                name: "gen".to_string(),
                router: Some(RouterSpec {
                    name: "router".to_string(),
                    networks: networks.iter().map(|n| n.name.clone()).collect(),
                    addresses: Default::default(),
                }),
                host: with_host.then(|| HostSpec {
                    subnet: "172.29.0.0/30".to_string(),
                    ifname: None,
                    allow: vec![HostAllowSpec {
                        to: "net0".to_string(),
                        proto: Some("tcp".to_string()),
                        ports: vec![PortSpec::Text("80-90".to_string())],
                    }],
                }),
                networks,
                nodes,
                vxlans: vec![],
                impairments,
                policy,
                ..TopologySpec::default()
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_the_parser(text in "\\PC{0,400}") {
        let _ = Topology::from_str(&text);
    }

    #[test]
    fn arbitrary_topology_like_text_never_panics(parts in proptest::collection::vec(fragment(), 0..30)) {
        let text = parts.concat();
        if let Ok(t) = Topology::from_str(&text) {
            let _ = Plan::for_run(&t, "p1", Naming::Named { prefix: "x".into() });
        }
    }

    #[test]
    fn arbitrary_structured_specs_never_panic_the_validator(spec in any_spec()) {
        if let Ok(t) = Topology::from_spec(&spec) {
            let plan = Plan::for_run(&t, "p1", Naming::Named { prefix: "x".into() }).unwrap();
            for fw in &plan.firewalls {
                prop_assert!(fw.ruleset.validate().is_ok());
            }
            let _ = graph::render(&t, Format::Dot);
        }
    }

    #[test]
    fn valid_topologies_round_trip_through_toml(spec in valid_spec()) {
        let t = Topology::from_spec(&spec).unwrap();
        let text = t.to_toml();
        let again = Topology::from_str(&text).unwrap();
        prop_assert_eq!(&t, &again);
        // The spec itself also survives serialize → parse.
        let spec_text = toml::to_string(&spec).unwrap();
        let spec_again: TopologySpec = toml::from_str(&spec_text).unwrap();
        prop_assert_eq!(&spec, &spec_again);
        // Every address in the topology is unique.
        let mut seen = BTreeSet::new();
        for itf in t.nodes.iter().flat_map(|n| &n.interfaces).chain(t.router.iter().flat_map(|r| &r.interfaces)) {
            prop_assert!(seen.insert(itf.address), "duplicate {}", itf.address);
        }
        // And the plan's router ruleset is always renderable.
        let plan = Plan::for_run(&t, "p1", Naming::Named { prefix: "lab".into() }).unwrap();
        for fw in &plan.firewalls {
            prop_assert!(fw.ruleset.validate().is_ok());
        }
    }

    #[test]
    fn allocation_never_duplicates(
        v4 in any::<u32>(),
        prefix in 20u8..=32,
        taken_offsets in proptest::collection::btree_set(0u32..5000, 0..40),
        rounds in 1usize..300,
    ) {
        let subnet = IpNet::new(IpAddr::V4(v4.into()), prefix).unwrap().trunc();
        let base = match subnet.network() { IpAddr::V4(a) => u32::from(a), IpAddr::V6(_) => unreachable!() };
        let mut taken: BTreeSet<IpAddr> = taken_offsets
            .iter()
            .filter_map(|o| base.checked_add(*o))
            .map(|a| IpAddr::V4(a.into()))
            .filter(|a| subnet.contains(a))
            .collect();
        let initially_taken = taken.clone();
        let mut allocated = BTreeSet::new();
        for _ in 0..rounds {
            let Some(a) = allocate(&subnet, &taken) else { break };
            prop_assert!(subnet.contains(&a));
            prop_assert!(reserved_kind(&subnet, a).is_none());
            prop_assert!(!initially_taken.contains(&a));
            prop_assert!(allocated.insert(a), "allocated {a} twice");
            taken.insert(a);
        }
    }

    #[test]
    fn many_nodes_without_addresses_get_distinct_addresses(n in 1usize..120, explicit in proptest::collection::btree_set(2u8..=254, 0..20)) {
        let mut text = String::from("name = \"a\"\n[[networks]]\nname = \"n\"\nsubnet = \"10.0.0.0/24\"\n[router]\nnetworks = [\"n\"]\n");
        for (k, last) in explicit.iter().enumerate() {
            text.push_str(&format!("[[nodes]]\nname = \"e{k}\"\ninterfaces = [{{ network = \"n\", address = \"10.0.0.{last}\" }}]\n"));
        }
        for k in 0..n {
            text.push_str(&format!("[[nodes]]\nname = \"a{k}\"\ninterfaces = [{{ network = \"n\" }}]\n"));
        }
        match Topology::from_str(&text) {
            Ok(t) => {
                let mut seen = BTreeSet::new();
                for itf in t.nodes.iter().flat_map(|n| &n.interfaces) {
                    prop_assert!(seen.insert(itf.address));
                }
            }
            Err(e) => {
                // Only when the /24 is genuinely full (253 hosts minus the router).
                prop_assert!(n + explicit.len() > 252, "unexpected {e}");
            }
        }
    }
}
