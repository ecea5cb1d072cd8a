//! A placement splits one topology into host shares: each host builds its nodes, the networks
//! they touch and the derived overlay; the router (with the policy and host link) only where it
//! is placed. Together the shares are the whole.

use std::collections::BTreeSet;
use std::net::IpAddr;

use netns_kit::topology::plan::{NsRole, VxlanPeer, VxlanUnderlay};
use netns_kit::topology::{Naming, Plan, Topology};

/// Two hosts: `a` carries the router and the frontend, `b` the database; the backend spans both.
const TWO_HOSTS: &str = r#"
name = "split"

[[networks]]
name = "front"
subnet = "10.1.0.0/24"

[[networks]]
name = "back"
subnet = "10.2.0.0/24"

[[networks]]
name = "data"
subnet = "10.3.0.0/24"

[router]
networks = ["front", "back", "data"]

[[nodes]]
name = "web"
interfaces = [{ network = "front", address = "10.1.0.10" }]

[[nodes]]
name = "api"
interfaces = [{ network = "back", address = "10.2.0.10" }]

[[nodes]]
name = "worker"
interfaces = [{ network = "back", address = "10.2.0.11" }]

[[nodes]]
name = "db"
interfaces = [{ network = "data", address = "10.3.0.10" }, { network = "back", address = "10.2.0.20" }]

[[impairments]]
node = "db"
network = "data"
delay_ms = 5

[[policy]]
from = "front"
to = "api"
proto = "tcp"
ports = [8080]

[[services]]
name = "api"
node = "api"
command = ["api", "--listen", "${self.listen}", "--db", "${services.db.address}"]
port = 8080

[[services]]
name = "db"
node = "db"
command = ["db", "--port", "${self.port}"]
port = 5432

[host]
subnet = "10.9.0.0/30"
allow = [{ to = "web", proto = "tcp", ports = [80] }]

[placement]
a = ["router", "web", "api"]
b = ["worker", "db"]

[underlay]
dev = "eth1"
vni_base = 500
hosts = { a = "192.0.2.1", b = "192.0.2.2" }
"#;

fn split() -> Topology {
    Topology::from_str(TWO_HOSTS).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    it.map(String::as_str).collect()
}

#[test]
fn the_overlay_is_derived_exactly_from_the_placement() {
    let t = split();
    let p = t.placement.as_ref().unwrap();
    // front lives on host a only; back (api, worker, db) and data (the router on a, db on b)
    // span both hosts.
    let stretched: Vec<(&str, u32)> = p
        .overlay
        .iter()
        .map(|o| (o.network.as_str(), o.vni))
        .collect();
    assert_eq!(stretched, [("back", 501), ("data", 502)]);
    let o = &p.overlay[0];
    assert_eq!(o.network, "back");
    assert_eq!(o.name, "vx-back");
    assert_eq!(o.vni, 501, "vni_base + the network's index in the file");
    assert_eq!(o.hosts, ["a", "b"]);
    assert_eq!(o.group, None, "two hosts without a group: unicast");

    let a = t.for_host("a").unwrap();
    let b = t.for_host("b").unwrap();
    assert_eq!(a.vxlans.len(), 2);
    assert_eq!(b.vxlans.len(), 2);
    assert_eq!(b.vxlans[1].name, "vx-data");
    let (va, vb) = (&a.vxlans[0], &b.vxlans[0]);
    assert_eq!((va.name.as_str(), va.vni, va.port), ("vx-back", 501, 4789));
    assert_eq!((vb.name.as_str(), vb.vni, vb.port), ("vx-back", 501, 4789));
    assert_eq!(va.local, Some(ip("192.0.2.1")));
    assert_eq!(va.peer, VxlanPeer::Remote(ip("192.0.2.2")));
    assert_eq!(vb.local, Some(ip("192.0.2.2")));
    assert_eq!(vb.peer, VxlanPeer::Remote(ip("192.0.2.1")));
    for v in [va, vb] {
        assert_eq!(v.underlay, VxlanUnderlay::Host);
        assert_eq!(v.dev.as_deref(), Some("eth1"));
        assert_eq!(v.network, "back");
    }
}

#[test]
fn the_router_host_gets_the_router_policy_and_host_link() {
    let a = split().for_host("a").unwrap();
    assert_eq!(names(a.nodes.iter().map(|n| &n.name)), ["web", "api"]);
    assert!(!a.router.as_ref().unwrap().remote);
    assert_eq!(
        names(a.networks.iter().map(|n| &n.name)),
        ["front", "back", "data"],
        "the router touches every tier"
    );
    assert_eq!(a.policy.len(), 1);
    assert!(a.host.is_some());
    assert!(a.impairments.is_empty());
    assert_eq!(names(a.services.iter().map(|s| &s.name)), ["api"]);

    let plan = Plan::for_run(&a, "r1", Naming::Named { prefix: "x".into() }).unwrap();
    assert!(plan.namespaces.iter().any(|n| n.role == NsRole::Router));
    assert_eq!(plan.firewalls.len(), 1);
    assert!(plan.host_link.is_some());
}

