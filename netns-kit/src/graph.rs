//! Renders a topology as a picture: Graphviz dot or Mermaid text.
//!
//! Solid lines are links (node ↔ bridge, router ↔ bridge, host ↔ router); dashed arrows are
//! policy (who may open connections to whom, with protocol and ports). Replies are implied.

use std::fmt::Write;

use crate::firewall::{PortRange, Proto};
use crate::topology::{PolicyRule, Target, Topology};

/// Output format of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Graphviz dot (`dot -Tsvg`).
    Dot,
    /// Mermaid flowchart (renders on GitHub, in docs).
    Mermaid,
}

/// The picture of `t` in `format`.
pub fn render(t: &Topology, format: Format) -> String {
    match format {
        Format::Dot => dot(t),
        Format::Mermaid => mermaid(t),
    }
}

/// "tcp 8500,8001" / "udp" / "icmp" / "all".
pub fn policy_label(proto: Proto, ports: &[PortRange]) -> String {
    let p = match proto {
        Proto::Any => return "all".to_string(),
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Icmp => "icmp",
    };
    if ports.is_empty() {
        p.to_string()
    } else {
        let list: Vec<String> = ports.iter().map(ToString::to_string).collect();
        format!("{p} {}", list.join(","))
    }
}

fn target_id(t: &Target) -> String {
    match t {
        Target::Network(n) => format!("net_{}", ident(n)),
        Target::Node(n) => format!("node_{}", ident(n)),
        Target::Host => "host".to_string(),
    }
}

/// Names are `[A-Za-z0-9_-]`; identifiers for both formats use '_' for '-'.
/// "vni 42 to 10.0.0.2 port 4789 via eth0, host underlay".
fn vxlan_label(v: &crate::topology::Vxlan) -> String {
    let peer = match v.peer {
        crate::topology::plan::VxlanPeer::Remote(a)
        | crate::topology::plan::VxlanPeer::Group(a) => a,
    };
    let dev = v
        .dev
        .as_deref()
        .map(|d| format!(" via {d}"))
        .unwrap_or_default();
    format!(
        "vni {} to {peer} port {}{dev}, {} underlay",
        v.vni,
        v.port,
        v.underlay.as_str()
    )
}

fn ident(name: &str) -> String {
    name.replace('-', "_")
}

fn policies(t: &Topology) -> impl Iterator<Item = &PolicyRule> {
    t.policy
        .iter()
        .chain(t.host.iter().flat_map(|h| h.allow.iter()))
}

fn dot(t: &Topology) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph \"{}\" {{", t.name);
    let _ = writeln!(s, "  rankdir=LR;");
    let _ = writeln!(s, "  compound=true;");
    let _ = writeln!(s, "  node [fontname=\"Helvetica\", fontsize=10];");
    let _ = writeln!(s, "  edge [fontname=\"Helvetica\", fontsize=9];");
    for n in &t.networks {
        let _ = writeln!(s, "  subgraph \"cluster_{}\" {{", ident(&n.name));
        let _ = writeln!(
            s,
            "    label=\"{} {}\"; style=rounded; color=gray50;",
            n.name, n.subnet
        );
        let _ = writeln!(
            s,
            "    net_{} [label=\"{}\\n(bridge)\", shape=box3d];",
            ident(&n.name),
            n.bridge
        );
        for node in &t.nodes {
            if node.interfaces.first().map(|i| &i.network) == Some(&n.name) {
                let addrs: Vec<String> = node
                    .interfaces
                    .iter()
                    .map(|i| format!("{} {}", i.ifname, i.address))
                    .collect();
                let _ = writeln!(
                    s,
                    "    node_{} [label=\"{}\\n{}\", shape=box, style=filled, fillcolor=lightyellow];",
                    ident(&node.name),
                    node.name,
                    addrs.join("\\n")
                );
            }
        }
        let _ = writeln!(s, "  }}");
    }
    for node in &t.nodes {
        for itf in &node.interfaces {
            let _ = writeln!(
                s,
                "  node_{} -> net_{} [dir=none];",
                ident(&node.name),
                ident(&itf.network)
            );
        }
    }
    if let Some(r) = &t.router {
        let _ = writeln!(
            s,
            "  router [label=\"{}\\n(router)\", shape=doublecircle, style=filled, fillcolor=lightblue];",
            r.name
        );
        for itf in &r.interfaces {
            let _ = writeln!(
                s,
                "  router -> net_{} [dir=none, label=\"{}\"];",
                ident(&itf.network),
                itf.address
            );
        }
    }
    for v in &t.vxlans {
        let _ = writeln!(
            s,
            "  vx_{} [label=\"{}\\n{}\", shape=cds];",
            ident(&v.name),
            v.name,
            vxlan_label(v)
        );
        let _ = writeln!(
            s,
            "  vx_{} -> net_{} [dir=none, style=bold];",
            ident(&v.name),
            ident(&v.network)
        );
    }
    if let Some(h) = &t.host {
        let _ = writeln!(
            s,
            "  host [label=\"host\\n{} (lab mode)\", shape=house];",
            h.host_addr
        );
        let _ = writeln!(
            s,
            "  host -> router [dir=none, style=bold, label=\"{}\"];",
            h.subnet
        );
    }
    for p in policies(t) {
        let _ = writeln!(
            s,
            "  {} -> {} [style=dashed, color=blue, fontcolor=blue, constraint=false, label=\"{}\"];",
            target_id(&p.from),
            target_id(&p.to),
            policy_label(p.proto, &p.ports)
        );
    }
    let _ = writeln!(s, "}}");
    s
}

