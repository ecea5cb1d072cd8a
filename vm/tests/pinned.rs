//! A guest booted from the pinned image: its root is the `vm-base` image built from
//! `images.lock` plus a layer with the agent, unpacked into guest RAM; no 9p, nothing of
//! the host's tree, and the tools are the locked packages' versions.

#![allow(clippy::unwrap_used)]

mod common;

use vm::{ClusterSpec, VmSpec};

/// The upstream part of a locked Debian version (`1:1.0.6-2+deb12u2` → `1.0.6`).
fn upstream(package: &str) -> String {
    let lock = images::lock::Lock::read(&images::lock::default_path()).unwrap();
    let v = &lock.get(package).unwrap().version;
    let v = v.split_once(':').map(|(_, v)| v).unwrap_or(v);
    v.rsplit_once('-').map(|(u, _)| u).unwrap_or(v).to_string()
}

#[test]
fn a_guest_booted_from_the_pinned_image_runs_the_locked_tools_and_sees_no_host_tree() {
    let Some(cluster) = common::start(ClusterSpec::new().pinned_root().vm(VmSpec::new("pinned")))
    else {
        return;
    };
    let vm = cluster.vm("pinned");
    assert_eq!(vm.succeed("uname -r").trim(), vm::kernel::KERNEL_RELEASE);

    cluster.phase("no host root", || {
        let mounts = vm.succeed("cat /proc/mounts");
        assert!(!mounts.contains(" 9p "), "no 9p mount: {mounts}");
        assert!(!mounts.contains("overlay"), "no host overlay: {mounts}");
        let marker = std::env::temp_dir().join(format!("vm-pinned-{}", std::process::id()));
        std::fs::write(&marker, "host only\n").unwrap();
        vm.fail(&format!("test -e {}", marker.display()));
        std::fs::remove_file(&marker).unwrap();
        vm.fail("test -e /usr/lib/postgresql");
    });

    cluster.phase("the locked tools", || {
        let nft = vm.succeed("nft --version");
        assert!(nft.contains(&format!("v{}", upstream("nftables"))), "{nft}");
        let ip = vm.succeed("ip -V");
        assert!(
            ip.contains(&format!("iproute2-{}", upstream("iproute2"))),
            "{ip}"
        );
        vm.succeed("test -x /usr/local/bin/vm-agent");
        vm.succeed("ip link add br0 type bridge && ip link set br0 up");
        vm.succeed("nft add table inet t && nft list tables | grep -q 'table inet t'");
    });

    cluster.phase("writes stay in guest RAM", || {
        vm.succeed("echo guest > /etc/guest-only && test \"$(cat /etc/guest-only)\" = guest");
        assert!(!std::path::Path::new("/etc/guest-only").exists());
    });
}
