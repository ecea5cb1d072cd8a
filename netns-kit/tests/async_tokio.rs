//! The `tokio` feature: a closure awaited from a thread inside a namespace, async processes
//! inside a namespace (killed on drop), and async TCP probes with the sync probe's answers.

#![cfg(feature = "tokio")]

mod privileged_support;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::process::Stdio;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use netns_kit::firewall::{self, Action, Hook, PortRange, Proto, Rule};
use netns_kit::link::LinkChange;
use netns_kit::netns;
use netns_kit::tokio::{
    icmp_echo_async, listen_tcp_async, matrix_async, probe_tcp_async, probe_tcp_stream_async,
};
use netns_kit::{Error, Netns, Ruleset, TcpProbe};
use privileged_support::privileged;

/// Port on 127.0.0.1 whose packets the namespace's firewall drops.
const DROPPED_PORT: u16 = 7002;

/// An anonymous namespace with `lo` up and a netns-kit ruleset that drops TCP to port
/// [`DROPPED_PORT`] on input (everything else is accepted).
fn namespace_with_a_blackhole() -> Netns {
    let ns = Netns::new_anonymous().unwrap();
    LinkChange::of(1)
        .up()
        .apply(&mut ns.netlink().unwrap())
        .unwrap();
    let ruleset = Ruleset {
        rules: vec![Rule::new(Hook::Input, Action::Drop)
            .proto(Proto::Tcp, vec![PortRange::single(DROPPED_PORT)])],
        ..Ruleset::default()
    };
    firewall::apply::load(&ns, &ruleset).unwrap();
    ns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_async_runs_the_closure_inside_the_namespace_and_leaves_the_worker_outside() {
    if !privileged("run_async inside") {
        return;
    }
    let ns = Netns::new_anonymous().unwrap();
    let inside = ns
        .run_async(|| Netns::current_thread().unwrap().inode())
        .await
        .unwrap();
    assert_eq!(inside, ns.inode());
    let worker = Netns::current_thread().unwrap().inode();
    assert_eq!(worker, Netns::current_process().unwrap().inode());
    assert_ne!(worker, ns.inode());
}

#[tokio::test]
async fn run_async_can_be_spawned_and_reports_a_panicking_closure_as_an_error() {
    if !privileged("run_async panics") {
        return;
    }
    let ns = Netns::new_anonymous().unwrap();
    let spawned = tokio::spawn(ns.run_async(|| 40 + 2));
    assert_eq!(spawned.await.unwrap().unwrap(), 42);
    let panicked = ns.run_async(|| -> u32 { panic!("on purpose") }).await;
    assert!(
        matches!(panicked, Err(Error::ThreadPanicked(_))),
        "{panicked:?}"
    );
}

#[tokio::test]
async fn a_command_spawned_async_runs_inside_the_namespace() {
    if !privileged("command_async inside") {
        return;
    }
    let ns = Netns::new_anonymous().unwrap();
    let out = ns
        .command_async("readlink")
        .arg("/proc/self/ns/net")
        .stdout(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("net:[{}]", ns.inode())
    );

    let mut sync_built = ns.command("readlink");
    sync_built.arg("/proc/self/ns/net").stdout(Stdio::piped());
    let child = sync_built.into_async().spawn().unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("net:[{}]", ns.inode())
    );
}