fn mermaid(t: &Topology) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "flowchart LR");
    for n in &t.networks {
        let _ = writeln!(
            s,
            "  subgraph cluster_{}[\"{} {}\"]",
            ident(&n.name),
            n.name,
            n.subnet
        );
        let _ = writeln!(s, "    net_{}[[\"{} (bridge)\"]]", ident(&n.name), n.bridge);
        for node in &t.nodes {
            if node.interfaces.first().map(|i| &i.network) == Some(&n.name) {
                let addrs: Vec<String> = node
                    .interfaces
                    .iter()
                    .map(|i| i.address.to_string())
                    .collect();
                let _ = writeln!(
                    s,
                    "    node_{}[\"{}<br/>{}\"]",
                    ident(&node.name),
                    node.name,
                    addrs.join("<br/>")
                );
            }
        }
        let _ = writeln!(s, "  end");
    }
    for node in &t.nodes {
        for itf in &node.interfaces {
            let _ = writeln!(
                s,
                "  node_{} --- net_{}",
                ident(&node.name),
                ident(&itf.network)
            );
        }
    }
    if let Some(r) = &t.router {
        let _ = writeln!(s, "  router((\"{} (router)\"))", r.name);
        for itf in &r.interfaces {
            let _ = writeln!(
                s,
                "  router ---|\"{}\"| net_{}",
                itf.address,
                ident(&itf.network)
            );
        }
    }
    for v in &t.vxlans {
        let _ = writeln!(
            s,
            "  vx_{}>\"{} {}\"] === net_{}",
            ident(&v.name),
            v.name,
            vxlan_label(v),
            ident(&v.network)
        );
    }
    if let Some(h) = &t.host {
        let _ = writeln!(s, "  host[/\"host {} (lab mode)\"\\]", h.host_addr);
        let _ = writeln!(s, "  host ===|\"{}\"| router", h.subnet);
    }
    for p in policies(t) {
        let _ = writeln!(
            s,
            "  {} -.->|\"{}\"| {}",
            target_id(&p.from),
            policy_label(p.proto, &p.ports),
            target_id(&p.to)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
name = "t"
[[networks]]
name = "front"
subnet = "10.1.0.0/24"
[[networks]]
name = "back-end"
subnet = "10.2.0.0/24"
[router]
networks = ["front", "back-end"]
[[nodes]]
name = "web"
interfaces = [{ network = "front", address = "10.1.0.10" }]
[[nodes]]
name = "api-1"
interfaces = [{ network = "back-end" }]
[[policy]]
from = "front"
to = "api-1"
proto = "tcp"
ports = [8080, "9000-9001"]
[host]
subnet = "10.9.0.0/30"
allow = [{ to = "web", proto = "tcp", ports = [80] }]
"#;

    #[test]
    fn dot_shows_nodes_router_host_and_policy() {
        let t = Topology::from_str(TEXT).unwrap();
        let d = render(&t, Format::Dot);
        assert!(d.starts_with("digraph \"t\" {"));
        assert!(
            d.contains("node_web [label=\"web\\neth0 10.1.0.10\""),
            "{d}"
        );
        assert!(
            d.contains("router -> net_back_end [dir=none, label=\"10.2.0.1\"]"),
            "{d}"
        );
        assert!(d.contains("net_front -> node_api_1 [style=dashed"), "{d}");
        assert!(d.contains("label=\"tcp 8080,9000-9001\""), "{d}");
        assert!(d.contains("host -> node_web"), "{d}");
    }

    #[test]
    fn a_stretched_network_shows_its_vxlan_and_underlay() {
        let text = format!(
            "{TEXT}[[vxlans]]\nname = \"vx-back\"\nnetwork = \"back-end\"\nvni = 42\nremote = \"192.168.100.12\"\ndev = \"eth0\"\nunderlay = \"host\"\n"
        );
        let t = Topology::from_str(&text).unwrap();
        let label = "vni 42 to 192.168.100.12 port 4789 via eth0, host underlay";
        let d = render(&t, Format::Dot);
        assert!(d.contains("vx_vx_back -> net_back_end [dir=none"), "{d}");
        assert!(d.contains(label), "{d}");
        let m = render(&t, Format::Mermaid);
        assert!(
            m.contains(&format!("vx_vx_back>\"vx-back {label}\"] === net_back_end")),
            "{m}"
        );
    }

    #[test]
    fn mermaid_shows_the_same_edges() {
        let t = Topology::from_str(TEXT).unwrap();
        let m = render(&t, Format::Mermaid);
        assert!(m.starts_with("flowchart LR"));
        assert!(
            m.contains("net_front -.->|\"tcp 8080,9000-9001\"| node_api_1"),
            "{m}"
        );
        assert!(m.contains("host -.->|\"tcp 80\"| node_web"), "{m}");
    }
}
