//! What the declared policy allows, decided from the [`Topology`] alone: the expectation a
//! test compares real connections against.
//!
//! The semantics are those the router's forward chain is compiled with (`compile.rs`):
//! two nodes on one network talk directly (no router in the way, everything allowed); any
//! other new connection crosses the router, whose forward chain drops by default and accepts
//! what one `[[policy]]` rule allows (source and destination inside the rule's networks or
//! node addresses, the rule's protocol or any, the port in its list or no list). Replies to
//! an allowed connection always pass, so only the direction of the first packet counts.
//!
//! ```
//! use netns_kit::topology::{policy::{self, Verdict}, Topology};
//! let t = Topology::from_str(r#"
//!     name = "t"
//!     [[networks]]
//!     name = "a"
//!     subnet = "10.1.0.0/24"
//!     [[networks]]
//!     name = "b"
//!     subnet = "10.2.0.0/24"
//!     [router]
//!     name = "r"
//!     networks = ["a", "b"]
//!     [[nodes]]
//!     name = "x"
//!     interfaces = [{ network = "a" }]
//!     [[nodes]]
//!     name = "y"
//!     interfaces = [{ network = "b" }]
//!     [[policy]]
//!     from = "a"
//!     to = "y"
//!     proto = "tcp"
//!     ports = [80]
//! "#).unwrap();
//! assert!(policy::tcp(&t, "x", "y", 80).unwrap().allowed());
//! assert_eq!(policy::tcp(&t, "x", "y", 81).unwrap(), Verdict::Denied);
//! assert_eq!(policy::tcp(&t, "y", "x", 80).unwrap(), Verdict::Denied);
//! ```

use std::net::IpAddr;

use crate::firewall::Proto;

use super::{Node, Topology};

/// What the policy decides for one new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Both ends share a network: the connection never reaches the router.
    SameNetwork,
    /// The router forwards it: allowed by `policy[rule]` (index into [`Topology::policy`]).
    Allowed {
        /// The first rule that accepts it.
        rule: usize,
    },
    /// The router drops it (no rule accepts it, or no router joins the two networks).
    Denied,
}

impl Verdict {
    /// True unless [`Verdict::Denied`].
    pub fn allowed(self) -> bool {
        !matches!(self, Verdict::Denied)
    }
}

/// Why a question about the policy cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The topology declares no such node.
    #[error("no node {name:?} in the topology (expected one of: {known})")]
    UnknownNode {
        /// The name asked about.
        name: String,
        /// The declared node names, comma-separated.
        known: String,
    },
    /// The node has no interface, so it can neither connect nor be reached.
    #[error("node {name:?} has no interface")]
    NoInterface {
        /// The node.
        name: String,
    },
}

/// The verdict for a new TCP connection from node `from` to node `to`'s first address on
/// `port`.
pub fn tcp(t: &Topology, from: &str, to: &str, port: u16) -> Result<Verdict, PolicyError> {
    let dst = node(t, to)?
        .interfaces
        .first()
        .map(|i| i.address)
        .ok_or_else(|| PolicyError::NoInterface { name: to.into() })?;
    connection(t, from, dst, Proto::Tcp, port)
}

/// The verdict for a new connection of `proto` from node `from` to address `to` on `port`
/// (`port` is ignored for ICMP).
pub fn connection(
    t: &Topology,
    from: &str,
    to: IpAddr,
    proto: Proto,
    port: u16,
) -> Result<Verdict, PolicyError> {
    let src_node = node(t, from)?;
    if src_node.interfaces.is_empty() {
        return Err(PolicyError::NoInterface { name: from.into() });
    }
    let on_network = |net: &str| t.network(net).is_some_and(|n| n.subnet.contains(&to));
    if src_node.interfaces.iter().any(|i| on_network(&i.network)) {
        return Ok(Verdict::SameNetwork);
    }
    // Off-link traffic leaves through the router: from the node's address on the first
    // network the router joins. The destination must be on a network the router joins too.
    let Some(router) = &t.router else {
        return Ok(Verdict::Denied);
    };
    let routed = |net: &str| router.interfaces.iter().any(|i| i.network == net);
    let Some(src) = src_node
        .interfaces
        .iter()
        .find(|i| routed(&i.network))
        .map(|i| i.address)
    else {
        return Ok(Verdict::Denied);
    };
    if !t
        .networks
        .iter()
        .any(|n| routed(&n.name) && n.subnet.contains(&to))
    {
        return Ok(Verdict::Denied);
    }
    let rule = t.policy.iter().position(|r| {
        !r.same_network
            && r.from_nets.iter().any(|n| n.contains(&src))
            && r.to_nets.iter().any(|n| n.contains(&to))
            && (r.proto == Proto::Any || r.proto == proto)
            && (proto == Proto::Icmp
                || r.ports.is_empty()
                || r.ports.iter().any(|p| (p.first..=p.last).contains(&port)))
    });
    Ok(rule.map_or(Verdict::Denied, |rule| Verdict::Allowed { rule }))
}

/// The network names node `name` has an interface on.
pub fn networks_of<'t>(t: &'t Topology, name: &str) -> Result<Vec<&'t str>, PolicyError> {
    Ok(node(t, name)?
        .interfaces
        .iter()
        .map(|i| i.network.as_str())
        .collect())
}

