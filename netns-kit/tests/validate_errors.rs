//! Every way a topology file can be wrong yields its own typed error, naming the field path,
//! the value and what was expected — before any kernel call.

use netns_kit::topology::{Topology, TopologyError};

mod validate_support;
use validate_support::err;

/// A small valid topology; each test breaks one thing in it.
const BASE: &str = r#"
name = "t"

[[networks]]
name = "front"
subnet = "10.1.0.0/24"

[[networks]]
name = "back"
subnet = "10.2.0.0/24"

[router]
networks = ["front", "back"]

[[nodes]]
name = "web"
interfaces = [{ network = "front", address = "10.1.0.10" }]

[[nodes]]
name = "api"
interfaces = [{ network = "back", address = "10.2.0.10" }]

[[policy]]
from = "front"
to = "api"
proto = "tcp"
ports = [8080, "9000-9010"]
"#;

/// [`BASE`] with the first `from` replaced by `to`.
fn replaced(from: &str, to: &str) -> String {
    validate_support::replaced(BASE, from, to)
}

#[test]
fn the_base_file_is_valid() {
    let t = Topology::from_str(BASE).unwrap();
    assert_eq!(t.nodes.len(), 2);
}

#[test]
fn toml_syntax_errors_carry_line_and_column() {
    let e = err("name = \"t\"\n[[networks]\nname = 1\n");
    let TopologyError::Syntax { line, column, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!((*line, *column), (2, 12), "{e}");
    assert!(
        e.to_string()
            .starts_with("invalid TOML at line 2, column 12"),
        "{e}"
    );
}

#[test]
fn unknown_keys_are_syntax_errors_naming_the_key() {
    let e = err(&replaced(
        "name = \"web\"",
        "name = \"web\"\ncolour = \"blue\"",
    ));
    assert!(matches!(e, TopologyError::Syntax { .. }), "{e:?}");
    assert!(e.to_string().contains("colour"), "{e}");
}

#[test]
fn a_bad_cidr_names_the_subnet_field() {
    let e = err(&replaced("10.2.0.0/24", "10.2.0.0/33"));
    assert!(matches!(e, TopologyError::BadCidr { .. }), "{e:?}");
    assert_eq!(e.field(), "networks[1].subnet");
    assert!(e.to_string().contains("10.2.0.0/33"), "{e}");
}

#[test]
fn host_bits_in_a_subnet_are_rejected() {
    let e = err(&replaced("10.2.0.0/24", "10.2.0.7/24"));
    assert!(matches!(e, TopologyError::BadCidr { .. }), "{e:?}");
}

#[test]
fn a_bad_address_names_the_interface() {
    let e = err(&replaced("10.2.0.10\"", "10.2.0.300\""));
    assert!(matches!(e, TopologyError::BadAddress { .. }), "{e:?}");
    assert_eq!(e.field(), "nodes[1].interfaces[0].address");
}

#[test]
fn an_address_outside_its_subnet_is_rejected() {
    let e = err(&replaced("10.2.0.10\"", "10.3.0.10\""));
    assert!(
        matches!(e, TopologyError::AddressOutsideSubnet { .. }),
        "{e:?}"
    );
    assert_eq!(e.field(), "nodes[1].interfaces[0].address");
    assert!(e.to_string().contains("10.2.0.0/24"), "{e}");
}

#[test]
fn network_and_broadcast_addresses_are_not_host_addresses() {
    let e = err(&replaced("10.2.0.10\"", "10.2.0.255\""));
    assert!(
        matches!(
            e,
            TopologyError::ReservedAddress {
                kind: "broadcast",
                ..
            }
        ),
        "{e:?}"
    );
    let e = err(&replaced("10.2.0.10\"", "10.2.0.0\""));
    assert!(
        matches!(
            e,
            TopologyError::ReservedAddress {
                kind: "network",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn duplicate_network_names_are_rejected() {
    let e = err(&replaced("name = \"back\"", "name = \"front\""));
    assert!(matches!(e, TopologyError::DuplicateName { .. }), "{e:?}");
    assert_eq!(e.field(), "networks[1].name");
    assert!(e.to_string().contains("networks[0].name"), "{e}");
}

#[test]
fn duplicate_node_names_are_rejected() {
    let e = err(&replaced("name = \"api\"", "name = \"web\""));
    assert!(matches!(e, TopologyError::DuplicateName { .. }), "{e:?}");
    assert_eq!(e.field(), "nodes[1].name");
}

#[test]
fn duplicate_addresses_are_rejected() {
    let text = format!(
        "{BASE}\n[[nodes]]\nname = \"api2\"\ninterfaces = [{{ network = \"back\", address = \"10.2.0.10\" }}]\n"
    );
    let e = err(&text);
    assert!(matches!(e, TopologyError::DuplicateAddress { .. }), "{e:?}");
    assert_eq!(e.field(), "nodes[2].interfaces[0].address");
    assert!(
        e.to_string().contains("nodes[1].interfaces[0].address"),
        "{e}"
    );
}

#[test]
fn a_node_on_the_routers_default_address_is_a_duplicate() {
    let e = err(&replaced("10.2.0.10\"", "10.2.0.1\""));
    assert!(matches!(e, TopologyError::DuplicateAddress { .. }), "{e:?}");
}

#[test]
fn overlapping_subnets_are_rejected() {
    let e = err(&replaced("10.2.0.0/24", "10.1.0.0/16"));
    assert!(
        matches!(e, TopologyError::OverlappingSubnets { .. }),
        "{e:?}"
    );
    assert_eq!(e.field(), "networks[1].subnet");
}

#[test]
fn a_node_on_an_unknown_network_is_rejected() {
    let e = err(&replaced("network = \"back\"", "network = \"bakc\""));
    assert!(matches!(e, TopologyError::UnknownNetwork { .. }), "{e:?}");
    assert_eq!(e.field(), "nodes[1].interfaces[0].network");
    assert!(e.to_string().contains("front, back"), "{e}");
}

#[test]
fn a_policy_naming_an_unknown_tier_is_rejected() {
    let e = err(&replaced("to = \"api\"", "to = \"apii\""));
    assert!(
        matches!(e, TopologyError::UnknownPolicyTarget { .. }),
        "{e:?}"
    );
    assert_eq!(e.field(), "policy[0].to");
}

#[test]
fn a_vxlan_on_an_unknown_network_is_rejected() {
    let text = format!(
        "{BASE}\n[[vxlans]]\nname = \"vx0\"\nnetwork = \"nope\"\nvni = 7\nremote = \"192.0.2.1\"\n"
    );
    let e = err(&text);
    assert!(matches!(e, TopologyError::UnknownNetwork { .. }), "{e:?}");
    assert_eq!(e.field(), "vxlans[0].network");
}

#[test]
fn a_vxlan_needs_exactly_one_of_remote_and_group() {
    let text = format!("{BASE}\n[[vxlans]]\nname = \"vx0\"\nnetwork = \"back\"\nvni = 7\n");
    assert!(matches!(err(&text), TopologyError::Conflict { .. }));
    let text = format!(
        "{BASE}\n[[vxlans]]\nname = \"vx0\"\nnetwork = \"back\"\nvni = 0\nremote = \"192.0.2.1\"\n"
    );
    let e = err(&text);
    assert!(matches!(e, TopologyError::OutOfRange { .. }), "{e:?}");
    assert_eq!(e.field(), "vxlans[0].vni");
}

#[test]
fn an_explicit_bridge_name_longer_than_ifnamsiz_is_rejected() {
    let e = err(&replaced(
        "subnet = \"10.1.0.0/24\"",
        "subnet = \"10.1.0.0/24\"\nbridge = \"br-much-too-long-name\"",
    ));
    assert!(matches!(e, TopologyError::BadIfname { .. }), "{e:?}");
    assert_eq!(e.field(), "networks[0].bridge");
}

#[test]
fn invalid_characters_in_a_node_name_are_rejected() {
    let e = err(&replaced("name = \"web\"", "name = \"we b/\""));
    assert!(matches!(e, TopologyError::InvalidName { .. }), "{e:?}");
    assert_eq!(e.field(), "nodes[0].name");
}

#[test]
fn long_node_names_get_short_deterministic_interface_names() {
    let text = replaced(
        "name = \"web\"",
        "name = \"web-frontend-replica-number-one\"",
    );
    let t = Topology::from_str(&text).unwrap();
    let itf = &t.nodes[0].interfaces[0];
    assert!(itf.fabric_ifname.len() <= 15, "{}", itf.fabric_ifname);
    assert_eq!(
        itf,
        &Topology::from_str(&text).unwrap().nodes[0].interfaces[0]
    );
}

#[test]
fn a_derived_name_colliding_with_a_bridge_is_rejected() {
    let e = err(&replaced(
        "subnet = \"10.1.0.0/24\"",
        "subnet = \"10.1.0.0/24\"\nbridge = \"v0-web\"",
    ));
    assert!(matches!(e, TopologyError::IfnameCollision { .. }), "{e:?}");
}

#[test]
fn a_policy_across_networks_needs_the_router_on_both() {
    let e = err(&replaced(
        "networks = [\"front\", \"back\"]",
        "networks = [\"front\"]",
    ));
    assert!(matches!(e, TopologyError::RouterMissing { .. }), "{e:?}");
    assert_eq!(e.field(), "policy[0]");
    assert!(e.to_string().contains("\"back\""), "{e}");
}

#[test]
fn a_policy_across_networks_without_any_router_is_rejected() {
    let text = replaced("[router]\nnetworks = [\"front\", \"back\"]\n", "");
    let e = err(&text);
    assert!(e.to_string().contains("there is no [router]"), "{e}");
}

#[test]
fn port_zero_is_rejected() {
    let e = err(&replaced("ports = [8080,", "ports = [0,"));
    assert!(matches!(e, TopologyError::BadPort { .. }), "{e:?}");
    assert_eq!(e.field(), "policy[0].ports[0]");
}

#[test]
fn ports_above_65535_and_reversed_ranges_are_rejected() {
    let e = err(&replaced("ports = [8080,", "ports = [70000,"));
    assert!(matches!(e, TopologyError::BadPort { .. }), "{e:?}");
    let e = err(&replaced("\"9000-9010\"", "\"9010-9000\""));
    assert!(matches!(e, TopologyError::BadPort { .. }), "{e:?}");
    assert_eq!(e.field(), "policy[0].ports[1]");
    let e = err(&replaced("\"9000-9010\"", "\"http\""));
    assert!(matches!(e, TopologyError::BadPort { .. }), "{e:?}");
}

#[test]
fn an_unknown_protocol_is_rejected() {
    let e = err(&replaced("proto = \"tcp\"", "proto = \"sctp\""));
    assert!(matches!(e, TopologyError::BadProto { .. }), "{e:?}");
    assert_eq!(e.field(), "policy[0].proto");
}

#[test]
fn ports_without_tcp_or_udp_are_rejected() {
    let e = err(&replaced("proto = \"tcp\"", "proto = \"icmp\""));
    assert!(
        matches!(e, TopologyError::PortsWithoutTransport { .. }),
        "{e:?}"
    );
}

#[test]
fn node_names_may_not_shadow_networks_or_reserved_keys() {
    let e = err(&replaced("name = \"api\"", "name = \"front\""));
    assert!(matches!(e, TopologyError::ReservedName { .. }), "{e:?}");
    let e = err(&replaced("name = \"api\"", "name = \"fabric\""));
    assert!(matches!(e, TopologyError::ReservedName { .. }), "{e:?}");
}

#[test]
fn impairments_are_checked() {
    let text = format!(
        "{BASE}\n[[impairments]]\nnode = \"web\"\nnetwork = \"front\"\nloss_percent = 120.0\n"
    );
    let e = err(&text);
    assert!(matches!(e, TopologyError::OutOfRange { .. }), "{e:?}");
    assert_eq!(e.field(), "impairments[0].loss_percent");
    let text =
        format!("{BASE}\n[[impairments]]\nnode = \"nobody\"\nnetwork = \"front\"\ndelay_ms = 5\n");
    let e = err(&text);
    assert!(matches!(e, TopologyError::UnknownNode { .. }), "{e:?}");
    let text =
        format!("{BASE}\n[[impairments]]\nnode = \"web\"\nnetwork = \"front\"\njitter_ms = 5\n");
    assert!(matches!(err(&text), TopologyError::Conflict { .. }));
}

#[test]
fn bad_sysctl_keys_are_rejected() {
    let e = err(&replaced(
        "name = \"web\"",
        "name = \"web\"\nsysctls = { \"net..ipv4\" = \"1\" }",
    ));
    assert!(matches!(e, TopologyError::BadSysctl { .. }), "{e:?}");
}

#[test]
fn the_host_link_must_not_overlap_a_network_and_needs_room_for_two() {
    let text = format!("{BASE}\n[host]\nsubnet = \"10.1.0.0/30\"\n");
    assert!(matches!(
        err(&text),
        TopologyError::OverlappingSubnets { .. }
    ));
    let text = format!("{BASE}\n[host]\nsubnet = \"10.9.0.0/32\"\n");
    assert!(matches!(err(&text), TopologyError::SubnetExhausted { .. }));
}

#[test]
fn mtu_out_of_range_is_rejected() {
    let e = err(&replaced(
        "subnet = \"10.1.0.0/24\"",
        "subnet = \"10.1.0.0/24\"\nmtu = 20",
    ));
    assert!(matches!(e, TopologyError::OutOfRange { .. }), "{e:?}");
    assert_eq!(e.field(), "networks[0].mtu");
}

#[test]
fn omitted_addresses_are_allocated_deterministically() {
    let text = format!(
        "{BASE}\n[[nodes]]\nname = \"a\"\ninterfaces = [{{ network = \"back\" }}]\n[[nodes]]\nname = \"b\"\ninterfaces = [{{ network = \"back\" }}]\n"
    );
    let t = Topology::from_str(&text).unwrap();
    let a = t.node("a").unwrap().interfaces[0].address.to_string();
    let b = t.node("b").unwrap().interfaces[0].address.to_string();
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("10.2.0.2", "10.2.0.3"),
        "the router has .1"
    );
}

#[test]
fn a_missing_file_is_a_read_error() {
    let e = Topology::from_path("/nonexistent/topology.toml").unwrap_err();
    assert!(matches!(e, TopologyError::Read { .. }), "{e:?}");
}

#[test]
fn every_message_is_one_line() {
    let samples = [
        err("name = \"t\"\n[[networks]\n"),
        err(&replaced("10.2.0.10\"", "10.3.0.10\"")),
        err(&replaced("ports = [8080,", "ports = [0,")),
    ];
    for e in samples {
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}

#[test]
fn a_vxlan_underlay_device_must_exist_in_the_fabric() {
    let text = format!(
        "{BASE}\n[[vxlans]]\nname = \"vx0\"\nnetwork = \"back\"\nvni = 7\ngroup = \"239.1.1.1\"\ndev = \"eth0\"\n"
    );
    let e = err(&text);
    assert!(matches!(e, TopologyError::Conflict { .. }), "{e:?}");
    assert_eq!(e.field(), "vxlans[0].dev");
    assert!(e.to_string().contains("br-front, br-back"), "{e}");
    let ok = text.replace("dev = \"eth0\"", "dev = \"br-front\"");
    assert!(Topology::from_str(&ok).is_ok());
}

#[test]
fn a_host_underlay_vxlan_may_name_a_host_device_the_fabric_does_not_have() {
    let text = format!(
        "{BASE}\n[[vxlans]]\nname = \"vx0\"\nnetwork = \"back\"\nvni = 7\nremote = \"192.0.2.2\"\ndev = \"eth0\"\nunderlay = \"host\"\n"
    );
    let t = Topology::from_str(&text).unwrap();
    assert_eq!(
        t.vxlans[0].underlay,
        netns_kit::topology::plan::VxlanUnderlay::Host
    );
    // Without it, the same dev is refused, and the error says how to ask for the host.
    let e = err(&text.replace("underlay = \"host\"\n", ""));
    assert_eq!(e.field(), "vxlans[0].dev");
    assert!(e.to_string().contains("underlay = \"host\""), "{e}");
}

#[test]
fn an_unknown_vxlan_underlay_is_rejected_naming_the_choices() {
    let text = format!(
        "{BASE}\n[[vxlans]]\nname = \"vx0\"\nnetwork = \"back\"\nvni = 7\nremote = \"192.0.2.2\"\nunderlay = \"root\"\n"
    );
    let e = err(&text);
    assert!(matches!(e, TopologyError::Conflict { .. }), "{e:?}");
    assert_eq!(e.field(), "vxlans[0].underlay");
    let msg = e.to_string();
    assert!(
        msg.contains("\"root\"") && msg.contains("\"fabric\"") && msg.contains("\"host\""),
        "{msg}"
    );
    assert!(Topology::from_str(&text.replace("\"root\"", "\"fabric\"")).is_ok());
}
