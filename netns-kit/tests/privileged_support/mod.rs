//! Shared by the privileged integration tests: the root check that skips (or fails under
//! ECOMM_REQUIRE_ALL=1), and small fixtures.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use netns_kit::addr::Address;
use netns_kit::link::{self, LinkChange};
use netns_kit::netns::Netns;
use netns_kit::runid::RunId;
use netns_kit::topology::live::ApplyOptions;
use netns_kit::topology::plan::{Naming, Plan};
use netns_kit::topology::Topology;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// True if the test may touch the kernel; otherwise prints why it skips. Under
/// ECOMM_REQUIRE_ALL=1 a missing capability fails the test instead.
pub fn privileged(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("ECOMM_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{test}: needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and ECOMM_REQUIRE_ALL=1 is set");
    }
    eprintln!("skipping {test}: needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)");
    false
}

/// A TCP server that accepts and closes connections until dropped.
pub struct Acceptor {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    /// Serve on `listener` (already bound inside its namespace).
    pub fn serve(listener: TcpListener) -> Acceptor {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => drop(s),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
                }
            }
        });
        Acceptor {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn three_tier() -> Topology {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/three-tier.toml");
    Topology::from_path(&path).unwrap()
}

/// A named run `nk-<runid>` recorded in a private state dir, without the host link (tests
/// never touch the root namespace).
pub fn named_plan(state_dir: &std::path::Path) -> (Plan, ApplyOptions) {
    let run = RunId::new().unwrap();
    let mut plan = Plan::for_run(
        &three_tier(),
        run.as_str(),
        Naming::Named {
            prefix: format!("nk-{run}"),
        },
    )
    .unwrap();
    if let Some(h) = plan.host_link.take() {
        plan.addresses
            .retain(|a| !(a.ns == h.peer_ns && a.ifname == h.peer_ifname));
    }
    let opts = ApplyOptions {
        state_dir: state_dir.to_path_buf(),
        ..ApplyOptions::default()
    };
    (plan, opts)
}

pub fn temp_state_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netns-kit-test-{tag}-{}", RunId::new().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Names under /run/netns that belong to `prefix`.
pub fn named_with_prefix(prefix: &str) -> Vec<String> {
    netns_kit::netns::list_named()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// The name prefix of a named plan.
pub fn prefix_of(plan: &Plan) -> String {
    match &plan.naming {
        Naming::Named { prefix } => prefix.clone(),
        Naming::Anonymous => String::new(),
    }
}

/// Two "machines" joined by a veth: `eth0` (index 100) in each of two anonymous namespaces,
/// up, at `addrs` (/24), with `lo` up.
pub fn two_hosts(addrs: [&str; 2]) -> [Netns; 2] {
    let hosts = [
        Netns::new_anonymous().unwrap(),
        Netns::new_anonymous().unwrap(),
    ];
    let mut nl = hosts[0].netlink().unwrap();
    link::veth("eth0", "eth0")
        .index(100)
        .up()
        .peer_index(100)
        .peer_netns(hosts[1].fd())
        .create(&mut nl)
        .unwrap();
    for (h, a) in hosts.iter().zip(addrs) {
        let mut nl = h.netlink().unwrap();
        LinkChange::of(1).up().queue(&mut nl);
        LinkChange::of(100).up().queue(&mut nl);
        Address::new(100, a.parse().unwrap(), 24)
            .unwrap()
            .queue_add(&mut nl);
        nl.flush().unwrap();
    }
    hosts
}