#[test]
fn another_host_builds_no_router_but_routes_via_it() {
    let b = split().for_host("b").unwrap();
    assert_eq!(names(b.nodes.iter().map(|n| &n.name)), ["worker", "db"]);
    assert!(b.router.as_ref().unwrap().remote);
    assert_eq!(names(b.networks.iter().map(|n| &n.name)), ["back", "data"]);
    assert!(
        b.policy.is_empty(),
        "the policy is enforced in the router, on a"
    );
    assert!(b.host.is_none());
    assert_eq!(b.impairments.len(), 1);
    // The db service's instance is here; its placeholders were resolved against the whole.
    assert_eq!(names(b.services.iter().map(|s| &s.name)), ["db"]);

    let plan = Plan::for_run(&b, "r1", Naming::Named { prefix: "x".into() }).unwrap();
    assert!(plan.namespaces.iter().all(|n| n.role != NsRole::Router));
    assert!(plan.firewalls.is_empty());
    assert!(plan.host_link.is_none());
    let worker_default = plan
        .routes
        .iter()
        .find(|r| r.ns == "worker")
        .expect("worker has a default route");
    assert_eq!(
        worker_default.via,
        Some(ip("10.2.0.1")),
        "the router on host a"
    );
    assert_eq!(plan.vxlans[0].master.as_deref(), Some("br-back"));
}

#[test]
fn the_shares_together_cover_the_whole_exactly_once() {
    let t = split();
    let shares: Vec<Topology> = ["a", "b"].iter().map(|h| t.for_host(h).unwrap()).collect();
    let mut nodes: Vec<&str> = shares
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| n.name.as_str()))
        .collect();
    nodes.sort();
    let mut all: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
    all.sort();
    assert_eq!(nodes, all, "every node on exactly one host");
    let routers = shares
        .iter()
        .filter(|s| s.router.as_ref().is_some_and(|r| !r.remote))
        .count();
    assert_eq!(routers, 1);
    let networks: BTreeSet<&str> = shares
        .iter()
        .flat_map(|s| s.networks.iter().map(|n| n.name.as_str()))
        .collect();
    assert_eq!(networks.len(), t.networks.len());
    let policy: usize = shares.iter().map(|s| s.policy.len()).sum();
    assert_eq!(policy, t.policy.len());
    let instances: usize = shares
        .iter()
        .flat_map(|s| &s.services)
        .map(|s| s.instances.len())
        .sum();
    let whole: usize = t.services.iter().map(|s| s.instances.len()).sum();
    assert_eq!(instances, whole);
    let impairments: usize = shares.iter().map(|s| s.impairments.len()).sum();
    assert_eq!(impairments, t.impairments.len());
}

#[test]
fn without_a_placement_there_is_no_share() {
    let text = TWO_HOSTS.split("[placement]").next().unwrap().to_string();
    let t = Topology::from_str(&text).unwrap();
    assert!(t.placement.is_none());
    let e = t.for_host("a").unwrap_err();
    assert_eq!(e.field(), "placement");
}

#[test]
fn the_three_tier_placement_stretches_only_the_backend() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/three-tier.toml"
    );
    let t = Topology::from_path(path).unwrap();
    let p = t.placement.as_ref().unwrap();
    assert_eq!(
        p.hosts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["vm1", "vm2", "vm3"]
    );
    assert_eq!(p.overlay.len(), 1);
    let o = &p.overlay[0];
    assert_eq!(
        (o.network.as_str(), o.vni, o.group),
        ("backend", 100, Some(ip("239.1.1.100")))
    );
    assert_eq!(o.hosts, ["vm1", "vm2", "vm3"]);
    let vm3 = t.for_host("vm3").unwrap();
    assert_eq!(
        names(vm3.nodes.iter().map(|n| &n.name)),
        ["product-2", "order-2"]
    );
    assert_eq!(vm3.vxlans[0].peer, VxlanPeer::Group(ip("239.1.1.100")));
    assert_eq!(vm3.vxlans[0].dev.as_deref(), Some("eth0"));
    // Databases are declared once, with the service that uses them.
    assert_eq!(t.service("product").unwrap().data["database"], "products");
    assert_eq!(t.service("order").unwrap().data["database"], "orders");
}
