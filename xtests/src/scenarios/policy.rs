//! The tier policy, every row, both ways, with real TCP: from every node to every other node
//! (of another tier, and of its own), on every declared service port and on one port no rule
//! opens. What to expect comes from the declaration
//! ([`netns_kit::topology::policy`]); allowed means the handshake completes, denied means no
//! answer at all (the router drops it) — never a reset.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use netns_kit::topology::policy as declared;
use netns_kit::topology::Topology;

use super::shape;
use super::{Needs, Scenario};
use crate::deployment::Deployment;
use crate::ns::TcpOutcome;

/// The scenarios of this group.
pub const ALL: [Scenario; 1] = [Scenario {
    name: "policy::every_row_of_the_tier_policy_holds_in_both_directions",
    needs: Needs {
        host_faults: false,
        partitions: false,
    },
    run: every_row_holds_in_both_directions,
}];

/// How long a denied connection is given before it counts as dropped.
pub const DEADLINE: Duration = Duration::from_secs(2);

/// A second look at a probe that disagreed, with a longer deadline (a busy machine may be
/// slow to complete an allowed handshake; a denied one must stay unanswered).
pub const RECHECK_DEADLINE: Duration = Duration::from_secs(6);

/// One connection attempt the matrix makes, and what the declaration says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The node the connection starts from.
    pub from: String,
    /// The node it goes to.
    pub to: String,
    /// Where: `to`'s address and the port.
    pub addr: SocketAddr,
    /// What must happen.
    pub expect: TcpOutcome,
}

/// The ports the matrix tries: every declared service port, plus [`unopened_port`].
pub fn ports(t: &Topology) -> Vec<u16> {
    let mut ports: BTreeSet<u16> = t.services.iter().filter_map(|s| s.port).collect();
    ports.insert(unopened_port(t));
    ports.into_iter().collect()
}

/// A TCP port no policy rule names and no service declares: the highest free one below
/// 10000 (9999 for the shipped files).
pub fn unopened_port(t: &Topology) -> u16 {
    let named = |p: u16| {
        t.policy
            .iter()
            .flat_map(|r| r.ports.iter())
            .any(|r| (r.first..=r.last).contains(&p))
            || t.services
                .iter()
                .any(|s| s.port == Some(p) || s.ports.values().any(|&q| q == p))
    };
    (1024..10000).rev().find(|&p| !named(p)).unwrap_or(9999)
}

/// The node pairs the matrix probes: every ordered pair of distinct nodes — across tiers,
/// where the router decides, and within each tier, where nothing may stand in the way.
pub fn pairs(t: &Topology) -> Vec<(String, String)> {
    let nodes: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut out = Vec::new();
    for a in &nodes {
        for b in &nodes {
            if a != b {
                out.push((a.to_string(), b.to_string()));
            }
        }
    }
    out
}

/// Every probe of the matrix with its expectation from the declared policy.
pub fn matrix(t: &Topology) -> Result<Vec<Probe>, String> {
    let ports = ports(t);
    let closed = unopened_port(t);
    let mut out = Vec::new();
    for (from, to) in pairs(t) {
        // Within a network nothing stands between two nodes: the target's own service
        // ports and one port nothing opens show it; across networks every port is tried.
        let same = declared::tcp(t, &from, &to, closed).map_err(|e| e.to_string())?
            == declared::Verdict::SameNetwork;
        let tried: Vec<u16> = if same {
            let mut own = shape::listening_ports(t, &to);
            own.push(closed);
            own
        } else {
            ports.clone()
        };
        for port in tried {
            let verdict = declared::tcp(t, &from, &to, port).map_err(|e| e.to_string())?;
            out.push(Probe {
                addr: shape::at(t, &to, port)?,
                expect: if verdict.allowed() {
                    TcpOutcome::Reachable
                } else {
                    TcpOutcome::TimedOut
                },
                from: from.clone(),
                to: to.clone(),
            });
        }
    }
    Ok(out)
}

/// Where the matrix needs a listener: a target port some probe must reach that no declared
/// service listens on. A denied probe needs none — an open path with nothing listening is
/// refused, which fails the check as surely as a completed handshake.
pub fn listeners_needed(t: &Topology, probes: &[Probe]) -> BTreeSet<(String, u16)> {
    probes
        .iter()
        .filter(|p| p.expect == TcpOutcome::Reachable)
        .filter(|p| !shape::listening_ports(t, &p.to).contains(&p.addr.port()))
        .map(|p| (p.to.clone(), p.addr.port()))
        .collect()
}

