//! A veth pair between two namespaces: both ends created in one netlink message, each
//! already in its own namespace; then ping and a TCP exchange across it.
//!
//! Asserts: each end is in its namespace only, an ICMP echo is answered, "ping" sent over
//! TCP comes back as "pong", and a port nobody listens on is refused.
//!
//! Run as root: `cargo run -p netns-kit --example veth_pair`.

use std::error::Error;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netns_kit::addr::Address;
use netns_kit::link::{self, LinkChange};
use netns_kit::probe::{self, TcpProbe};
use netns_kit::Netns;

fn main() -> Result<(), Box<dyn Error>> {
    // Two anonymous namespaces, held by file descriptor: they vanish when dropped.
    let left = Netns::new_anonymous()?;
    let right = Netns::new_anonymous()?;

    // One message from `left`: "veth-l" (index 10) stays here, "veth-r" (index 11) is born
    // in `right`. Two different indexes: with equal ones the kernel brings the pair up to
    // operational state up to a second later (see `link::wait_oper_up`).
    let mut nl_left = left.netlink()?;
    link::veth("veth-l", "veth-r")
        .index(10)
        .up()
        .peer_index(11)
        .peer_netns(right.fd())
        .create(&mut nl_left)?;
    let left_ip: IpAddr = "10.10.0.1".parse()?;
    let right_ip: IpAddr = "10.10.0.2".parse()?;
    Address::new(10, left_ip, 24)?.add(&mut nl_left)?;

    // The peer end is configured from its own namespace (a socket opened inside it).
    let mut nl_right = right.netlink()?;
    Address::new(11, right_ip, 24)?.queue_add(&mut nl_right);
    LinkChange::of(11).up().queue(&mut nl_right);
    nl_right.flush()?;
    // Both ends up: wait until the kernel has made them operational (until then a packet
    // can be lost, and a first ping or SYN would wait a second for its retry).
    link::wait_oper_up(&mut nl_left, 10, Duration::from_secs(2))?;
    link::wait_oper_up(&mut nl_right, 11, Duration::from_secs(2))?;

    assert!(link::by_name(&mut nl_left, "veth-r")?.is_none());
    assert!(link::by_name(&mut nl_right, "veth-r")?.is_some());

    // ping
    let rtt = probe::icmp_echo(&left, right_ip, Duration::from_secs(2))?
        .ok_or("no echo reply from 10.10.0.2")?;
    println!("ping 10.10.0.1 -> 10.10.0.2: {rtt:?}");

    // TCP: a listener opened inside `right`, served from a thread of this process.
    let server = SocketAddr::new(right_ip, 7000);
    let listener = probe::listen_tcp(&right, server)?;
    let pong = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf)?;
        conn.write_all(if &buf == b"ping" { b"pong" } else { b"what" })
    });
    let (outcome, stream) = probe::tcp_connect_stream(&left, server, Duration::from_secs(2))?;
    assert_eq!(outcome, TcpProbe::Reachable);
    let mut stream = stream.ok_or("reachable, yet no stream")?;
    stream.write_all(b"ping")?;
    let mut answer = [0u8; 4];
    stream.read_exact(&mut answer)?;
    pong.join().map_err(|_| "server thread panicked")??;
    assert_eq!(&answer, b"pong");
    println!("tcp {server}: sent \"ping\", got \"pong\"");

    // Nobody listens on 7001: the far side answers with a reset.
    let closed = SocketAddr::new(right_ip, 7001);
    assert_eq!(
        probe::tcp_connect(&left, closed, Duration::from_secs(2))?,
        TcpProbe::Refused
    );
    println!("tcp {closed}: refused");
    Ok(())
}
