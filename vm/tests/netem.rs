//! netem in a real kernel: the host kernel here has no `sch_netem`, so netns-kit's own
//! privileged test can only assert the typed Unsupported error. The guest's Debian kernel
//! loads it from the initramfs; this test proves the impairment's effect there, with the
//! `netns-kit` CLI and a topology file that declares the delay.

#![allow(clippy::unwrap_used)]

mod common;

use vm::{ClusterSpec, VmSpec};

/// The delay the topology puts on `far`'s link, in milliseconds.
const DELAY_MS: f64 = 100.0;

/// Three namespaces on one bridge; only `far`'s interface is impaired.
const TOPOLOGY: &str = r#"
name = "netem"

[[networks]]
name = "lan"
subnet = "10.77.0.0/24"

[[nodes]]
name = "client"
interfaces = [{ network = "lan", address = "10.77.0.10" }]

[[nodes]]
name = "near"
interfaces = [{ network = "lan", address = "10.77.0.11" }]

[[nodes]]
name = "far"
interfaces = [{ network = "lan", address = "10.77.0.12" }]

[[impairments]]
node = "far"
network = "lan"
delay_ms = 100
"#;

/// The smallest round trip of `busybox ping`'s summary line
/// (`round-trip min/avg/max = 0.101/0.152/0.203 ms`), in milliseconds.
fn min_rtt_ms(ping_output: &str) -> f64 {
    let summary = ping_output
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .unwrap_or_else(|| panic!("no ping summary in:\n{ping_output}"));
    let values = summary.split('=').nth(1).unwrap().trim();
    values.split('/').next().unwrap().trim().parse().unwrap()
}

#[test]
fn a_declared_delay_slows_exactly_its_link_and_is_gone_once_removed() {
    let Some(netns_kit) = common::netns_kit_bin() else {
        return;
    };
    // The guest boots from the pinned image: iproute2's tc and ip, nft and busybox are the
    // locked packages', and netns-kit enters the run's layer by its content.
    const NK: &str = "/usr/local/bin/netns-kit";
    let spec = ClusterSpec::new()
        .pinned_root()
        .pinned_binary(NK, &netns_kit)
        .vm(VmSpec::new("netem"));
    let Some(cluster) = common::start(spec) else {
        return;
    };
    let guest = cluster.vm("netem");
    let nk = NK;
    let ping = |to: &str| {
        min_rtt_ms(&guest.succeed(&format!(
            "{nk} exec netem client -- busybox ping -c 3 -W 5 {to}"
        )))
    };

    guest.succeed("grep -qw '^sch_netem' /proc/modules");
    let links_before = guest.succeed("ip -o link show | cut -d: -f2 | sort");
    guest.write_file("/run/netem.toml", TOPOLOGY.as_bytes());

    cluster.phase("apply the topology with its impairment", || {
        guest.succeed(&format!("{nk} apply /run/netem.toml --name netem"));
    });

    let (baseline, delayed) = cluster.phase("measure both links", || {
        (ping("10.77.0.11"), ping("10.77.0.12"))
    });
    eprintln!("client -> near {baseline:.3} ms (unimpaired), client -> far {delayed:.3} ms");
    assert!(
        baseline < DELAY_MS,
        "the unimpaired link carries no delay: {baseline} ms"
    );
    assert!(
        delayed >= DELAY_MS,
        "every round trip to far waits out the {DELAY_MS} ms delay: {delayed} ms"
    );
    let qdisc = guest.succeed(&format!("{nk} exec netem far -- tc qdisc show dev eth0"));
    assert!(
        qdisc.contains("netem") && qdisc.contains("delay 100ms"),
        "far's eth0 carries the declared netem qdisc: {qdisc}"
    );

    cluster.phase("remove the impairment", || {
        guest.succeed(&format!(
            "{nk} exec netem far -- tc qdisc del dev eth0 root"
        ));
    });
    let qdisc = guest.succeed(&format!("{nk} exec netem far -- tc qdisc show dev eth0"));
    assert!(!qdisc.contains("netem"), "no netem left on far: {qdisc}");
    let restored = ping("10.77.0.12");
    eprintln!("client -> far after removal {restored:.3} ms");
    assert!(
        restored < DELAY_MS,
        "with the qdisc gone the delay is gone: {restored} ms"
    );

    cluster.phase("destroy", || {
        guest.succeed(&format!("{nk} destroy netem"));
    });
    assert_eq!(
        guest
            .succeed("ls /run/netns 2>/dev/null | grep -c '^netem-' || true")
            .trim(),
        "0",
        "no namespace of the run is left"
    );
    assert!(
        !guest.succeed(&format!("{nk} list")).contains("netem"),
        "netns-kit no longer knows the run"
    );
    assert_eq!(
        guest.succeed("ip -o link show | cut -d: -f2 | sort"),
        links_before,
        "the guest's root namespace has exactly the links it had before"
    );
}
