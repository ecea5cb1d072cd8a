//! The file format documented on `topology/spec.rs` is itself a valid topology, so the
//! documentation cannot drift from what the validator accepts.

use netns_kit::topology::{Naming, Plan, Topology};

fn documented_example() -> String {
    documented_block(0)
}

/// The `n`-th ```toml block of spec.rs's module documentation.
fn documented_block(n: usize) -> String {
    let source = include_str!("../src/topology/spec.rs");
    let mut lines = source
        .lines()
        .map(|l| {
            l.strip_prefix("//!")
                .map(|r| r.strip_prefix(' ').unwrap_or(r))
        })
        .map_while(|l| l)
        .skip_while(|l| *l != "```toml")
        .skip(1);
    for _ in 0..n {
        lines.by_ref().find(|l| *l == "```");
        lines.by_ref().find(|l| *l == "```toml");
    }
    let mut text = String::new();
    for line in lines.by_ref() {
        if line == "```" {
            return text;
        }
        text.push_str(line);
        text.push('\n');
    }
    panic!("no ```toml block in spec.rs's module documentation");
}

#[test]
fn the_documented_example_validates() {
    let t = Topology::from_str(&documented_example()).unwrap();
    assert_eq!(t.networks.len(), 2);
    let product = t.node("product-1").unwrap();
    assert_eq!(product.interfaces[0].address.to_string(), "172.21.0.2");
    assert!(product.interfaces[0].allocated);
    assert_eq!(t.vxlans[0].vni, 42);
    assert_eq!(t.impairments[0].netem.delay_ms, Some(50));
    let gateway = t.service("gateway").unwrap();
    assert_eq!(
        gateway.instances[0].command[3], "172.20.0.10:3000",
        "${{self.listen}}"
    );
    assert_eq!(gateway.instances[0].command[7], "172.21.0.2:8001");
    assert_eq!(gateway.instances[0].command[5], "${token}", "a runtime var");
    assert_eq!(t.start_order()[0].name, "product");
}

#[test]
fn the_documented_placement_validates_and_derives_its_overlay() {
    let t = Topology::from_str(&documented_block(1)).unwrap();
    let o = &t.placement.as_ref().unwrap().overlay;
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].name.as_str(), o[0].vni), ("vx-backend", 100));
    let alpha = t.for_host("alpha").unwrap();
    assert_eq!(alpha.nodes.len(), 1);
    assert_eq!(
        alpha.vxlans[0].peer,
        netns_kit::topology::plan::VxlanPeer::Remote("192.168.100.12".parse().unwrap())
    );
}

#[test]
fn the_documented_example_plans_its_host_link_with_the_given_name() {
    let t = Topology::from_str(&documented_example()).unwrap();
    let plan = Plan::for_run(
        &t,
        "doc",
        Naming::Named {
            prefix: "lab".into(),
        },
    )
    .unwrap();
    assert_eq!(plan.host_link.unwrap().host_ifname, "nk-lab");
    assert_eq!(plan.impairments.len(), 1);
    assert_eq!(plan.vxlans[0].master.as_deref(), Some("br-backend"));
}
