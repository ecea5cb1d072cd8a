//! `lab layout --json [FILE]`: the environment a declaration describes, resolved — hosts,
//! nodes with their addresses, services with their command lines (runtime variables left as
//! `${var}`), and the derived overlay — as stable JSON (keys sorted).
//!
//! A pure function of the file: no state directory, no privileges, nothing started. Other
//! evaluators of the same file (the flake's `nix/layout.nix`) are compared against it.
//!
//! Shape:
//!
//! ```text
//! { "name": "three-tier",
//!   "vars": ["registry_token", …],
//!   "hosts":    { "<host>": { "nodes": ["router", "gateway", …], "underlay_address": null } },
//!   "networks": { "<net>": { "subnet": "172.21.0.0/24", "bridge": "br-backend",
//!                            "router_address": "172.21.0.1" | null } },
//!   "nodes":    { "<node>": { "host": "vm2" | null, "router": false,
//!                             "addresses": { "<net>": "172.21.0.21" } } },
//!   "services": { "<service>": { "port": 8001 | null, "ports": { "dns": 8600 },
//!                 "ready": { "probe": "http", "port": 8001, "path": "/readyz" } | { "probe": "none" },
//!                 "depends_on": [...], "stage": 2, "data": { "database": "products" },
//!                 "instances": { "<node>": { "host": …, "address": …, "command": [...], "env": {…} } } } },
//!   "overlay":  [ { "network": "backend", "name": "vx-backend", "vni": 100, "port": 4789,
//!                   "dev": "eth0", "group": "239.1.1.100" | null, "hosts": ["vm1", …],
//!                   "endpoints": { "<host>": { "local": …, "remote": … } } } ] }
//! ```

use std::path::Path;

use netns_kit::topology::plan::VxlanPeer;
use netns_kit::topology::{Ready, Topology};
use serde_json::{json, Map, Value};

use crate::error::LabError;

/// Prints the layout of `file` as pretty JSON with sorted keys.
pub fn run(file: &Path) -> Result<(), LabError> {
    let t = Topology::from_path(file).map_err(|e| LabError::Invalid {
        what: "topology file".into(),
        value: file.display().to_string(),
        expected: format!("a valid declaration ({e})"),
    })?;
    println!("{}", to_json(&layout(&t)));
    Ok(())
}

/// Prints the Compose file (`swarm = false`) or the Swarm stack file generated from `file`.
pub fn docker_file(file: &Path, swarm: bool) -> Result<(), LabError> {
    let t = Topology::from_path(file).map_err(|e| LabError::Invalid {
        what: "topology file".into(),
        value: file.display().to_string(),
        expected: format!("a valid declaration ({e})"),
    })?;
    let text = if swarm {
        crate::docker::generate::swarm(&t)
    } else {
        crate::docker::generate::compose(&t)
    }
    .map_err(|e| LabError::Invalid {
        what: "topology file".into(),
        value: file.display().to_string(),
        expected: format!("a declaration the Docker files can be generated from ({e})"),
    })?;
    print!("{text}");
    Ok(())
}

/// Pretty JSON text of a layout (serde_json's maps keep keys sorted).
pub fn to_json(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The layout of a validated topology.
pub fn layout(t: &Topology) -> Value {
    let placement = t.placement.as_ref();
    let host_of = |node: &str| placement.and_then(|p| p.host_of(node)).map(str::to_string);

    let mut hosts = Map::new();
    if let Some(p) = placement {
        for (host, nodes) in &p.hosts {
            hosts.insert(
                host.clone(),
                json!({
                    "nodes": nodes,
                    "underlay_address": p.underlay.addresses.get(host).map(|a| a.to_string()),
                }),
            );
        }
    }

    let mut networks = Map::new();
    for n in &t.networks {
        let router_address = t.router.as_ref().and_then(|r| {
            r.interfaces
                .iter()
                .find(|i| i.network == n.name)
                .map(|i| i.address.to_string())
        });
        networks.insert(
            n.name.clone(),
            json!({
                "subnet": n.subnet.to_string(),
                "bridge": n.bridge,
                "router_address": router_address,
            }),
        );
    }

    let mut nodes = Map::new();
    let addresses = |itfs: &[netns_kit::topology::Interface]| -> Map<String, Value> {
        itfs.iter()
            .map(|i| (i.network.clone(), Value::String(i.address.to_string())))
            .collect()
    };
    if let Some(r) = &t.router {
        nodes.insert(
            r.name.clone(),
            json!({ "host": host_of(&r.name), "router": true, "addresses": addresses(&r.interfaces) }),
        );
    }
    for n in &t.nodes {
        nodes.insert(
            n.name.clone(),
            json!({ "host": host_of(&n.name), "router": false, "addresses": addresses(&n.interfaces) }),
        );
    }

    let mut services = Map::new();
    for s in &t.services {
        let mut instances = Map::new();
        for i in &s.instances {
            instances.insert(
                i.node.clone(),
                json!({
                    "host": host_of(&i.node),
                    "address": i.address.to_string(),
                    "command": i.command,
                    "env": i.env,
                }),
            );
        }
        let ready = match &s.ready {
            Ready::None => json!({ "probe": "none" }),
            Ready::Tcp { port } => json!({ "probe": "tcp", "port": port }),
            Ready::Http { port, path } => json!({ "probe": "http", "port": port, "path": path }),
        };
        services.insert(
            s.name.clone(),
            json!({
                "port": s.port,
                "ports": s.ports,
                "ready": ready,
                "depends_on": s.depends_on,
                "stage": s.stage,
                "data": s.data,
                "instances": instances,
            }),
        );
    }

    let mut overlay = Vec::new();
    if let Some(p) = placement {
        for o in &p.overlay {
            let mut endpoints = Map::new();
            for h in &o.hosts {
                let v = p.vxlan(o, h);
                let remote = match v.peer {
                    VxlanPeer::Remote(a) => Some(a.to_string()),
                    VxlanPeer::Group(_) => None,
                };
                endpoints.insert(
                    h.clone(),
                    json!({ "local": v.local.map(|a| a.to_string()), "remote": remote }),
                );
            }
            overlay.push(json!({
                "network": o.network,
                "name": o.name,
                "vni": o.vni,
                "port": p.underlay.port,
                "dev": p.underlay.dev,
                "group": o.group.map(|g| g.to_string()),
                "hosts": o.hosts,
                "endpoints": endpoints,
            }));
        }
    }

    json!({
        "name": t.name,
        "vars": t.vars,
        "hosts": hosts,
        "networks": networks,
        "nodes": nodes,
        "services": services,
        "overlay": overlay,
    })
}
