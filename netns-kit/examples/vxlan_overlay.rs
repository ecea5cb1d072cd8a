//! VXLAN between two namespaces: two "hosts" joined by a veth underlay (10.30.0.0/24), a
//! VXLAN (VNI 42) on each, and on host B a bridge that puts the VXLAN and a node on one
//! L2 segment. Host A reaches the node over the overlay (192.0.2.0/24) only: the node has
//! no underlay address and no route to it.
//!
//! Asserts: the node answers an ICMP echo and accepts a TCP connection from host A.
//!
//! Run as root: `cargo run -p netns-kit --example vxlan_overlay`.

use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netns_kit::addr::Address;
use netns_kit::link::vxlan::VxlanParams;
use netns_kit::link::{self, LinkChange, VxlanRemote};
use netns_kit::probe::{self, TcpProbe};
use netns_kit::Netns;

/// Interface indexes, chosen up front so one batch can refer to links it creates.
const UNDERLAY: u32 = 10;
const UNDERLAY_B: u32 = 20;
const VXLAN: u32 = 11;
const BRIDGE: u32 = 12;
const NODE_PORT: u32 = 13;

fn main() -> Result<(), Box<dyn Error>> {
    let host_a = Netns::new_anonymous()?;
    let host_b = Netns::new_anonymous()?;
    let node = Netns::new_anonymous()?;
    let under_a: IpAddr = "10.30.0.1".parse()?;
    let under_b: IpAddr = "10.30.0.2".parse()?;
    let over_a: IpAddr = "192.0.2.1".parse()?;
    let over_node: IpAddr = "192.0.2.20".parse()?;

    // The underlay: one veth between the two hosts (the ends' indexes differ, so the
    // kernel makes them operational at once; see `link::wait_oper_up`).
    let mut nl_a = host_a.netlink()?;
    link::veth("under", "under")
        .index(UNDERLAY)
        .up()
        .peer_index(UNDERLAY_B)
        .peer_netns(host_b.fd())
        .create(&mut nl_a)?;
    let mut nl_b = host_b.netlink()?;
    LinkChange::of(UNDERLAY_B).up().queue(&mut nl_b);
    Address::new(UNDERLAY_B, under_b, 24)?.queue_add(&mut nl_b);
    nl_b.flush()?;

    // A VXLAN on each host, pointing at the other's underlay address.
    let tunnel = |local, remote, dev| VxlanParams {
        vni: 42,
        local: Some(local),
        remote: Some(VxlanRemote::Remote(remote)),
        port: 4789,
        dev: Some(dev),
    };
    Address::new(UNDERLAY, under_a, 24)?.queue_add(&mut nl_a);
    link::vxlan("vx0", 42)
        .vxlan_params(&tunnel(under_a, under_b, UNDERLAY))
        .index(VXLAN)
        .up()
        .queue(&mut nl_a)?;
    Address::new(VXLAN, over_a, 24)?.queue_add(&mut nl_a);
    nl_a.flush()?;

    // Host B bridges its VXLAN with a veth into the node.
    link::bridge("br0").index(BRIDGE).up().queue(&mut nl_b)?;
    link::vxlan("vx0", 42)
        .vxlan_params(&tunnel(under_b, under_a, UNDERLAY_B))
        .index(VXLAN)
        .master(BRIDGE)
        .up()
        .queue(&mut nl_b)?;
    link::veth("to-node", "eth0")
        .index(NODE_PORT)
        .master(BRIDGE)
        .up()
        .peer_index(10)
        .peer_netns(node.fd())
        .queue(&mut nl_b)?;
    nl_b.flush()?;

    let mut nl_node = node.netlink()?;
    LinkChange::of(10).up().queue(&mut nl_node);
    Address::new(10, over_node, 24)?.queue_add(&mut nl_node);
    nl_node.flush()?;

    // Every veth end activated by the kernel before the first packet.
    let up = Duration::from_secs(2);
    link::wait_oper_up(&mut nl_a, UNDERLAY, up)?;
    link::wait_oper_up(&mut nl_b, UNDERLAY_B, up)?;
    link::wait_oper_up(&mut nl_b, NODE_PORT, up)?;
    link::wait_oper_up(&mut nl_node, 10, up)?;

    // Host A -> node, over the tunnel.
    let rtt = probe::icmp_echo(&host_a, over_node, Duration::from_secs(3))?
        .ok_or("no echo reply from the node over the overlay")?;
    println!("ping {over_a} -> {over_node} (VNI 42 over {under_a} -> {under_b}): {rtt:?}");
    let server = SocketAddr::new(over_node, 8080);
    let _listener = probe::listen_tcp(&node, server)?;
    let outcome = probe::tcp_connect(&host_a, server, Duration::from_secs(3))?;
    println!("tcp {over_a} -> {server}: {outcome:?}");
    assert_eq!(outcome, TcpProbe::Reachable);
    Ok(())
}
