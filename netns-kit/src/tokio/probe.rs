//! Async TCP probes and listeners: the socket is created by a thread inside the namespace
//! (it keeps that namespace for life), then handed to tokio.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::current_runtime;
use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::probe::TcpProbe;

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
