//! The README's library example: build the three tiers, prove one allowed and one denied
//! path with real TCP, and tear everything down when the handle drops.
//!
//! Run as root: `cargo run -p netns-kit --example quickstart`.

use std::net::SocketAddr;
use std::time::Duration;

use netns_kit::probe::{self, TcpProbe};
use netns_kit::topology::live::{ApplyOptions, LiveTopology};
use netns_kit::topology::Topology;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let topology = Topology::from_path("ecomm-services/deploy/three-tier.toml")?;
    // Anonymous namespaces held by fd, a fresh run id, no host link: safe to run in parallel.
    let lab = LiveTopology::apply_topology(&topology, ApplyOptions::default())?;

    // Something listening on the database tier.
    let postgres: SocketAddr = "172.22.0.20:5432".parse()?;
    let _listener = probe::listen_tcp(lab.netns("postgres").ok_or("no postgres node")?, postgres)?;

    // The order service may reach PostgreSQL; the gateway may not (the router drops it).
    let from_order = lab.probe_tcp("order-1", postgres, Duration::from_millis(300))?;
    let from_gateway = lab.probe_tcp("gateway", postgres, Duration::from_millis(300))?;
    assert_eq!(from_order, TcpProbe::Reachable);
    assert_eq!(from_gateway, TcpProbe::TimedOut);
    println!("order-1 -> postgres: {from_order:?}; gateway -> postgres: {from_gateway:?}");

    lab.destroy()?; // or just drop it
    Ok(())
}
