//! The two-host split: each "host" applies its half of a topology whose network is stretched
//! by a VXLAN with `underlay = "host"`. The VXLAN is born in the host's namespace (its
//! socket stays on the host's eth0) and moved into that run's fabric, enslaved to the
//! bridge. Two namespaces joined by a veth stand in for the two machines, so the test never
//! touches the real root namespace.

mod privileged_support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netns_kit::error::Error;
use netns_kit::link::{self, LinkState};
use netns_kit::netns::Netns;
use netns_kit::probe::{self, TcpProbe};
use netns_kit::topology::live::{self, ApplyError, ApplyOptions, LiveTopology};
use netns_kit::topology::plan::FABRIC;
use netns_kit::topology::Topology;
use privileged_support::{named_with_prefix, privileged, temp_state_dir, two_hosts, Acceptor};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One host's half: the "shop" network with one node, stretched to the other host.
fn half(node: &str, addr: &str, local: &str, remote: &str, dev: &str) -> Topology {
    Topology::from_str(&format!(
        r#"
name = "split"

[[networks]]
name = "shop"
subnet = "172.30.0.0/24"

[[nodes]]
name = "{node}"
interfaces = [{{ network = "shop", address = "{addr}" }}]

[[vxlans]]
name = "vx-shop"
network = "shop"
vni = 4242
local = "{local}"
remote = "{remote}"
dev = "{dev}"
underlay = "host"
"#
    ))
    .unwrap()
}

fn links(ns: &Netns) -> Vec<LinkState> {
    link::list(&mut ns.netlink().unwrap()).unwrap()
}

fn names(ns: &Netns) -> Vec<String> {
    links(ns).into_iter().map(|l| l.name).collect()
}

#[test]
fn a_host_underlay_vxlan_stretches_a_bridge_across_two_hosts() {
    if !privileged("vxlan underlay") {
        return;
    }
    let hosts = two_hosts(["10.61.0.1", "10.61.0.2"]);
    let before: Vec<Vec<String>> = hosts.iter().map(names).collect();
    let dir = temp_state_dir("vxlan-underlay");

    // Host A: the underlay namespace is given explicitly (the library way) ...
    let a = LiveTopology::apply_topology(
        &half("shop-a", "172.30.0.11", "10.61.0.1", "10.61.0.2", "eth0"),
        ApplyOptions {
            underlay_netns: Some(hosts[0].clone()),
            name: Some(format!("nk-vxa-{}", std::process::id())),
            state_dir: dir.clone(),
            ..ApplyOptions::default()
        },
    )
    .unwrap();
    // ... host B applies from a thread inside it, as the CLI does on a machine: the
    // default underlay is the calling thread's namespace.
    let b = hosts[1]
        .run(|| {
            LiveTopology::apply_topology(
                &half("shop-b", "172.30.0.12", "10.61.0.2", "10.61.0.1", "eth0"),
                ApplyOptions::default(),
            )
        })
        .unwrap()
        .unwrap();

    for (run, host) in [(&a, &hosts[0]), (&b, &hosts[1])] {
        // The VXLAN lives in the run's fabric, enslaved to the bridge, tagged with the run id …
        let fabric = links(run.netns(FABRIC).unwrap());
        let vx = fabric.iter().find(|l| l.name == "vx-shop").unwrap();
        let br = fabric.iter().find(|l| l.name == "br-shop").unwrap();
        assert_eq!(vx.kind.as_deref(), Some("vxlan"));
        assert_eq!(vx.master, Some(br.index));
        assert!(vx.up);
        assert_eq!(vx.alias.as_deref(), Some(run.run_id().alias().as_str()));
        // … and nothing was left in the host namespace.
        assert!(!names(host).contains(&"vx-shop".to_string()));
    }
    let name_a = a.name().unwrap().to_string();
    assert_eq!(live::status_in(&dir, &name_a).unwrap(), vec![]);

    // Real TCP from a node on A's bridge to a node on B's, across the underlay.
    let server = Acceptor::serve(
        probe::listen_tcp(
            b.netns("shop-b").unwrap(),
            SocketAddr::new(ip("172.30.0.12"), 7300),
        )
        .unwrap(),
    );
    assert_eq!(
        a.probe_tcp("shop-a", server.addr, Duration::from_secs(5))
            .unwrap(),
        TcpProbe::Reachable
    );
    drop(server);

    a.destroy().unwrap();
    drop(b);
    assert_eq!(named_with_prefix(&name_a), Vec::<String>::new());
    let after: Vec<Vec<String>> = hosts.iter().map(names).collect();
    assert_eq!(after, before, "the hosts' namespaces are as they were");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_underlay_device_missing_on_the_host_fails_apply_and_leaves_nothing() {
    if !privileged("vxlan underlay") {
        return;
    }
    let hosts = two_hosts(["10.61.0.1", "10.61.0.2"]);
    let before = names(&hosts[0]);
    let dir = temp_state_dir("vxlan-underlay-missing");
    let name = format!("nk-vxm-{}", std::process::id());
    let err = LiveTopology::apply_topology(
        &half("shop-a", "172.30.0.11", "10.61.0.1", "10.61.0.2", "eth9"),
        ApplyOptions {
            underlay_netns: Some(hosts[0].clone()),
            name: Some(name.clone()),
            state_dir: dir.clone(),
            ..ApplyOptions::default()
        },
    )
    .unwrap_err();
    match &err {
        ApplyError::Failed { source, .. } => {
            assert!(
                matches!(**source, Error::NotFound { ref name, .. } if name.starts_with("eth9")),
                "{err}"
            );
        }
        other => panic!("expected ApplyError::Failed, got {other}"),
    }
    assert!(err.to_string().contains("eth9"), "{err}");
    assert_eq!(named_with_prefix(&name), Vec::<String>::new());
    assert!(live::list_in(&dir).unwrap().is_empty());
    assert_eq!(names(&hosts[0]), before);
    let _ = std::fs::remove_dir_all(&dir);
}
