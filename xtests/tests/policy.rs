//! The tier policy of ARCHITECTURE.md, row by row, both directions, with real TCP connections from
//! inside the namespaces: a listener on every port that matters, then a connection attempt
//! from each side. Allowed means the handshake completes; denied means no answer at all
//! (the router drops it), never a reset.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use xtests::ns::TcpOutcome::{self, Reachable, TimedOut};
use xtests::Lab;

/// How long a denied connection is given before it counts as dropped.
const DEADLINE: Duration = Duration::from_millis(1500);

/// Opens a listener on `port` at `node`'s address, inside its namespace.
fn listen(lab: &Lab, node: &str, port: u16) -> TcpListener {
    let addr = SocketAddr::new(lab.addr(node).unwrap().ip(), port);
    lab.ns(node)
        .unwrap()
        .run(move || TcpListener::bind(addr))
        .unwrap()
        .unwrap()
}

#[test]
fn every_row_of_the_tier_policy_holds_in_both_directions() {
    if !xtests::privileged("the tier policy test") {
        return;
    }
    let lab = Lab::builder().network_only().start().unwrap();

    // Every service port listens, plus one port no rule opens (9999) on every node.
    let mut listeners = Vec::new();
    for (node, port) in [
        ("gateway", 3000),
        ("registry", 8500),
        ("product-1", 8001),
        ("product-2", 8001),
        ("order-1", 8002),
        ("redis", 6379),
        ("postgres", 5432),
    ] {
        listeners.push(listen(&lab, node, port));
        listeners.push(listen(&lab, node, 9999));
    }

    let at = |node: &str, port: u16| SocketAddr::new(lab.addr(node).unwrap().ip(), port);
    #[rustfmt::skip]
    let expectations: Vec<(&str, &str, SocketAddr, TcpOutcome)> = vec![
        // frontend -> backend: tcp 8500, 8001, 8002 only.
        ("frontend -> backend registry",   "gateway", at("registry", 8500), Reachable),
        ("frontend -> backend product-1",  "gateway", at("product-1", 8001), Reachable),
        ("frontend -> backend product-2",  "gateway", at("product-2", 8001), Reachable),
        ("frontend -> backend order-1",    "gateway", at("order-1", 8002), Reachable),
        ("frontend -> backend other port", "gateway", at("registry", 9999), TimedOut),
        ("frontend -> backend other port", "gateway", at("product-1", 9999), TimedOut),
        // backend -> frontend: nothing new (the reverse of the row above).
        ("backend -> frontend", "registry",  at("gateway", 3000), TimedOut),
        ("backend -> frontend", "product-1", at("gateway", 3000), TimedOut),
        ("backend -> frontend", "order-1",   at("gateway", 3000), TimedOut),
        // backend -> backend: all (same bridge).
        ("backend -> backend", "registry",  at("product-1", 8001), Reachable),
        ("backend -> backend", "product-1", at("order-1", 8002), Reachable),
        ("backend -> backend", "order-1",   at("product-2", 9999), Reachable),
        ("backend -> backend", "product-2", at("registry", 8500), Reachable),
        // backend -> database: product -> 6379, 5432; order -> 5432; nothing else.
        ("product -> redis",      "product-1", at("redis", 6379), Reachable),
        ("product -> redis",      "product-2", at("redis", 6379), Reachable),
        ("product -> postgres",   "product-1", at("postgres", 5432), Reachable),
        ("product -> postgres",   "product-2", at("postgres", 5432), Reachable),
        ("order -> postgres",     "order-1",   at("postgres", 5432), Reachable),
        ("order -> redis",        "order-1",   at("redis", 6379), TimedOut),
        ("registry -> redis",     "registry",  at("redis", 6379), TimedOut),
        ("registry -> postgres",  "registry",  at("postgres", 5432), TimedOut),
        ("product -> db other",   "product-1", at("postgres", 9999), TimedOut),
        // frontend -> database: nothing.
        ("frontend -> redis",     "gateway", at("redis", 6379), TimedOut),
        ("frontend -> postgres",  "gateway", at("postgres", 5432), TimedOut),
        // database -> anywhere: nothing new (replies only).
        ("database -> backend",   "redis",    at("product-1", 8001), TimedOut),
        ("database -> backend",   "postgres", at("order-1", 8002), TimedOut),
        ("database -> backend",   "postgres", at("registry", 8500), TimedOut),
        ("database -> frontend",  "redis",    at("gateway", 3000), TimedOut),
        ("database -> frontend",  "postgres", at("gateway", 3000), TimedOut),
        // database -> database: same bridge, no router in the way.
        ("database -> database",  "redis",    at("postgres", 5432), Reachable),
    ];

    // Probe in parallel: every denied attempt waits out the full deadline.
    let observed: Vec<TcpOutcome> = std::thread::scope(|s| {
        let handles: Vec<_> = expectations
            .iter()
            .map(|(_, from, to, _)| {
                let lab = &lab;
                s.spawn(move || lab.tcp(from, *to, DEADLINE).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let wrong: Vec<String> = expectations
        .iter()
        .zip(&observed)
        .filter(|((_, _, _, want), got)| want != *got)
        .map(|((row, from, to, want), got)| {
            format!("{row}: {from} -> {to}: expected {want:?}, got {got:?}")
        })
        .collect();
    assert!(wrong.is_empty(), "policy violations:\n{}", wrong.join("\n"));
    drop(listeners);
}