#[tokio::test]
async fn an_async_child_is_killed_when_its_handle_drops() {
    if !privileged("async child killed on drop") {
        return;
    }
    let ns = Netns::new_anonymous().unwrap();
    let inodes = std::collections::HashSet::from([ns.inode()]);
    let child = ns.command_async("sleep").arg("600").spawn().unwrap();
    let pid = child.id().unwrap() as i32;
    assert_eq!(netns::pids_in(&inodes), vec![pid]);

    drop(child);
    // SIGKILL is sent by the drop; the process leaves the namespace when the kernel has run
    // its exit. Wait for that (bounded only so a failure cannot hang the suite).
    for _ in 0..2000 {
        if netns::pids_in(&inodes).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(netns::pids_in(&inodes), Vec::<i32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_probes_answer_reachable_refused_and_timed_out() {
    if !privileged("async probes") {
        return;
    }
    let ns = namespace_with_a_blackhole();
    let listener = listen_tcp_async(&ns, "127.0.0.1:7000".parse().unwrap())
        .await
        .unwrap();
    let open = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            drop(conn);
        }
    });
    let d = Duration::from_millis(500);
    let closed: SocketAddr = "127.0.0.1:7001".parse().unwrap();
    let dropped = SocketAddr::from(([127, 0, 0, 1], DROPPED_PORT));

    assert_eq!(
        probe_tcp_async(&ns, open, d).await.unwrap(),
        TcpProbe::Reachable
    );
    assert_eq!(
        probe_tcp_async(&ns, closed, d).await.unwrap(),
        TcpProbe::Refused
    );
    assert_eq!(
        probe_tcp_async(&ns, dropped, d).await.unwrap(),
        TcpProbe::TimedOut
    );
    let (outcome, stream) = probe_tcp_stream_async(&ns, open, d).await.unwrap();
    assert_eq!(outcome, TcpProbe::Reachable);
    assert_eq!(stream.unwrap().peer_addr().unwrap(), open);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_matrix_answers_every_pair_in_the_order_asked() {
    if !privileged("async matrix") {
        return;
    }
    let ns = namespace_with_a_blackhole();
    let listener = listen_tcp_async(&ns, "127.0.0.1:7000".parse().unwrap())
        .await
        .unwrap();
    let server = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            drop(conn);
        }
    });
    let port = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let sources = vec![("a".to_string(), ns.clone()), ("b".to_string(), ns.clone())];
    let targets = vec![
        ("open".to_string(), port(7000)),
        ("closed".to_string(), port(7001)),
        ("dropped".to_string(), port(DROPPED_PORT)),
    ];
    let cells = matrix_async(&sources, &targets, Duration::from_millis(500))
        .await
        .unwrap();
    let got: Vec<(&str, &str, TcpProbe)> = cells
        .iter()
        .map(|c| (c.from.as_str(), c.to.as_str(), c.outcome))
        .collect();
    use TcpProbe::*;
    assert_eq!(
        got,
        vec![
            ("a", "open", Reachable),
            ("a", "closed", Refused),
            ("a", "dropped", TimedOut),
            ("b", "open", Reachable),
            ("b", "closed", Refused),
            ("b", "dropped", TimedOut),
        ]
    );
    server.abort();
}

#[tokio::test]
async fn an_async_icmp_echo_is_answered_inside_the_namespace() {
    if !privileged("async icmp echo") {
        return;
    }
    let ns = namespace_with_a_blackhole();
    let lo = "127.0.0.1".parse().unwrap();
    let rtt = icmp_echo_async(&ns, lo, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(
        rtt.is_some(),
        "no echo reply from {lo} inside the namespace"
    );
    // An IPv6 target is refused with a typed error naming it.
    let v6 = "::1".parse().unwrap();
    let refused = icmp_echo_async(&ns, v6, Duration::from_secs(1)).await;
    assert!(
        matches!(&refused, Err(Error::Invalid { value, .. }) if value == "::1"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_probe_socket_lives_in_the_namespace_not_in_the_callers() {
    if !privileged("async probe socket in the namespace") {
        return;
    }
    // 127.0.0.1:7000 listens only inside `ns`; in an empty namespace whose `lo` is down the
    // same address has no route at all, so only a socket created inside `ns` reaches it.
    let ns = namespace_with_a_blackhole();
    let listener = listen_tcp_async(&ns, "127.0.0.1:7000".parse().unwrap())
        .await
        .unwrap();
    let open = listener.local_addr().unwrap();
    let elsewhere = Netns::new_anonymous().unwrap();
    let d = Duration::from_millis(500);
    assert_eq!(
        probe_tcp_async(&ns, open, d).await.unwrap(),
        TcpProbe::Reachable
    );
    let from_elsewhere = probe_tcp_async(&elsewhere, open, d).await;
    assert!(
        matches!(&from_elsewhere, Err(e) if e.errno() == Some(libc::ENETUNREACH)),
        "expected no route to {open} from an empty namespace: {from_elsewhere:?}"
    );
}

#[test]
fn outside_a_tokio_runtime_the_async_api_returns_an_error_instead_of_panicking() {
    // No root needed: the process's own namespace, only read.
    let ns = Netns::current_process().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let probe = pin!(probe_tcp_async(
        &ns,
        "127.0.0.1:9".parse().unwrap(),
        Duration::from_millis(1)
    ));
    match probe.poll(&mut cx) {
        Poll::Ready(Err(Error::Invalid { kind, value, .. })) => {
            assert_eq!(kind, "calling context");
            assert!(value.contains("outside a tokio runtime"), "{value}");
        }
        other => panic!("expected an Invalid error at once, got {other:?}"),
    }
    let spawned = ns.command_async("true").spawn();
    assert!(matches!(spawned, Err(Error::Invalid { .. })), "{spawned:?}");
}
