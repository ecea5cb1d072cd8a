//! A bridge with ports: three namespaces on one bridge, the bridge in a fabric namespace of
//! its own (never the host's). Each port is a veth whose bridge end is enslaved as it is
//! created and whose other end is born inside its node.
//!
//! Asserts: the bridge has exactly three ports, and every node reaches every other over TCP.
//!
//! Run as root: `cargo run -p netns-kit --example bridge_ports`.

use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netns_kit::addr::Address;
use netns_kit::link::{self, LinkChange};
use netns_kit::probe::{self, TcpProbe};
use netns_kit::Netns;

const BRIDGE: u32 = 100;

fn main() -> Result<(), Box<dyn Error>> {
    let fabric = Netns::new_anonymous()?;
    let nodes = [
        ("a", Netns::new_anonymous()?, "10.20.0.1".parse::<IpAddr>()?),
        ("b", Netns::new_anonymous()?, "10.20.0.2".parse()?),
        ("c", Netns::new_anonymous()?, "10.20.0.3".parse()?),
    ];

    // The bridge and its ports, in one batch on the fabric's socket: indexes are chosen up
    // front, so a port can name its master before the kernel has answered anything.
    let mut nl = fabric.netlink()?;
    link::bridge("br0").index(BRIDGE).up().queue(&mut nl)?;
    for (i, (name, ns, _)) in nodes.iter().enumerate() {
        link::veth(&format!("port-{name}"), "eth0")
            .index(BRIDGE + 1 + i as u32)
            .master(BRIDGE)
            .up()
            .peer_index(10)
            .peer_netns(ns.fd())
            .queue(&mut nl)?;
    }
    nl.flush()?;

    // Inside each node: eth0 up, one address on the bridge's subnet; then wait until the
    // kernel has activated both ends of the port (the bridge forwards from then on).
    for (i, (_, ns, ip)) in nodes.iter().enumerate() {
        let mut node_nl = ns.netlink()?;
        LinkChange::of(10).up().queue(&mut node_nl);
        Address::new(10, *ip, 24)?.queue_add(&mut node_nl);
        node_nl.flush()?;
        link::wait_oper_up(&mut node_nl, 10, Duration::from_secs(2))?;
        link::wait_oper_up(&mut nl, BRIDGE + 1 + i as u32, Duration::from_secs(2))?;
    }

    let ports: Vec<String> = link::list(&mut nl)?
        .into_iter()
        .filter(|l| l.master == Some(BRIDGE))
        .map(|l| l.name)
        .collect();
    println!("br0 ports: {}", ports.join(", "));
    assert_eq!(ports.len(), 3);

    // A listener in every node; every node connects to every other one.
    let listeners = nodes
        .iter()
        .map(|(_, ns, ip)| probe::listen_tcp(ns, SocketAddr::new(*ip, 7000)))
        .collect::<Result<Vec<_>, _>>()?;
    for (from, ns, _) in &nodes {
        for (to, _, ip) in nodes.iter().filter(|(to, _, _)| to != from) {
            let target = SocketAddr::new(*ip, 7000);
            let outcome = probe::tcp_connect(ns, target, Duration::from_secs(2))?;
            println!("{from} -> {to} ({target}): {outcome:?}");
            assert_eq!(outcome, TcpProbe::Reachable);
        }
    }
    drop(listeners);
    Ok(())
}
