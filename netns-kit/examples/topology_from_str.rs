//! A topology from a string: `Topology::from_str` validates everything before the kernel is
//! touched (a mistake comes back naming its field), allocates the addresses left out and
//! derives interface names; `apply_topology` builds it as one transaction; `destroy` removes
//! it.
//!
//! Asserts: a file with a mistake is rejected naming the field; the allocated addresses are
//! the lowest free ones; a node reaches the other over TCP; destroy reports no leftover.
//!
//! Run as root: `cargo run -p netns-kit --example topology_from_str`.

use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netns_kit::probe::{self, TcpProbe};
use netns_kit::{ApplyOptions, LiveTopology, Topology};

const TOPOLOGY: &str = r#"
name = "pair"

[[networks]]
name = "lan"
subnet = "10.70.0.0/24"

[[nodes]]
name = "client"
interfaces = [{ network = "lan" }]

[[nodes]]
name = "server"
interfaces = [{ network = "lan" }]
"#;

fn main() -> Result<(), Box<dyn Error>> {
    // Validation first: a reference to a network that does not exist never reaches the kernel.
    let typo = TOPOLOGY.replace(r#"[{ network = "lan" }]"#, r#"[{ network = "lna" }]"#);
    let err = Topology::from_str(&typo)
        .err()
        .ok_or("a typo was accepted")?;
    println!("rejected: {err}");
    assert!(err.field().starts_with("nodes[0]"), "{}", err.field());

    let topology = Topology::from_str(TOPOLOGY)?;
    let address = |node: &str| -> Result<IpAddr, Box<dyn Error>> {
        let iface = topology.node(node).and_then(|n| n.interfaces.first());
        Ok(iface.ok_or("node without interface")?.address)
    };
    let (client, server) = (address("client")?, address("server")?);
    println!("allocated: client {client}, server {server}");
    assert_eq!(client, "10.70.0.1".parse::<IpAddr>()?);
    assert_eq!(server, "10.70.0.2".parse::<IpAddr>()?);

    let lab = LiveTopology::apply_topology(&topology, ApplyOptions::default())?;
    println!("applied run {} of {:?}", lab.run_id(), lab.topology());
    let target = SocketAddr::new(server, 9000);
    let _listener = probe::listen_tcp(lab.netns("server").ok_or("no server node")?, target)?;
    let outcome = lab.probe_tcp("client", target, Duration::from_secs(2))?;
    println!("client -> {target}: {outcome:?}");
    assert_eq!(outcome, TcpProbe::Reachable);

    lab.destroy()?; // what drop does, but reporting anything left behind
    println!("destroyed");
    Ok(())
}
