//! netns-kit's three-tier sample (tests/fixtures/three-tier.toml) validates and resolves into
//! the plan its comments describe (the application's own file: xtests/tests/deploy_declarations.rs).

use std::net::IpAddr;

use netns_kit::firewall::{Action, Hook, Policy, Proto};
use netns_kit::topology::plan::{NsRole, FABRIC};
use netns_kit::topology::{Naming, Plan, Topology};

fn three_tier() -> Topology {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/three-tier.toml"
    );
    Topology::from_path(path).expect("three-tier.toml is valid")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_node_has_its_design_address() {
    let t = three_tier();
    let expected = [
        ("gateway", "172.20.0.10"),
        ("registry", "172.21.0.10"),
        ("product-1", "172.21.0.21"),
        ("product-2", "172.21.0.22"),
        ("order-1", "172.21.0.31"),
        ("order-2", "172.21.0.32"),
        ("redis", "172.22.0.10"),
        ("postgres", "172.22.0.20"),
    ];
    assert_eq!(t.nodes.len(), expected.len());
    for (name, addr) in expected {
        let node = t
            .node(name)
            .unwrap_or_else(|| panic!("node {name} missing"));
        assert_eq!(node.interfaces[0].address, ip(addr), "{name}");
    }
}

#[test]
fn the_router_holds_dot_one_on_every_tier() {
    let t = three_tier();
    let router = t.router.as_ref().unwrap();
    let addrs: Vec<IpAddr> = router.interfaces.iter().map(|i| i.address).collect();
    assert_eq!(
        addrs,
        [ip("172.20.0.1"), ip("172.21.0.1"), ip("172.22.0.1")]
    );
}

#[test]
fn a_test_run_plans_anonymous_namespaces_and_no_host_link() {
    let plan = Plan::for_run(&three_tier(), "t1234", Naming::Anonymous).unwrap();
    assert_eq!(plan.namespaces.len(), 1 + 1 + 8);
    assert_eq!(plan.namespaces[0].key, FABRIC);
    assert_eq!(plan.namespaces[1].role, NsRole::Router);
    assert!(plan.namespaces.iter().all(|n| n.name.is_none()));
    assert!(plan.host_link.is_none());
    assert_eq!(plan.bridges.len(), 3);
    assert!(plan.bridges.iter().all(|b| b.ns == FABRIC));
    assert_eq!(plan.veths.len(), 3 + 8);
    // Every node routes by default via the router on its tier.
    let gw = plan.routes.iter().find(|r| r.ns == "gateway").unwrap();
    assert_eq!(gw.dest.to_string(), "0.0.0.0/0");
    assert_eq!(gw.via, Some(ip("172.20.0.1")));
    assert!(plan
        .sysctls
        .iter()
        .any(|s| s.ns == "router" && s.key == "net.ipv4.ip_forward" && s.value == "1"));
}

#[test]
fn the_lab_run_names_namespaces_and_routes_the_host_to_the_frontend() {
    let plan = Plan::for_run(
        &three_tier(),
        "r1",
        Naming::Named {
            prefix: "lab".into(),
        },
    )
    .unwrap();
    assert_eq!(
        plan.namespace("gateway").unwrap().name.as_deref(),
        Some("lab-gateway")
    );
    let host = plan.host_link.as_ref().unwrap();
    assert_eq!(host.host_addr.to_string(), "172.29.0.1/30");
    assert_eq!(host.peer_addr.to_string(), "172.29.0.2/30");
    assert_eq!(host.host_routes.len(), 1);
    assert_eq!(host.host_routes[0].dest.to_string(), "172.20.0.0/24");
    assert_eq!(host.host_routes[0].via, Some(ip("172.29.0.2")));
    assert!(host.host_ifname.len() <= 15);
}

