//! The file format documented on `topology/spec.rs` is itself a valid topology, so the
//! documentation cannot drift from what the validator accepts.

use netns_kit::topology::{Naming, Plan, Topology};

fn documented_example() -> String {
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
