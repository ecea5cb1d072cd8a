//! IPv6 link-local addresses exist only on IPv6 networks: on an IPv4 network no interface
//! netns-kit creates (bridge, either veth end) ever gets one, so nothing floods DAD, MLD or
//! router solicitations through the bridge; on an IPv6 network they appear as usual, and
//! IPv6 traffic between two nodes flows.

mod privileged_support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use netns_kit::addr;
use netns_kit::probe::{self, TcpProbe};
use netns_kit::runid::RunId;
use netns_kit::topology::live::{ApplyOptions, LiveTopology};
use netns_kit::topology::plan::{Naming, Plan};
use netns_kit::topology::Topology;
use privileged_support::{privileged, Acceptor};

const MIXED: &str = r#"
name = "mixed"

[[networks]]
name = "v4"
subnet = "10.77.0.0/24"

[[networks]]
name = "v6"
subnet = "fd00:77::/64"

[[nodes]]
name = "a"
interfaces = [
  { network = "v4", address = "10.77.0.10" },
  { network = "v6", address = "fd00:77::10" },
]

[[nodes]]
name = "b"
interfaces = [
  { network = "v4", address = "10.77.0.20" },
  { network = "v6", address = "fd00:77::20" },
]
"#;

fn is_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// (interface name, link-local count) for every link of `ns` in `live`.
fn link_locals(live: &LiveTopology, ns: &str) -> Vec<(String, usize)> {
    let netns = live.netns(ns).unwrap();
    let mut nl = netns.netlink().unwrap();
    let addrs = addr::list(&mut nl).unwrap();
    netns_kit::link::list(&mut nl)
        .unwrap()
        .into_iter()
        .map(|l| {
            let n = addrs
                .iter()
                .filter(|a| a.link == l.index && is_link_local(&a.ip))
                .count();
            (l.name, n)
        })
        .collect()
}

#[test]
fn only_interfaces_on_ipv6_networks_get_a_link_local_address() {
    if !privileged("IPv6 link-local per network family") {
        return;
    }
    let topology = Topology::from_str(MIXED).unwrap();
    let run = RunId::new().unwrap();
    let plan = Plan::for_run(&topology, run.as_str(), Naming::Anonymous).unwrap();
    let live = LiveTopology::apply(&plan, ApplyOptions::default()).unwrap();

    let v6_ends: Vec<String> = plan
        .veths
        .iter()
        .filter(|v| v.ipv6)
        .flat_map(|v| [v.a.ifname.clone(), v.b.ifname.clone()])
        .collect();
    assert_eq!(
        v6_ends.len(),
        4,
        "two nodes on the v6 network, two ends each"
    );

    // Carrier reaches the second end through the kernel's linkwatch (up to a second late):
    // wait until every IPv6-network end has its link-local address.
    let deadline = Instant::now() + Duration::from_secs(5);
    let snapshot = loop {
        let snapshot: Vec<(String, String, usize)> = ["fabric", "a", "b"]
            .iter()
            .flat_map(|ns| {
                link_locals(&live, ns)
                    .into_iter()
                    .map(move |(name, n)| (ns.to_string(), name, n))
            })
            .collect();
        let v6_ready = snapshot
            .iter()
            .filter(|(_, name, _)| v6_ends.contains(name))
            .all(|(_, _, n)| *n > 0);
        if v6_ready || Instant::now() > deadline {
            break snapshot;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for (ns, name, n) in &snapshot {
        if v6_ends.contains(name) {
            assert_eq!(*n, 1, "{ns}/{name} is on the IPv6 network: one link-local");
        } else if name != "lo" && !name.starts_with("br") {
            assert_eq!(*n, 0, "{ns}/{name} is on the IPv4 network: no link-local");
        }
    }
    let v4_bridge = &plan.bridges.iter().find(|b| !b.ipv6).unwrap().ifname;
    let v4_bridge_count = snapshot
        .iter()
        .find(|(ns, name, _)| ns == "fabric" && name == v4_bridge)
        .map(|(_, _, n)| *n);
    assert_eq!(
        v4_bridge_count,
        Some(0),
        "the IPv4 bridge has no link-local"
    );

    // Both families carry traffic.
    let mut acceptors = Vec::new();
    for ip in ["10.77.0.20", "fd00:77::20"] {
        let listen = SocketAddr::new(ip.parse().unwrap(), 7000);
        let listener = probe::listen_tcp(live.netns("b").unwrap(), listen).unwrap();
        acceptors.push(Acceptor::serve(listener));
        let answer =
            probe::tcp_connect(live.netns("a").unwrap(), listen, Duration::from_secs(3)).unwrap();
        assert_eq!(answer, TcpProbe::Reachable, "a -> {listen}");
    }
    drop(acceptors);
    live.destroy().unwrap();
}
