//! The README's library example: declare two networks behind a router with one allow-list
//! rule, build it, prove one allowed and one denied path with real TCP, and tear everything
//! down.
//!
//! Asserts: `web` reaches `db` on 5432 (the policy allows it); `guest`, on the same network
//! as `web`, times out (the router drops it).
//!
//! Run as root: `cargo run -p netns-kit --example quickstart`.

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use netns_kit::probe;
use netns_kit::{ApplyOptions, LiveTopology, TcpProbe, Topology};

fn main() -> Result<(), Box<dyn Error>> {
    let topology = Topology::from_str(
        r#"
        name = "quickstart"
        [[networks]]
        name = "front"
        subnet = "10.80.0.0/24"
        [[networks]]
        name = "back"
        subnet = "10.81.0.0/24"
        [router]
        networks = ["front", "back"]
        [[nodes]]
        name = "web"
        interfaces = [{ network = "front", address = "10.80.0.10" }]
        [[nodes]]
        name = "guest"
        interfaces = [{ network = "front", address = "10.80.0.20" }]
        [[nodes]]
        name = "db"
        interfaces = [{ network = "back", address = "10.81.0.10" }]
        [[policy]]
        from = "web"
        to = "db"
        proto = "tcp"
        ports = [5432]
        "#,
    )?; // validated completely before anything is touched
        // Anonymous namespaces held by fd, a fresh run id, no host link: safe to run in parallel.
    let lab = LiveTopology::apply_topology(&topology, ApplyOptions::default())?;

    // Something listening on the database node.
    let db: SocketAddr = "10.81.0.10:5432".parse()?;
    let _listener = probe::listen_tcp(lab.netns("db").ok_or("no db node")?, db)?;

    // An answer returns at once; the deadline only bounds the wait for a dropped SYN (and
    // covers a SYN retried after 1 s, if a link was still being activated by the kernel).
    let from_web = lab.probe_tcp("web", db, Duration::from_secs(2))?;
    let from_guest = lab.probe_tcp("guest", db, Duration::from_millis(300))?;
    println!("web -> db: {from_web:?}; guest -> db: {from_guest:?}");
    assert_eq!(from_web, TcpProbe::Reachable);
    assert_eq!(from_guest, TcpProbe::TimedOut);

    lab.destroy()?; // or just drop it: every namespace, link, rule and process goes
    Ok(())
}