#[test]
fn the_router_forward_chain_encodes_the_tier_policy() {
    let plan = Plan::for_run(
        &three_tier(),
        "r1",
        Naming::Named {
            prefix: "lab".into(),
        },
    )
    .unwrap();
    assert_eq!(plan.firewalls.len(), 1);
    let rs = &plan.firewalls[0].ruleset;
    assert_eq!(plan.firewalls[0].ns, "router");
    assert_eq!(rs.forward, Policy::Drop);
    rs.validate().unwrap();
    assert_eq!(rs.rules[0].ct_states.len(), 2, "replies first");
    let allows = |from: &str, to: &str, port: u16| {
        rs.rules.iter().any(|r| {
            r.hook == Hook::Forward
                && r.action == Action::Accept
                && r.proto == Proto::Tcp
                && r.from.map(|n| n.contains(&ip(from))).unwrap_or(true)
                && r.to.map(|n| n.contains(&ip(to))).unwrap_or(false)
                && r.dst_ports
                    .iter()
                    .any(|p| p.first <= port && port <= p.last)
        })
    };
    assert!(allows("172.20.0.10", "172.21.0.10", 8500));
    assert!(allows("172.20.0.10", "172.21.0.21", 8001));
    assert!(allows("172.20.0.10", "172.21.0.31", 8002));
    assert!(allows("172.21.0.21", "172.22.0.10", 6379));
    assert!(allows("172.21.0.22", "172.22.0.20", 5432));
    assert!(allows("172.21.0.31", "172.22.0.20", 5432));
    assert!(
        !allows("172.21.0.31", "172.22.0.10", 6379),
        "order never talks to redis"
    );
    assert!(
        !allows("172.20.0.10", "172.22.0.20", 5432),
        "frontend never reaches the database"
    );
    assert!(
        !allows("172.22.0.20", "172.21.0.21", 8001),
        "database opens nothing new"
    );
    assert!(
        !allows("172.20.0.10", "172.21.0.10", 8600),
        "registry DNS stays in the backend"
    );
    // The host reaches the gateway's port 3000 through the host link, and nothing else.
    let host_rules: Vec<_> = rs.rules.iter().filter(|r| r.iif.is_some()).collect();
    assert_eq!(host_rules.len(), 1);
    assert_eq!(host_rules[0].to.unwrap().to_string(), "172.20.0.10/32");
    assert_eq!(host_rules[0].dst_ports[0].first, 3000);
}

#[test]
fn the_file_round_trips_through_toml() {
    let t = three_tier();
    let again = Topology::from_str(&t.to_toml()).unwrap();
    assert_eq!(t, again);
}

#[test]
fn nft_accepts_the_router_table_in_check_mode() {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !is_root {
        assert!(
            std::env::var("ECOMM_REQUIRE_ALL").as_deref() != Ok("1"),
            "ECOMM_REQUIRE_ALL=1 but checking with nft needs root"
        );
        eprintln!("skipping: needs root for `unshare --net nft -c`");
        return;
    }
    let plan = Plan::for_run(
        &three_tier(),
        "r1",
        Naming::Named {
            prefix: "lab".into(),
        },
    )
    .unwrap();
    let doc = plan.firewalls[0].ruleset.to_nft_json();
    use std::io::Write;
    // Check only (-c), and inside a throwaway namespace: nothing on the host changes.
    let mut child = std::process::Command::new("unshare")
        .args(["--net", "nft", "-c", "-j", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft rejected: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn each_hosts_share_plans_the_derived_backend_vxlan_on_the_host_underlay() {
    // The hand-written two-host example is gone: the placement derives the overlay.
    let t = three_tier();
    assert!(t.vxlans.is_empty(), "one machine: no overlay");
    for host in ["vm1", "vm2", "vm3"] {
        let share = t.for_host(host).unwrap();
        let vx = &share.vxlans[0];
        assert_eq!(vx.network, "backend");
        assert_eq!(vx.dev.as_deref(), Some("eth0"));
        assert_eq!(vx.underlay, netns_kit::topology::plan::VxlanUnderlay::Host);
        let plan = Plan::for_run(&share, "0123456789ab", Naming::Anonymous).unwrap();
        assert_eq!(plan.vxlans[0].ns, FABRIC);
        assert_eq!(plan.vxlans[0].master.as_deref(), Some("br-backend"));
        let json = serde_json::to_value(&plan.vxlans[0]).unwrap();
        assert_eq!(json["underlay"], "host");
    }
}
