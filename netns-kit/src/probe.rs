//! Probes for tests: TCP connect with a deadline (reachable / refused / timed out), ICMP
//! echo, listeners opened inside a namespace, and a reachability matrix.
//!
//! Every socket is created by a thread inside the namespace (a socket stays in the
//! namespace it was created in), then used from wherever the caller likes.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, Result};
use crate::netns::Netns;

/// The outcome of a TCP connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TcpProbe {
    /// The handshake completed.
    Reachable,
    /// The target answered with a reset (nothing listening there).
    Refused,
    /// No answer before the deadline (dropped on the way, e.g. by policy).
    TimedOut,
}

/// Open a socket inside `ns` and connect to `addr`, giving up after `deadline`.
/// Network/host unreachable (no route) is an error, not a probe outcome.
pub fn tcp_connect(ns: &Netns, addr: SocketAddr, deadline: Duration) -> Result<TcpProbe> {
    let stream = tcp_socket_in(ns, addr)?;
    Ok(connect_with_deadline(&stream, addr, deadline)?.0)
}

/// Like [`tcp_connect`], also returning the connected stream when reachable.
pub fn tcp_connect_stream(
    ns: &Netns,
    addr: SocketAddr,
    deadline: Duration,
) -> Result<(TcpProbe, Option<TcpStream>)> {
    let sock = tcp_socket_in(ns, addr)?;
    let (probe, _) = connect_with_deadline(&sock, addr, deadline)?;
    Ok((probe, (probe == TcpProbe::Reachable).then(|| sock.into())))
}

fn tcp_socket_in(ns: &Netns, addr: SocketAddr) -> Result<Socket> {
    let domain = Domain::for_address(addr);
    ns.run(move || Socket::new(domain, Type::STREAM, Some(Protocol::TCP)))?
        .map_err(|e| Error::io("create TCP socket in", ns.label(), e))
}

fn connect_with_deadline(
    sock: &Socket,
    addr: SocketAddr,
    deadline: Duration,
) -> Result<(TcpProbe, Duration)> {
    let started = Instant::now();
    let outcome = match sock.connect_timeout(&addr.into(), deadline) {
        Ok(()) => TcpProbe::Reachable,
        Err(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused => TcpProbe::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => TcpProbe::TimedOut,
            _ => return Err(Error::io("connect to", addr.to_string(), e)),
        },
    };
    Ok((outcome, started.elapsed()))
}

/// A TCP listener bound to `addr` inside `ns` (accept from any thread).
pub fn listen_tcp(ns: &Netns, addr: SocketAddr) -> Result<TcpListener> {
    ns.run(move || TcpListener::bind(addr))?
        .map_err(|e| Error::io("listen on", format!("{addr} in {}", ns.label()), e))
}

/// Send one ICMP echo request from inside `ns` to `dst` (IPv4) and return the round-trip
/// time, or None if no reply came before `deadline`.
pub fn icmp_echo(ns: &Netns, dst: IpAddr, deadline: Duration) -> Result<Option<Duration>> {
    let IpAddr::V4(dst4) = dst else {
        return Err(Error::Invalid {
            kind: "ICMP echo target",
            value: dst.to_string(),
            expected: "an IPv4 address",
        });
    };
    let sock = ns
        .run(|| Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)))?
        .map_err(|e| Error::io("create ICMP socket in", ns.label(), e))?;
    let ident = (std::process::id() as u16) ^ (Instant::now().elapsed().subsec_nanos() as u16);
    let seq: u16 = 1;
    let mut pkt = [0u8; 16];
    pkt[0] = 8; // echo request
    pkt[4..6].copy_from_slice(&ident.to_be_bytes());
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    pkt[8..16].copy_from_slice(b"netnskit");
    let sum = checksum(&pkt);
    pkt[2..4].copy_from_slice(&sum.to_be_bytes());
    let to: SocketAddr = SocketAddr::new(dst, 0);
    let started = Instant::now();
    sock.send_to(&pkt, &to.into())
        .map_err(|e| Error::io("send ICMP echo to", dst.to_string(), e))?;
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(None);
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| Error::io("set timeout on ICMP socket in", ns.label(), e))?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("receive ICMP in", ns.label(), e)),
        };
        // SAFETY: recv_from initialised the first `n` bytes of `buf`.
        let data: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
        let ihl = usize::from(data.first().copied().unwrap_or(0) & 0x0f) * 4;
        let Some(icmp) = data.get(ihl..) else {
            continue;
        };
        let from_ip = from.as_socket().map(|s| s.ip());
        if icmp.len() >= 8
            && icmp[0] == 0
            && icmp[4..6] == ident.to_be_bytes()
            && icmp[6..8] == seq.to_be_bytes()
            && from_ip == Some(IpAddr::V4(dst4))
        {
            return Ok(Some(started.elapsed()));
        }
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let word = u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]);
        sum = sum.wrapping_add(u32::from(word));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One cell of a reachability matrix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reachability {
    /// The source (a node name).
    pub from: String,
    /// The target (a label such as `registry:8500`).
    pub to: String,
    /// The target address.
    pub addr: SocketAddr,
    /// What happened.
    pub outcome: TcpProbe,
}

/// Probe every (source, target) pair in parallel, each with `deadline`.
pub fn matrix(
    sources: &[(String, Netns)],
    targets: &[(String, SocketAddr)],
    deadline: Duration,
) -> Result<Vec<Reachability>> {
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (from, ns) in sources {
            for (to, addr) in targets {
                handles.push(s.spawn(move || -> Result<Reachability> {
                    Ok(Reachability {
                        from: from.clone(),
                        to: to.clone(),
                        addr: *addr,
                        outcome: tcp_connect(ns, *addr, deadline)?,
                    })
                }));
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| Error::ThreadPanicked("probing"))?)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::checksum;

    #[test]
    fn icmp_checksum_of_zeroed_echo_is_complement_of_type() {
        let mut pkt = [0u8; 8];
        pkt[0] = 8;
        assert_eq!(checksum(&pkt), !0x0800);
    }
}
