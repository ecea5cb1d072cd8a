//! Async probes (the `tokio` feature): a tokio listener inside an anonymous namespace, then
//! three probes awaited at once — to the listener, to a port nobody listens on, and to a
//! port whose packets the namespace's firewall drops. Each probe's socket is created by a thread
//! inside the namespace (a socket keeps its namespace) and connected by tokio; no tokio
//! thread ever enters the namespace.
//!
//! Asserts the three answers — Reachable, Refused, TimedOut — and that a closure given to
//! `Netns::run_async` ran inside the namespace while the runtime's own thread stayed out.
//!
//! Run as root: `cargo run -p netns-kit --example tokio_probe --features tokio`.

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use netns_kit::firewall::{self, Action, Hook, PortRange, Proto, Rule};
use netns_kit::link::LinkChange;
use netns_kit::tokio::{listen_tcp_async, probe_tcp_async};
use netns_kit::{Netns, Ruleset, TcpProbe};

/// The port the namespace's firewall drops (on 127.0.0.1, like the others).
const DROPPED: u16 = 7002;

fn main() -> Result<(), Box<dyn Error>> {
    // Kernel setup is synchronous and happens before the runtime exists: `lo` up, and a
    // ruleset whose input chain drops TCP to port 7002.
    let ns = Netns::new_anonymous()?;
    LinkChange::of(1).up().apply(&mut ns.netlink()?)?;
    let ruleset = Ruleset {
        rules: vec![Rule::new(Hook::Input, Action::Drop)
            .proto(Proto::Tcp, vec![PortRange::single(DROPPED)])],
        ..Ruleset::default()
    };
    firewall::apply::load(&ns, &ruleset)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(probe(&ns))
}

async fn probe(ns: &Netns) -> Result<(), Box<dyn Error>> {
    // A closure on a dedicated thread inside the namespace, awaited.
    let inside = ns
        .run_async(|| Netns::current_thread().map(|n| n.inode()))
        .await??;
    let here = Netns::current_thread()?.inode();
    assert_eq!(
        inside,
        ns.inode(),
        "run_async's closure ran outside the namespace"
    );
    assert_ne!(
        here,
        ns.inode(),
        "the runtime's thread entered the namespace"
    );
    println!("run_async: closure in netns:[{inside}], runtime thread in netns:[{here}]");

    // A tokio listener inside the namespace, accepting on a tokio task.
    let listener = listen_tcp_async(ns, "127.0.0.1:7000".parse()?).await?;
    let open = listener.local_addr()?;
    let server = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            drop(conn);
        }
    });

    let closed: SocketAddr = "127.0.0.1:7001".parse()?;
    let dropped = SocketAddr::from(([127, 0, 0, 1], DROPPED));
    let deadline = Duration::from_millis(500);
    let (a, b, c) = tokio::join!(
        probe_tcp_async(ns, open, deadline),
        probe_tcp_async(ns, closed, deadline),
        probe_tcp_async(ns, dropped, deadline),
    );
    for (addr, got, want) in [
        (open, a?, TcpProbe::Reachable),
        (closed, b?, TcpProbe::Refused),
        (dropped, c?, TcpProbe::TimedOut),
    ] {
        println!("tcp {addr:<14} {got:?}");
        assert_eq!(got, want, "probe to {addr}");
    }
    server.abort();
    Ok(())
}
