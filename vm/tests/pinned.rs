//! A guest booted from the pinned image: its root is the `vm-base` image built from
//! `images.lock` plus a layer with the agent, unpacked into guest RAM; no 9p, nothing of
//! the host's tree, and the tools are the locked packages' versions. And a guest booted from
//! the full stack image (`ClusterSpec::stack_root`) runs what a placement host runs.

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

/// Two namespaces on one bridge: the smallest topology netns-kit applies.
const TOPOLOGY: &str = r#"
name = "stack"

[[networks]]
name = "lan"
subnet = "10.78.0.0/24"

[[nodes]]
name = "a"
interfaces = [{ network = "lan", address = "10.78.0.10" }]

[[nodes]]
name = "b"
interfaces = [{ network = "lan", address = "10.78.0.11" }]
"#;

#[test]
fn a_guest_booted_from_the_stack_image_runs_netns_kit_postgres_redis_and_ecomm() {
    let (Some(netns_kit), Some(ecomm)) = (common::netns_kit_bin(), common::ecomm_bin()) else {
        return;
    };
    let spec = ClusterSpec::new()
        .stack_root(&netns_kit, &ecomm)
        .vm(VmSpec::new("stack").memory_mib(1024));
    let Some(cluster) = common::start(spec) else {
        return;
    };
    let vm = cluster.vm("stack");
    let s = vm::pinned::STACK;

    cluster.phase("no host root, the manifest in place", || {
        let mounts = vm.succeed("cat /proc/mounts");
        assert!(!mounts.contains(" 9p "), "no 9p mount: {mounts}");
        // The image and the run's layer: EROFS on read-only drives (vda, vdb), under a
        // tmpfs overlay with the layer on top.
        assert!(
            mounts.contains("overlay / overlay rw,relatime,lowerdir=/mnt/ro1:/mnt/ro0,"),
            "the overlay root over both drives: {mounts}"
        );
        assert_eq!(
            vm.succeed("cat /sys/block/vda/ro /sys/block/vdb/ro"),
            "1\n1\n",
            "both drives read-only"
        );
        assert!(vm.succeed("cat /proc/filesystems").contains("\terofs\n"));
        vm.succeed("echo x > /usr/lib/guest-only && test -s /usr/lib/guest-only");
        let manifest = String::from_utf8(vm.read_file(vm::pinned::Stack::PATH)).unwrap();
        assert_eq!(manifest, s.manifest());
        vm.succeed(&format!("test -x {} && test -x {}", s.curl, s.bash));
    });

    cluster.phase("netns-kit validates and applies a topology", || {
        vm.write_file("/run/stack.toml", TOPOLOGY.as_bytes());
        vm.succeed(&format!("{} validate /run/stack.toml", s.netns_kit));
        vm.succeed(&format!(
            "{} apply /run/stack.toml --name stack",
            s.netns_kit
        ));
        vm.succeed(&format!(
            "{} exec stack a -- busybox ping -c 1 -W 5 10.78.0.11",
            s.netns_kit
        ));
        vm.succeed(&format!("{} destroy stack", s.netns_kit));
    });

    cluster.phase("initdb, postgres and a query through psql", || {
        let dir = "/var/lib/postgresql/data";
        let out = vm
            .execute_timeout(&s.initdb_command(dir), std::time::Duration::from_secs(600))
            .unwrap();
        assert_eq!(out.code, 0, "initdb: {}", out.stderr);
        vm.spawn(
            &format!(
                "{} -u {} -- {}/postgres -D {dir} -c listen_addresses= -c unix_socket_directories=/tmp",
                s.runuser, s.pg_user, s.pg_bindir
            ),
            "/run/postgres.log",
        );
        vm.wait_until_succeeds(
            &format!("{}/pg_isready -h /tmp -U postgres", s.pg_bindir),
            std::time::Duration::from_secs(60),
        );
        let answer = vm.succeed(&format!(
            "{} -u {} -- {}/psql -h /tmp -U postgres -AtX -c 'select 40 + 2'",
            s.runuser, s.pg_user, s.pg_bindir
        ));
        assert_eq!(answer.trim(), "42");
        // ICU's data is cut to what PostgreSQL loads (images::icu): its collations are there
        // and sort as ICU does (`a` before `B`), unlike the C collation.
        let icu = vm.succeed(&format!(
            "{} -u {} -- {}/psql -h /tmp -U postgres -AtX -c \"select count(*) > 0, 'a' < 'B' collate \\\"und-x-icu\\\", 'a' < 'B' collate \\\"C\\\" from pg_collation where collprovider = 'i'\"",
            s.runuser, s.pg_user, s.pg_bindir
        ));
        assert_eq!(icu.trim(), "t|t|f", "ICU collations present and working");
        let version = vm.succeed(&format!("{}/postgres -V", s.pg_bindir));
        assert!(
            version.contains(&format!("PostgreSQL) {}", upstream("postgresql-15"))),
            "{version}"
        );
    });

    cluster.phase("redis-server answers PING", || {
        vm.spawn(
            &format!(
                "{} -u {} -- {} --port 6379 --save '' --appendonly no --dir /var/lib/redis",
                s.runuser, s.redis_user, s.redis_server
            ),
            "/run/redis.log",
        );
        let pong = vm.wait_until_succeeds(
            &format!("{} -p 6379 ping", s.redis_cli),
            std::time::Duration::from_secs(30),
        );
        assert_eq!(pong.trim(), "PONG");
        vm.succeed(&format!("{} -c 'exec 3<>/dev/tcp/127.0.0.1/6379'", s.bash));
    });

    // The VM backend's TCP probe: bash's /dev/tcp under the image's (busybox) timeout, which
    // exits 143 where coreutils' exits 124; refused and open ports answer at once.
    cluster.phase("TCP probes with the image's timeout", || {
        let probe = |to: &str| {
            vm.execute(&format!(
                "s=$(cut -d' ' -f1 /proc/uptime); timeout 2 {} -c 'exec 3<>/dev/tcp/{to}'; c=$?; \
                 echo \"$c $s $(cut -d' ' -f1 /proc/uptime)\"",
                s.bash
            ))
            .unwrap()
        };
        vm.succeed("nft add table inet probe && nft add chain inet probe out '{ type filter hook output priority 0; }' && nft add rule inet probe out ip daddr 10.99.0.1 drop && ip addr add 10.99.0.2/24 dev lo");
        let open = probe("127.0.0.1/6379");
        let refused = probe("127.0.0.1/1");
        let dropped = probe("10.99.0.1/80");
        eprintln!("probes: open {open:?}, refused {refused:?}, dropped {dropped:?}");
        assert!(open.stdout.starts_with("0 "), "{open:?}");
        assert!(refused.stderr.contains("refused"), "{refused:?}");
        assert!(dropped.stdout.starts_with("143 "), "{dropped:?}");
    });

    cluster.phase("the ecomm binary of the layer", || {
        let host = std::process::Command::new(&ecomm)
            .arg("--version")
            .output()
            .unwrap();
        let guest = vm.succeed(&format!("{} --version", s.ecomm));
        assert_eq!(guest, String::from_utf8_lossy(&host.stdout));
        assert!(guest.starts_with("ecomm "), "{guest}");
    });
}

/// The PostgreSQL template the VM backend ships in the layer: made on the host by the stack
/// image's own initdb in a chroot of the image's tree, owned by the image's postgres user,
/// cached per image.
#[test]
fn the_postgresql_template_is_made_by_the_images_initdb() {
    let dir = match vm::pinned::pg_template() {
        Ok(dir) => dir,
        Err(e) if common::require_all() => panic!("ECOMM_REQUIRE_ALL=1 but: {e}"),
        Err(e) => {
            eprintln!("skipping: {e}");
            return;
        }
    };
    use std::os::unix::fs::MetadataExt;
    let s = vm::pinned::STACK;
    assert_eq!(
        std::fs::read_to_string(dir.join("PG_VERSION")).unwrap(),
        format!("{}\n", upstream("postgresql-15").split('.').next().unwrap())
    );
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (s.pg_uid, s.pg_uid));
    assert_eq!(meta.mode() & 0o777, 0o700);
    let conf = std::fs::read_to_string(dir.join("pg_hba.conf")).unwrap();
    assert!(conf.contains("trust"), "{conf}");
    assert_eq!(vm::pinned::pg_template().unwrap(), dir, "cached per image");
}
