//! The lab's components: what runs on which node, on which port, and how its health is checked.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// What a component is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// PostgreSQL (database tier).
    Postgres,
    /// Redis (database tier).
    Redis,
    /// The service registry (backend tier).
    Registry,
    /// A product instance (backend tier).
    Product,
    /// An order instance (backend tier).
    Order,
    /// The API gateway (frontend tier).
    Gateway,
}

impl Kind {
    /// The port the component listens on (DESIGN.md's address plan).
    pub fn port(self) -> u16 {
        match self {
            Kind::Postgres => 5432,
            Kind::Redis => 6379,
            Kind::Registry => 8500,
            Kind::Product => 8001,
            Kind::Order => 8002,
            Kind::Gateway => 3000,
        }
    }

    /// True for the ecomm HTTP services (which answer `/readyz`).
    pub fn is_service(self) -> bool {
        !matches!(self, Kind::Postgres | Kind::Redis)
    }

    /// The kind a node name denotes: "product-3" → Product, "redis" → Redis.
    pub fn of_node(node: &str) -> Option<Kind> {
        let base = node.split_once('-').map_or(node, |(b, _)| b);
        match base {
            "postgres" => Some(Kind::Postgres),
            "redis" => Some(Kind::Redis),
            "registry" => Some(Kind::Registry),
            "product" => Some(Kind::Product),
            "order" => Some(Kind::Order),
            "gateway" => Some(Kind::Gateway),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
            Kind::Registry => "registry",
            Kind::Product => "product",
            Kind::Order => "order",
            Kind::Gateway => "gateway",
        })
    }
}

/// One component: a process on a node (its namespace) listening on the node's address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Component {
    /// Its name, which is also its node's name: "gateway", "product-1", "postgres", …
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// Where it listens: the node's address and the kind's port.
    pub addr: SocketAddr,
}

/// The last start stage (the gateway's).
pub const LAST_STAGE: u8 = 4;

impl Component {
    /// The start stage: components of one stage start together, after the previous is ready.
    /// Data stores, then the registry, then the first instance of each service (which creates
    /// and migrates its database), then the other instances, then the gateway.
    pub fn stage(&self) -> u8 {
        let first = self.name.rsplit_once('-').is_none_or(|(_, n)| n == "1");
        match self.kind {
            Kind::Postgres | Kind::Redis => 0,
            Kind::Registry => 1,
            Kind::Product | Kind::Order if first => 2,
            Kind::Product | Kind::Order => 3,
            Kind::Gateway => LAST_STAGE,
        }
    }

    /// The component on `node` at `ip`, if the node's name denotes a component.
    pub fn on_node(node: &str, ip: IpAddr) -> Option<Self> {
        let kind = Kind::of_node(node)?;
        Some(Self {
            name: node.to_string(),
            kind,
            addr: SocketAddr::new(ip, kind.port()),
        })
    }
}

/// A component's health as seen by a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Answering its readiness check.
    Ready,
    /// Running but not (yet) ready: the reason.
    NotReady(String),
    /// No process.
    Down,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Ready => f.write_str("ready"),
            Health::NotReady(why) => write!(f, "not ready: {why}"),
            Health::Down => f.write_str("down"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn node_names_map_to_kinds_and_ports() {
        let ip: IpAddr = "172.21.0.23".parse().unwrap();
        let c = Component::on_node("product-3", ip).unwrap();
        assert_eq!(c.kind, Kind::Product);
        assert_eq!(c.addr.to_string(), "172.21.0.23:8001");
        assert_eq!(Kind::of_node("router"), None);
        assert_eq!(Kind::of_node("order-1"), Some(Kind::Order));
    }
}
