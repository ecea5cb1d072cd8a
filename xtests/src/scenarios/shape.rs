//! The shape a scenario checks, read from the deployment's declaration: which nodes run a
//! service, which database it uses, where a node listens, which host carries what.

use std::net::{IpAddr, SocketAddr};

use netns_kit::topology::Topology;

/// The nodes running `service`, in declared order ("product" → product-1, product-2, …).
pub fn instances(t: &Topology, service: &str) -> Result<Vec<String>, String> {
    let s = t
        .service(service)
        .ok_or_else(|| format!("the declaration has no service {service:?}"))?;
    if s.instances.is_empty() {
        return Err(format!("service {service:?} has no instance"));
    }
    Ok(s.instances.iter().map(|i| i.node.clone()).collect())
}

/// The one node running `service` (its first instance): "redis" → the redis node.
pub fn node_of(t: &Topology, service: &str) -> Result<String, String> {
    instances(t, service)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("service {service:?} has no instance"))
}

/// The database `service` declares (`data.database`).
pub fn database(t: &Topology, service: &str) -> Result<String, String> {
    t.service(service)
        .and_then(|s| s.data.get("database"))
        .cloned()
        .ok_or_else(|| format!("service {service:?} declares no data.database"))
}

/// Node `node`'s address (its first interface).
pub fn address(t: &Topology, node: &str) -> Result<IpAddr, String> {
    t.node(node)
        .and_then(|n| n.interfaces.first())
        .map(|i| i.address)
        .ok_or_else(|| format!("the declaration has no node {node:?} with an interface"))
}

/// `node`'s address with `port`.
pub fn at(t: &Topology, node: &str, port: u16) -> Result<SocketAddr, String> {
    Ok(SocketAddr::new(address(t, node)?, port))
}

/// The tier (network of the first interface) of `node`.
pub fn tier<'t>(t: &'t Topology, node: &str) -> Option<&'t str> {
    t.node(node)
        .and_then(|n| n.interfaces.first())
        .map(|i| i.network.as_str())
}

/// Every TCP port a declared service listens on at `node` (main ports only: the named extra
/// ports such as the registry's DNS are not necessarily TCP).
pub fn listening_ports(t: &Topology, node: &str) -> Vec<u16> {
    t.services
        .iter()
        .filter(|s| s.instances.iter().any(|i| i.node == node))
        .filter_map(|s| s.port)
        .collect()
}

/// The service a node runs (first match), if any.
pub fn service_on<'t>(t: &'t Topology, node: &str) -> Option<&'t str> {
    t.services
        .iter()
        .find(|s| s.instances.iter().any(|i| i.node == node))
        .map(|s| s.name.as_str())
}

/// A placement host whose loss every service survives: it carries instances of `service`,
/// and neither the router nor the only instance of any service. The last such host in the
/// placement's order, or `None` without a placement.
pub fn expendable_host(t: &Topology, service: &str) -> Option<String> {
    let placement = t.placement.as_ref()?;
    let router = t.router.as_ref().map(|r| r.name.as_str());
    placement
        .hosts
        .iter()
        .rev()
        .find(|(_, nodes)| {
            let carries = |n: &str| nodes.iter().any(|m| m == n);
            let serves = t
                .service(service)
                .is_some_and(|s| s.instances.iter().any(|i| carries(&i.node)));
            let survivable = t
                .services
                .iter()
                .all(|s| s.instances.iter().any(|i| !carries(&i.node)));
            serves && survivable && !router.is_some_and(carries)
        })
        .map(|(host, _)| host.clone())
}

/// The nodes placement host `host` carries that run `service`.
pub fn instances_on(t: &Topology, host: &str, service: &str) -> Vec<String> {
    let Some(nodes) = t.placement.as_ref().and_then(|p| p.hosts.get(host)) else {
        return Vec::new();
    };
    t.service(service)
        .map(|s| {
            s.instances
                .iter()
                .filter(|i| nodes.contains(&i.node))
                .map(|i| i.node.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn wide() -> Topology {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ecomm-services/deploy/three-tier-wide.toml");
        Topology::from_path(file).unwrap()
    }

    #[test]
    fn the_shape_comes_from_the_declaration() {
        let t = Topology::from_path(crate::topology_file::shared_file()).unwrap();
        assert_eq!(
            instances(&t, "product").unwrap(),
            ["product-1", "product-2"]
        );
        assert_eq!(instances(&wide(), "product").unwrap().len(), 3);
        assert_eq!(
            database(&t, "order").unwrap(),
            t.service("order").unwrap().data["database"]
        );
        assert!(instances(&t, "nope").is_err());
        assert_eq!(
            listening_ports(&t, "registry"),
            [t.service("registry").unwrap().port.unwrap()]
        );
    }

    #[test]
    fn the_expendable_host_carries_no_router_and_no_only_instance() {
        for t in [
            Topology::from_path(crate::topology_file::shared_file()).unwrap(),
            wide(),
        ] {
            let host = expendable_host(&t, "product").unwrap();
            let nodes = &t.placement.as_ref().unwrap().hosts[&host];
            assert!(!nodes.iter().any(|n| n == "router"), "{host}: {nodes:?}");
            assert!(!instances_on(&t, &host, "product").is_empty());
            for s in &t.services {
                assert!(s.instances.iter().any(|i| !nodes.contains(&i.node)));
            }
        }
    }
}
