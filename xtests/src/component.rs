//! The lab's components: the instances of the declared services — what runs on which node, on
//! which port, in which stage, and how its health is checked — all derived from the declaration.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use netns_kit::topology::{Ready, Topology};

use crate::error::LabError;

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
    /// True for the ecomm HTTP services (which answer `/readyz`).
    pub fn is_service(self) -> bool {
        !matches!(self, Kind::Postgres | Kind::Redis)
    }

    /// The kind a declared service name denotes: "product" → Product, "redis" → Redis.
    pub fn of_service(name: &str) -> Option<Kind> {
        match name {
            "postgres" => Some(Kind::Postgres),
            "redis" => Some(Kind::Redis),
            "registry" => Some(Kind::Registry),
            "product" => Some(Kind::Product),
            "order" => Some(Kind::Order),
            "gateway" => Some(Kind::Gateway),
            _ => None,
        }
    }

    /// The kind a node name denotes, through the service running there: "product-3" → Product.
    pub fn of_node(node: &str) -> Option<Kind> {
        Kind::of_service(node.split_once('-').map_or(node, |(b, _)| b))
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

/// One component: one instance of a declared service, a process on its node (namespace)
/// listening on the node's address and the service's declared port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Component {
    /// Its name, which is also its node's name: "gateway", "product-1", "postgres", …
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// Where it listens: the node's address and the service's declared port.
    pub addr: SocketAddr,
    /// The declared service it is an instance of ("product" for product-2).
    #[serde(default)]
    pub service: String,
    /// Start stage: components of one stage start together, after the previous is ready.
    #[serde(default)]
    pub stage: u8,
    /// The declared HTTP readiness path, if the probe is http.
    #[serde(default)]
    pub ready_path: Option<String>,
    /// The declared command line, resolved except runtime `${var}`s.
    #[serde(default)]
    pub command: Vec<String>,
    /// The declared environment, resolved like `command`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The service's declared `data` (e.g. its database name).
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

impl Component {
    /// The start stage (see [`Component::stage`] the field).
    pub fn stage(&self) -> u8 {
        self.stage
    }

    /// The database the component's service declares (`data.database`), if any.
    pub fn database(&self) -> Option<&str> {
        self.data.get("database").map(String::as_str)
    }
}

/// Every component the declaration runs: one per instance of each service, in start order.
///
/// A service's stage comes from its `depends_on` (0 without dependencies); within a service the
/// first instance starts one stage before the others, so it alone migrates its database.
pub fn from_topology(t: &Topology) -> Result<Vec<Component>, LabError> {
    let mut out = Vec::new();
    for s in t.start_order() {
        let kind = Kind::of_service(&s.name).ok_or_else(|| LabError::Invalid {
            what: "service".into(),
            value: s.name.clone(),
            expected: "one the lab runs: postgres, redis, registry, product, order, gateway".into(),
        })?;
        let port = s.port.ok_or_else(|| LabError::Invalid {
            what: format!("service {}", s.name),
            value: "no port".into(),
            expected: "a declared `port`".into(),
        })?;
        let ready_path = match &s.ready {
            Ready::Http { path, .. } => Some(path.clone()),
            _ => None,
        };
        for (k, i) in s.instances.iter().enumerate() {
            let stage = u8::try_from(2 * s.stage + usize::from(k > 0)).unwrap_or(u8::MAX);
            out.push(Component {
                name: i.node.clone(),
                kind,
                addr: SocketAddr::new(i.address, port),
                service: s.name.clone(),
                stage,
                ready_path: ready_path.clone(),
                command: i.command.clone(),
                env: i.env.clone(),
                data: s.data.clone(),
            });
        }
    }
    out.sort_by_key(|c| c.stage);
    Ok(out)
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
    fn components_come_from_the_declared_services_in_dependency_order() {
        let t = Topology::from_path(crate::topology_file::shared_file()).unwrap();
        let cs = from_topology(&t).unwrap();
        let product = t.service("product").unwrap();
        let p2 = cs.iter().find(|c| c.name == "product-2").unwrap();
        assert_eq!(p2.kind, Kind::Product);
        assert_eq!(Some(p2.addr), product.listen("product-2"));
        assert_eq!(p2.database(), Some(product.data["database"].as_str()));
        let p1 = cs.iter().find(|c| c.name == "product-1").unwrap();
        assert_eq!(p2.stage, p1.stage + 1, "the first instance migrates alone");
        let stage = |n: &str| cs.iter().find(|c| c.name == n).unwrap().stage;
        assert!(stage("postgres") < stage("product-1"));
        assert!(stage("registry") < stage("product-1"));
        assert!(stage("product-2") < stage("order-1"));
        assert!(cs.iter().all(|c| c.stage <= stage("gateway")));
        assert_eq!(Kind::of_node("order-1"), Some(Kind::Order));
        assert_eq!(Kind::of_node("router"), None);
    }
}