fn every_row_holds_in_both_directions(d: &dyn Deployment) -> Result<(), String> {
    let t = d.topology();
    let probes = matrix(t)?;
    // A listener wherever a probe must connect and no declared service listens.
    let started = std::time::Instant::now();
    let needed: Vec<(String, u16)> = listeners_needed(t, &probes).into_iter().collect();
    let listeners = d.listen_all(&needed).map_err(|e| format!("listen: {e}"))?;
    let listened = started.elapsed();

    let observed = probe_all(d, &probes, DEADLINE);
    let probed = started.elapsed() - listened;
    // The ones that disagreed, once more, together and with more time, before they count.
    let disagreed: Vec<(Probe, String)> = probes
        .iter()
        .zip(&observed)
        .filter(|(p, got)| got.as_ref() != Ok(&p.expect))
        .map(|(p, got)| (p.clone(), format!("{got:?}")))
        .collect();
    let retry: Vec<Probe> = disagreed.iter().map(|(p, _)| p.clone()).collect();
    let again = probe_all(d, &retry, RECHECK_DEADLINE);
    let mut wrong = Vec::new();
    for ((p, got), again) in disagreed.iter().zip(&again) {
        if again.as_ref() != Ok(&p.expect) {
            wrong.push(format!(
                "{} -> {} ({}): declared {:?}, got {got} then {again:?}",
                p.from, p.to, p.addr, p.expect
            ));
        }
    }
    eprintln!(
        "[policy] {} probes, {} listeners: listeners {:.1}s, probes {:.1}s, {} rechecked in {:.1}s",
        probes.len(),
        needed.len(),
        listened.as_secs_f64(),
        probed.as_secs_f64(),
        disagreed.len(),
        (started.elapsed() - listened - probed).as_secs_f64()
    );
    drop(listeners);
    check!(
        wrong.is_empty(),
        "{} of {} probes disagree with the declared policy:\n{}",
        wrong.len(),
        probes.len(),
        wrong.join("\n")
    );
    Ok(())
}

/// Runs every probe at once through [`Deployment::tcp_probes`] (each denied one waits out
/// `deadline`).
fn probe_all(
    d: &dyn Deployment,
    probes: &[Probe],
    deadline: Duration,
) -> Vec<Result<TcpOutcome, String>> {
    let pairs: Vec<(String, SocketAddr)> =
        probes.iter().map(|p| (p.from.clone(), p.addr)).collect();
    d.tcp_probes(&pairs, deadline)
        .into_iter()
        .map(|r| r.map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn shared() -> Topology {
        Topology::from_path(crate::topology_file::shared_file()).unwrap()
    }

    fn expect(t: &Topology, from: &str, to: &str, port: u16) -> bool {
        declared::tcp(t, from, to, port).unwrap().allowed()
    }

    /// The tier policy of ARCHITECTURE.md, row by row, is what the shared file declares.
    #[test]
    fn the_declared_policy_is_the_tier_policy_of_the_architecture() {
        let t = shared();
        let port = |s: &str| t.service(s).unwrap().port.unwrap();
        let other = unopened_port(&t);
        // frontend -> backend: the registry and the services' ports only.
        assert!(expect(&t, "gateway", "registry", port("registry")));
        assert!(expect(&t, "gateway", "product-1", port("product")));
        assert!(expect(&t, "gateway", "order-1", port("order")));
        assert!(!expect(&t, "gateway", "registry", other));
        // backend -> frontend: nothing new.
        assert!(!expect(&t, "product-1", "gateway", port("gateway")));
        // backend <-> backend: all.
        assert!(expect(&t, "order-1", "product-2", other));
        // products -> redis and postgres; orders -> postgres only; the registry neither.
        assert!(expect(&t, "product-2", "redis", port("redis")));
        assert!(expect(&t, "product-1", "postgres", port("postgres")));
        assert!(expect(&t, "order-2", "postgres", port("postgres")));
        assert!(!expect(&t, "order-1", "redis", port("redis")));
        assert!(!expect(&t, "registry", "postgres", port("postgres")));
        assert!(!expect(&t, "product-1", "postgres", other));
        // frontend -> database: nothing; database -> anywhere: nothing new.
        assert!(!expect(&t, "gateway", "redis", port("redis")));
        assert!(!expect(&t, "gateway", "postgres", port("postgres")));
        assert!(!expect(&t, "redis", "product-1", port("product")));
        assert!(!expect(&t, "postgres", "gateway", port("gateway")));
        // database <-> database: one bridge.
        assert!(expect(&t, "redis", "postgres", port("postgres")));
    }

    #[test]
    fn the_matrix_covers_every_cross_tier_pair_both_ways_on_every_port() {
        let t = shared();
        let probes = matrix(&t).unwrap();
        let ports = ports(&t);
        assert!(ports.contains(&unopened_port(&t)));
        for (a, b) in [("gateway", "postgres"), ("postgres", "gateway")] {
            for port in &ports {
                assert!(probes
                    .iter()
                    .any(|p| p.from == a && p.to == b && p.addr.port() == *port));
            }
        }
        assert!(probes
            .iter()
            .any(|p| p.from == "redis" && p.to == "postgres"));
        assert!(probes.iter().any(|p| p.expect == TcpOutcome::Reachable));
        assert!(probes.iter().any(|p| p.expect == TcpOutcome::TimedOut));
    }
}
