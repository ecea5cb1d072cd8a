//! A placement applied for real: each of two "machines" builds only its share
//! (`Topology::for_host`), the derived VXLAN stretches the backend across them, and a node on
//! the host without the router still reaches the other tier through the router on the first
//! host — under its policy. Two namespaces joined by a veth stand in for the machines, so the
//! test never touches the real root namespace.

mod privileged_support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netns_kit::addr::Address;
use netns_kit::link::{self, LinkChange};
use netns_kit::netns::Netns;
use netns_kit::probe::{self, TcpProbe};
use netns_kit::topology::live::{ApplyOptions, LiveTopology};
use netns_kit::topology::Topology;
use privileged_support::{privileged, Acceptor};

const SPLIT: &str = r#"
name = "placed"

[[networks]]
name = "front"
subnet = "10.71.0.0/24"

[[networks]]
name = "back"
subnet = "10.72.0.0/24"

[router]
networks = ["front", "back"]

[[nodes]]
name = "web"
interfaces = [{ network = "front", address = "10.71.0.10" }]

[[nodes]]
name = "api"
interfaces = [{ network = "back", address = "10.72.0.10" }]

[[nodes]]
name = "db"
interfaces = [{ network = "back", address = "10.72.0.20" }]

[[policy]]
from = "web"
to = "db"
proto = "tcp"
ports = [5432]

[placement]
one = ["router", "web", "api"]
two = ["db"]

[underlay]
dev = "eth0"
hosts = { one = "10.79.0.1", two = "10.79.0.2" }
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Two "machines" joined by a veth: `eth0` in each, at the declared underlay addresses.
fn two_hosts() -> [Netns; 2] {
    let hosts = [
        Netns::new_anonymous().unwrap(),
        Netns::new_anonymous().unwrap(),
    ];
    let mut nl = hosts[0].netlink().unwrap();
    link::veth("eth0", "eth0")
        .index(100)
        .up()
        .peer_index(100)
        .peer_netns(hosts[1].fd())
        .create(&mut nl)
        .unwrap();
    for (h, a) in hosts.iter().zip(["10.79.0.1", "10.79.0.2"]) {
        let mut nl = h.netlink().unwrap();
        LinkChange::of(1).up().queue(&mut nl);
        LinkChange::of(100).up().queue(&mut nl);
        Address::new(100, ip(a), 24).unwrap().queue_add(&mut nl);
        nl.flush().unwrap();
    }
    hosts
}

fn share(t: &Topology, host: &str, underlay: &Netns) -> LiveTopology {
    LiveTopology::apply_topology(
        &t.for_host(host).unwrap(),
        ApplyOptions {
            underlay_netns: Some(underlay.clone()),
            ..ApplyOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn two_shares_of_one_placement_form_one_network_under_the_routers_policy() {
    if !privileged("placement shares") {
        return;
    }
    let t = Topology::from_str(SPLIT).unwrap();
    let hosts = two_hosts();
    let links = |ns: &Netns| -> Vec<String> {
        link::list(&mut ns.netlink().unwrap())
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect()
    };
    let before: Vec<Vec<String>> = hosts.iter().map(links).collect();
    let one = share(&t, "one", &hosts[0]);
    let two = share(&t, "two", &hosts[1]);

    // Each host built only its own nodes.
    assert!(one.netns("db").is_none());
    assert!(two.netns("api").is_none());
    assert!(
        two.netns("router").is_none(),
        "the router lives on host one"
    );

    let serve = |port: u16| {
        Acceptor::serve(
            probe::listen_tcp(
                two.netns("db").unwrap(),
                SocketAddr::new(ip("10.72.0.20"), port),
            )
            .unwrap(),
        )
    };
    let allowed = serve(5432);
    let denied = serve(5433);
    let deadline = Duration::from_secs(3);

    // Same network, different hosts: across the derived VXLAN.
    assert_eq!(
        one.probe_tcp("api", allowed.addr, deadline).unwrap(),
        TcpProbe::Reachable
    );
    // Another tier: via the router on host one (db's default route points at it, over the
    // overlay), which lets web reach db:5432 and nothing else.
    assert_eq!(
        one.probe_tcp("web", allowed.addr, deadline).unwrap(),
        TcpProbe::Reachable
    );
    assert_eq!(
        one.probe_tcp("web", denied.addr, deadline).unwrap(),
        TcpProbe::TimedOut
    );
    drop((allowed, denied));
    drop(two);
    drop(one);
    // Nothing of either share is left on the "machines" (the VXLANs lived in the fabrics).
    let after: Vec<Vec<String>> = hosts.iter().map(links).collect();
    assert_eq!(after, before);
}
