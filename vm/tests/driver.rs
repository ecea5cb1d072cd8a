//! The driver itself: one VM driven through its agent, and two VMs on the switch.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use vm::{ClusterSpec, VmSpec};

#[test]
fn one_vm_runs_commands_files_background_processes_and_survives_freeze() {
    let Some(cluster) = common::start(ClusterSpec::new().vm(VmSpec::new("solo"))) else {
        return;
    };
    let solo = cluster.vm("solo");

    assert_eq!(solo.succeed("uname -r").trim(), vm::kernel::KERNEL_RELEASE);
    assert_eq!(solo.succeed("hostname").trim(), "solo");
    let stderr = solo.fail("echo oops >&2; exit 3");
    assert_eq!(stderr.trim(), "oops");

    cluster.phase("files", || {
        solo.write_file("/tmp/greeting", b"hello from the host\n");
        assert_eq!(solo.succeed("cat /tmp/greeting"), "hello from the host\n");
        solo.succeed("echo written in the guest > /root/reply");
        assert_eq!(solo.read_file("/root/reply"), b"written in the guest\n");
    });

    cluster.phase("root is a read-only host tree under an overlay", || {
        assert_eq!(solo.succeed("findmnt -no FSTYPE /").trim(), "overlay");
        solo.succeed("touch /etc/guest-only-file");
        assert!(!std::path::Path::new("/etc/guest-only-file").exists());
        // The host's /tmp is part of that tree (a checkout under /tmp must be visible).
        let host_file = std::env::temp_dir().join(format!("vm-driver-{}", std::process::id()));
        std::fs::write(&host_file, "written on the host\n").unwrap();
        let seen = solo.succeed(&format!("cat {}", host_file.display()));
        std::fs::remove_file(&host_file).unwrap();
        assert_eq!(seen, "written on the host\n");
    });

    cluster.phase("background process", || {
        solo.spawn(
            "while true; do date +%s >> /tmp/ticks; sleep 0.2; done",
            "/tmp/ticker.log",
        );
        solo.wait_until_succeeds("test $(wc -l < /tmp/ticks) -ge 3", Duration::from_secs(10));
    });

    cluster.phase(
        "TCP exchanges from a namespace, without a guest process",
        || {
            solo.succeed(
                "mkdir -p /tmp/www && echo served in ns-x > /tmp/www/index.html && \
             ip netns add ns-x && ip -n ns-x link set lo up",
            );
            solo.spawn(
                "exec ip netns exec ns-x busybox httpd -f -p 127.0.0.1:7001 -h /tmp/www",
                "/tmp/httpd.log",
            );
            solo.wait_until_succeeds(
                "ip netns exec ns-x ss -Htln 'sport = :7001' | grep -q .",
                Duration::from_secs(20),
            );
            let request = b"GET /index.html HTTP/1.0\r\n\r\n";
            let inside = solo
                .exchange(
                    Some("/run/netns/ns-x"),
                    "127.0.0.1:7001",
                    request,
                    Duration::from_secs(20),
                )
                .unwrap();
            // From the root namespace the same address has no listener.
            let outside = solo
                .exchange(None, "127.0.0.1:7001", request, Duration::from_secs(20))
                .unwrap();
            let mut done = std::collections::HashMap::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while done.len() < 2 && std::time::Instant::now() < deadline {
                done.extend(solo.collect().unwrap());
                std::thread::sleep(Duration::from_millis(50));
            }
            let answer = String::from_utf8(done[&inside].clone().unwrap()).unwrap();
            assert!(
                answer.starts_with("HTTP/1.") && answer.contains("served in ns-x"),
                "{answer}"
            );
            assert_eq!(done[&outside], Err("refused".to_string()));
            // Collected outcomes are handed out once.
            assert!(solo.collect().unwrap().is_empty());
            let bad = solo.exchange(None, "nowhere", request, Duration::from_secs(1));
            assert!(
                bad.as_ref()
                    .is_err_and(|e| e.to_string().contains("\"nowhere\"")),
                "{bad:?}"
            );
        },
    );

    cluster.phase("freeze and thaw", || {
        solo.freeze();
        let frozen = solo.execute_timeout("true", Duration::from_secs(2));
        assert!(frozen.is_err(), "a frozen VM must not answer: {frozen:?}");
        solo.thaw();
        solo.wait_until_succeeds("true", Duration::from_secs(10));
        assert_eq!(solo.succeed("echo thawed").trim(), "thawed");
    });

    cluster.phase("kill and restart", || {
        solo.kill();
        assert!(!solo.is_running());
        solo.restart().unwrap();
        solo.fail("test -e /tmp/greeting");
        assert_eq!(solo.succeed("hostname").trim(), "solo");
    });

    // Nothing outlives the cluster: no QEMU process, no run directory.
    let pid = solo.qemu_pid().unwrap();
    let dir = cluster.run_dir().to_path_buf();
    drop(cluster);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "qemu {pid} outlived the cluster"
    );
    assert!(!dir.exists(), "{} outlived the cluster", dir.display());
}

#[test]
fn two_vms_talk_over_the_switch_until_the_link_is_cut() {
    let spec = ClusterSpec::new()
        .vm(VmSpec::new("alice").nic("lan"))
        .vm(VmSpec::new("bob").nic("lan"));
    let Some(cluster) = common::start(spec) else {
        return;
    };
    let (alice, bob) = (cluster.vm("alice"), cluster.vm("bob"));
    let bob_ip = bob.ip("lan").to_string();

    cluster.phase("ping and tcp", || {
        let capture =
            std::env::temp_dir().join(format!("vm-driver-bob-{}.pcap", std::process::id()));
        cluster.net().capture("bob", &capture).unwrap();
        alice.succeed(&format!("busybox ping -c1 -W5 {bob_ip}"));
        bob.spawn(
            "busybox nc -ll -p 7000 -e echo pong-from-bob",
            "/tmp/nc.log",
        );
        bob.wait_for_open_port(7000);
        let reply = alice.succeed(&format!("busybox nc -w 5 {bob_ip} 7000 </dev/null"));
        assert_eq!(reply.trim(), "pong-from-bob");
        cluster.net().stop_capture("bob");
        let pcap = std::fs::read(&capture).unwrap();
        std::fs::remove_file(&capture).unwrap();
        assert!(
            pcap.len() > 24 + 16 * 4,
            "the capture holds bob's ICMP and TCP frames"
        );
    });

    cluster.phase("cut stops traffic", || {
        cluster.net().cut("alice", "bob");
        alice.fail(&format!("busybox ping -c2 -W1 {bob_ip}"));
        alice.fail(&format!(
            "busybox nc -w 2 {bob_ip} 7000 </dev/null | grep -q pong"
        ));
    });

    cluster.phase("restore resumes traffic", || {
        cluster.net().restore("alice", "bob");
        alice.wait_until_succeeds(
            &format!("busybox ping -c1 -W1 {bob_ip}"),
            Duration::from_secs(10),
        );
        let reply = alice.succeed(&format!("busybox nc -w 5 {bob_ip} 7000 </dev/null"));
        assert_eq!(reply.trim(), "pong-from-bob");
    });
}
