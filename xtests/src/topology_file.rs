//! The lab's topology: the shared `three-tier.toml`, optionally with spare product slots.
//!
//! `just scale product 3` needs a node for product-3 on the backend bridge, with the same
//! policy rows as product-1 (cache and database access). The shared file declares two
//! product instances; the lab derives `product-N` (address .2N on the backend subnet, the
//! policy rows of product-1 copied, placed on product-1's host, an instance of product-1's
//! service) for each spare slot before applying. Tests use the file exactly as written.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use netns_kit::topology::spec::{InterfaceSpec, PolicySpec};
use netns_kit::topology::{Topology, TopologySpec};

use crate::error::LabError;

/// The shared topology file (ecomm-services/deploy/three-tier.toml), found from this crate.
pub fn shared_file() -> PathBuf {
    std::env::var_os("ECOMM_TOPOLOGY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../ecomm-services/deploy/three-tier.toml")
        })
}

/// The product instance every spare slot copies its policy from.
const TEMPLATE: &str = "product-1";

/// Reads `file` and adds product slots up to `product-<products>` (never removes any).
pub fn load(file: &Path, products: u8) -> Result<(TopologySpec, Topology), LabError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| LabError::io(format!("read topology {}", file.display()), e))?;
    let mut spec: TopologySpec = toml::from_str(&text)
        .map_err(|e| LabError::Topology(format!("{}: {e}", file.display())))?;
    for n in 1..=products {
        add_product_slot(&mut spec, n)?;
    }
    let text = toml::to_string(&spec).map_err(|e| LabError::Topology(e.to_string()))?;
    let topology = Topology::from_str(&text)
        .map_err(|e| LabError::Topology(format!("{}: {e}", file.display())))?;
    Ok((spec, topology))
}

/// Adds node `product-<n>` (a copy of product-1 at .(20+n)) unless the file declares it.
fn add_product_slot(spec: &mut TopologySpec, n: u8) -> Result<(), LabError> {
    let name = format!("product-{n}");
    if spec.nodes.iter().any(|node| node.name == name) {
        return Ok(());
    }
    let invalid = |expected: &str| LabError::Invalid {
        what: "product slot".into(),
        value: name.clone(),
        expected: expected.into(),
    };
    if n > 9 {
        return Err(invalid("an instance number 1..=9 (addresses .21 to .29)"));
    }
    let template = spec
        .nodes
        .iter()
        .find(|node| node.name == TEMPLATE)
        .cloned()
        .ok_or_else(|| invalid("a topology declaring product-1 to copy"))?;
    let mut node = template.clone();
    node.name = name.clone();
    node.interfaces = template
        .interfaces
        .iter()
        .map(|iface| -> Result<InterfaceSpec, LabError> {
            let addr: IpAddr = iface
                .address
                .as_deref()
                .unwrap_or("")
                .parse()
                .map_err(|_| invalid("product-1 with a static IPv4 address"))?;
            let IpAddr::V4(v4) = addr else {
                return Err(invalid("product-1 with a static IPv4 address"));
            };
            let o = v4.octets();
            Ok(InterfaceSpec {
                network: iface.network.clone(),
                address: Some(Ipv4Addr::new(o[0], o[1], o[2], 20 + n).to_string()),
            })
        })
        .collect::<Result<_, _>>()?;
    let rows: Vec<PolicySpec> = spec
        .policy
        .iter()
        .filter(|p| p.from == TEMPLATE || p.to == TEMPLATE)
        .map(|p| {
            let mut p = p.clone();
            if p.from == TEMPLATE {
                p.from = name.clone();
            }
            if p.to == TEMPLATE {
                p.to = name.clone();
            }
            p
        })
        .collect();
    let at = spec
        .nodes
        .iter()
        .rposition(|node| node.name.starts_with("product-"))
        .map_or(spec.nodes.len(), |i| i + 1);
    spec.nodes.insert(at, node);
    spec.policy.extend(rows);
    // The slot sits on product-1's host and runs an instance of whatever service runs there.
    for nodes in spec.placement.iter_mut().flat_map(|p| p.values_mut()) {
        if nodes.iter().any(|n| n == TEMPLATE) {
            nodes.push(name.clone());
        }
    }
    for service in spec
        .services
        .iter_mut()
        .filter(|s| s.nodes.iter().any(|n| n == TEMPLATE))
    {
        service.nodes.push(name.clone());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_spare_product_slot_copies_product_1_at_the_next_address() {
        let (spec, topology) = load(&shared_file(), 3).unwrap();
        let node = topology
            .nodes
            .iter()
            .find(|n| n.name == "product-3")
            .unwrap();
        // product-N sits at .(20+N) of product-1's subnet.
        let IpAddr::V4(first) = topology.node(TEMPLATE).unwrap().interfaces[0].address else {
            panic!("product-1 has an IPv4 address")
        };
        let o = first.octets();
        let expected = IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], 23));
        assert_eq!(node.interfaces[0].address, expected);
        assert!(spec
            .policy
            .iter()
            .any(|p| p.from == "product-3" && p.to == "redis"));
        assert!(spec
            .policy
            .iter()
            .any(|p| p.from == "product-3" && p.to == "postgres"));
        let product = topology.service("product").unwrap();
        assert_eq!(
            product.listen("product-3").unwrap(),
            std::net::SocketAddr::new(expected, product.port.unwrap()),
            "the slot runs a product instance on the declared port"
        );
    }

    #[test]
    fn the_shared_file_is_used_as_written_without_spares() {
        let (_, topology) = load(&shared_file(), 2).unwrap();
        assert!(topology.nodes.iter().all(|n| n.name != "product-3"));
        assert_eq!(topology.nodes.len(), 8);
    }
}