fn node<'t>(t: &'t Topology, name: &str) -> Result<&'t Node, PolicyError> {
    t.node(name).ok_or_else(|| PolicyError::UnknownNode {
        name: name.to_string(),
        known: t
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The tiers of the shared design, written out small: frontend, backend, database; the
    /// frontend reaches the backend on 8001 only, p reaches the cache on 6379, nothing else.
    const TIERS: &str = r#"
        name = "tiers"
        [[networks]]
        name = "frontend"
        subnet = "10.0.0.0/24"
        [[networks]]
        name = "backend"
        subnet = "10.0.1.0/24"
        [[networks]]
        name = "database"
        subnet = "10.0.2.0/24"
        [router]
        name = "router"
        networks = ["frontend", "backend", "database"]
        [[nodes]]
        name = "gw"
        interfaces = [{ network = "frontend" }]
        [[nodes]]
        name = "p"
        interfaces = [{ network = "backend" }]
        [[nodes]]
        name = "o"
        interfaces = [{ network = "backend" }]
        [[nodes]]
        name = "cache"
        interfaces = [{ network = "database" }]
        [[nodes]]
        name = "db"
        interfaces = [{ network = "database" }]
        [[policy]]
        from = "frontend"
        to = "backend"
        proto = "tcp"
        ports = [8001, "9000-9002"]
        [[policy]]
        from = "backend"
        to = "backend"
        [[policy]]
        from = "p"
        to = "cache"
        proto = "tcp"
        ports = [6379]
        [[policy]]
        from = "o"
        to = "database"
        proto = "udp"
    "#;

    fn tiers() -> Topology {
        Topology::from_str(TIERS).unwrap()
    }

    #[test]
    fn nodes_on_one_network_talk_directly_on_every_port() {
        let t = tiers();
        assert_eq!(tcp(&t, "p", "o", 1).unwrap(), Verdict::SameNetwork);
        assert_eq!(tcp(&t, "cache", "db", 5432).unwrap(), Verdict::SameNetwork);
    }

    #[test]
    fn a_rule_opens_its_ports_in_its_direction_only() {
        let t = tiers();
        assert_eq!(
            tcp(&t, "gw", "p", 8001).unwrap(),
            Verdict::Allowed { rule: 0 }
        );
        assert_eq!(
            tcp(&t, "gw", "o", 9001).unwrap(),
            Verdict::Allowed { rule: 0 }
        );
        assert_eq!(tcp(&t, "gw", "p", 8002).unwrap(), Verdict::Denied);
        assert_eq!(tcp(&t, "p", "gw", 8001).unwrap(), Verdict::Denied);
        assert_eq!(
            tcp(&t, "p", "cache", 6379).unwrap(),
            Verdict::Allowed { rule: 2 }
        );
        assert_eq!(tcp(&t, "cache", "p", 6379).unwrap(), Verdict::Denied);
    }

    #[test]
    fn a_node_rule_applies_to_that_node_only_and_the_default_is_drop() {
        let t = tiers();
        assert_eq!(tcp(&t, "o", "cache", 6379).unwrap(), Verdict::Denied);
        assert_eq!(tcp(&t, "p", "db", 6379).unwrap(), Verdict::Denied);
        assert_eq!(tcp(&t, "gw", "db", 5432).unwrap(), Verdict::Denied);
        assert_eq!(tcp(&t, "db", "gw", 8001).unwrap(), Verdict::Denied);
    }

    #[test]
    fn the_protocol_of_a_rule_is_matched() {
        let t = tiers();
        let db = t.node("db").unwrap().interfaces[0].address;
        assert_eq!(tcp(&t, "o", "db", 53).unwrap(), Verdict::Denied);
        assert_eq!(
            connection(&t, "o", db, Proto::Udp, 53).unwrap(),
            Verdict::Allowed { rule: 3 }
        );
        assert_eq!(
            connection(&t, "o", db, Proto::Icmp, 0).unwrap(),
            Verdict::Denied
        );
    }

    #[test]
    fn an_unknown_node_is_an_error_naming_it() {
        let t = tiers();
        let e = tcp(&t, "nope", "p", 1).unwrap_err();
        assert!(matches!(&e, PolicyError::UnknownNode { name, .. } if name == "nope"));
        assert!(e.to_string().contains("gw, p, o, cache, db"), "{e}");
        assert!(tcp(&t, "p", "nope", 1).is_err());
    }

    #[test]
    fn without_a_router_other_networks_are_unreachable() {
        let t = Topology::from_str(
            r#"
            name = "flat"
            [[networks]]
            name = "a"
            subnet = "10.1.0.0/24"
            [[networks]]
            name = "b"
            subnet = "10.2.0.0/24"
            [[nodes]]
            name = "x"
            interfaces = [{ network = "a" }]
            [[nodes]]
            name = "y"
            interfaces = [{ network = "b" }]
        "#,
        )
        .unwrap();
        assert_eq!(tcp(&t, "x", "y", 80).unwrap(), Verdict::Denied);
        assert_eq!(networks_of(&t, "y").unwrap(), ["b"]);
    }
}
