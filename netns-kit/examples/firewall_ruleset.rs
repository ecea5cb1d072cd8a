//! A firewall ruleset: netns-kit's one nftables table in a namespace, loaded over
//! nf_tables netlink as one atomic transaction (no `nft` process). Default-deny input,
//! replies allowed, two ports opened; proven with TCP probes from a client namespace.
//!
//! Asserts: before the table, port 9090 is reachable; with it, 8080 (allowed, listening) is
//! Reachable, 9090 (not allowed) TimedOut — the SYN is dropped — and 7070 (allowed, nobody
//! listening) Refused; once the table is deleted, 9090 is reachable again.
//!
//! Run as root: `cargo run -p netns-kit --example firewall_ruleset`.

use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netns_kit::addr::Address;
use netns_kit::firewall::{apply as nft, Action, Hook, Policy, PortRange, Proto, Rule};
use netns_kit::link::{self, LinkChange};
use netns_kit::probe::{self, TcpProbe};
use netns_kit::{Netns, Ruleset};

fn main() -> Result<(), Box<dyn Error>> {
    let client = Netns::new_anonymous()?;
    let server = Netns::new_anonymous()?;
    let server_ip: IpAddr = "10.40.0.2".parse()?;
    let mut client_nl = client.netlink()?;
    link::veth("eth0", "eth0")
        .index(10)
        .up()
        .peer_index(11)
        .peer_netns(server.fd())
        .create(&mut client_nl)?;
    Address::new(10, "10.40.0.1".parse()?, 24)?.add(&mut client_nl)?;
    let mut server_nl = server.netlink()?;
    LinkChange::of(11).up().queue(&mut server_nl);
    Address::new(11, server_ip, 24)?.queue_add(&mut server_nl);
    server_nl.flush()?;
    link::wait_oper_up(&mut client_nl, 10, Duration::from_secs(2))?;
    link::wait_oper_up(&mut server_nl, 11, Duration::from_secs(2))?;

    let _web = probe::listen_tcp(&server, SocketAddr::new(server_ip, 8080))?;
    let _admin = probe::listen_tcp(&server, SocketAddr::new(server_ip, 9090))?;
    let probe = |port| {
        probe::tcp_connect(
            &client,
            SocketAddr::new(server_ip, port),
            Duration::from_millis(300),
        )
    };
    assert_eq!(probe(9090)?, TcpProbe::Reachable);

    let allow = |port| {
        Rule::new(Hook::Input, Action::Accept)
            .proto(Proto::Tcp, vec![PortRange::single(port)])
            .comment(format!("allow tcp {port}"))
    };
    let ruleset = Ruleset {
        input: Policy::Drop,
        rules: vec![
            Rule::established_related(Hook::Input),
            allow(8080),
            allow(7070),
        ],
        ..Ruleset::default()
    };
    ruleset.validate()?;
    nft::load(&server, &ruleset)?;
    assert!(nft::table_exists(&server, &ruleset.table)?);

    for (port, expected) in [
        (8080, TcpProbe::Reachable),
        (9090, TcpProbe::TimedOut),
        (7070, TcpProbe::Refused),
    ] {
        let outcome = probe(port)?;
        println!("client -> {server_ip}:{port}: {outcome:?}");
        assert_eq!(outcome, expected, "port {port}");
    }

    nft::delete_table(&server, &ruleset.table)?;
    assert_eq!(probe(9090)?, TcpProbe::Reachable);
    println!("table deleted: {server_ip}:9090 reachable again");
    Ok(())
}
