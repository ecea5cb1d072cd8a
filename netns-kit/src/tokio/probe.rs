//! Async TCP probes and listeners: the socket is created by a thread inside the namespace
//! (it keeps that namespace for life), then handed to tokio.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::current_runtime;
use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::probe::{self, Reachability, TcpProbe};

/// Open a socket inside `ns` and connect to `addr` from tokio, giving up after `deadline`:
/// the async [`probe::tcp_connect`](crate::probe::tcp_connect), with the same answers.
/// Network/host unreachable (no route) is an error, not a probe outcome.
pub async fn probe_tcp_async(ns: &Netns, addr: SocketAddr, deadline: Duration) -> Result<TcpProbe> {
    Ok(probe_tcp_stream_async(ns, addr, deadline).await?.0)
}

/// Like [`probe_tcp_async`], also returning the connected stream when reachable.
pub async fn probe_tcp_stream_async(
    ns: &Netns,
    addr: SocketAddr,
    deadline: Duration,
) -> Result<(TcpProbe, Option<TcpStream>)> {
    current_runtime("probe_tcp_async")?;
    let domain = Domain::for_address(addr);
    let socket = ns
        .run_async(move || -> io::Result<Socket> {
            let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .await?
        .map_err(|e| Error::io("create TCP socket in", ns.label(), e))?;
    let socket = TcpSocket::from_std_stream(socket.into());
    match tokio::time::timeout(deadline, socket.connect(addr)).await {
        Err(_elapsed) => Ok((TcpProbe::TimedOut, None)),
        Ok(Ok(stream)) => Ok((TcpProbe::Reachable, Some(stream))),
        Ok(Err(e)) => match e.kind() {
            io::ErrorKind::ConnectionRefused => Ok((TcpProbe::Refused, None)),
            io::ErrorKind::TimedOut => Ok((TcpProbe::TimedOut, None)),
            _ => Err(Error::io("connect to", addr.to_string(), e)),
        },
    }
}

/// A tokio TCP listener bound to `addr` inside `ns`.
pub async fn listen_tcp_async(ns: &Netns, addr: SocketAddr) -> Result<TcpListener> {
    current_runtime("listen_tcp_async")?;
    let what = || format!("{addr} in {}", ns.label());
    let listener = ns
        .run_async(move || -> io::Result<std::net::TcpListener> {
            let listener = std::net::TcpListener::bind(addr)?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
        .await?
        .map_err(|e| Error::io("listen on", what(), e))?;
    TcpListener::from_std(listener).map_err(|e| Error::io("register with tokio", what(), e))
}

/// One ICMP echo from inside `ns` to `dst` (IPv4): the round-trip time, or None if no reply
/// came before `deadline` — the async [`probe::icmp_echo`], which it runs on a blocking
/// thread (that thread does not enter the namespace: the socket is made on one that does).
pub async fn icmp_echo_async(
    ns: &Netns,
    dst: IpAddr,
    deadline: Duration,
) -> Result<Option<Duration>> {
    current_runtime("icmp_echo_async")?;
    let ns = ns.clone();
    tokio::task::spawn_blocking(move || probe::icmp_echo(&ns, dst, deadline))
        .await
        .map_err(|_| Error::ThreadPanicked("sending an ICMP echo"))?
}

/// Probe every (source, target) pair at once, each with `deadline`: the async
/// [`probe::matrix`], in the same order (sources outer, targets inner).
pub async fn matrix_async(
    sources: &[(String, Netns)],
    targets: &[(String, SocketAddr)],
    deadline: Duration,
) -> Result<Vec<Reachability>> {
    current_runtime("matrix_async")?;
    let mut probes = tokio::task::JoinSet::new();
    let pairs = sources
        .iter()
        .flat_map(|(from, ns)| targets.iter().map(move |(to, addr)| (from, ns, to, *addr)));
    for (i, (from, ns, to, addr)) in pairs.enumerate() {
        let (from, to, ns) = (from.clone(), to.clone(), ns.clone());
        probes.spawn(async move {
            let outcome = probe_tcp_async(&ns, addr, deadline).await;
            (
                i,
                outcome.map(|outcome| Reachability {
                    from,
                    to,
                    addr,
                    outcome,
                }),
            )
        });
    }
    // JoinSet yields in completion order; each cell goes back to the place it was asked in.
    let mut cells: Vec<Option<Reachability>> = vec![None; sources.len() * targets.len()];
    while let Some(joined) = probes.join_next().await {
        let (i, cell) = joined.map_err(|_| Error::ThreadPanicked("probing"))?;
        if let Some(slot) = cells.get_mut(i) {
            *slot = Some(cell?);
        }
    }
    Ok(cells.into_iter().flatten().collect())
}
