//! The netlink socket of every family netns-kit speaks: rtnetlink ([`Netlink`](super::Netlink))
//! and nf_tables ([`NfSocket`](crate::firewall::netlink::NfSocket)) are thin layers over
//! [`NlSocket`]. It is opened in the calling thread's namespace and stays bound to it whatever
//! thread uses it later; it numbers requests, sends a buffer of whole messages in one
//! `send(2)`, reads datagrams into one reused buffer, walks their headers and collects the
//! acknowledgement of each request (errno and the kernel's extended-ack text) or the parts of
//! a dump up to NLMSG_DONE. It knows nothing of what the messages say, and its errors are
//! plain `io::Error`s: each layer labels them.

use std::collections::HashMap;
use std::io;
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

/// Receive buffer asked for with SO_RCVBUFFORCE (needs CAP_NET_ADMIN; may exceed rmem_max):
/// each acknowledgement costs about 1 KiB of it, so this holds a few thousand.
pub(crate) const RECV_BUFFER: usize = 4 * 1024 * 1024;
/// Receive-buffer accounting of one acknowledgement (an skb of its own), in bytes.
const ACK_TRUESIZE: usize = 1024;
/// Default send buffer; a bigger batch raises it first (netlink refuses a message larger
/// than the send buffer).
const SEND_BUFFER_DEFAULT: usize = 208 * 1024;
/// Bytes of a netlink message header (nlmsghdr).
const HEADER: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A netlink family: the protocol its socket speaks and how that socket is sized.
pub(crate) trait Family {
    /// The protocol (NETLINK_ROUTE, NETLINK_NETFILTER).
    const PROTOCOL: isize;
    /// Receive buffer asked for with plain SO_RCVBUF (capped at rmem_max) when
    /// SO_RCVBUFFORCE is refused.
    const RCVBUF_FALLBACK: usize;
    /// Largest datagram read: the capacity of the reused input buffer.
    const DATAGRAM: usize;
    /// The sequence counter's first value; the first request gets the next one.
    const SEQ_START: u32;
}

/// A netlink socket of family `F` bound to one namespace.
#[derive(Debug)]
pub(crate) struct NlSocket<F> {
    sock: Socket,
    seq: u32,
    inbuf: Vec<u8>,
    family: PhantomData<F>,
}

/// The kernel's answer to one acknowledged request (an NLMSG_ERROR message).
#[derive(Debug, Clone)]
pub(crate) struct Ack {
    /// The request's sequence number.
    pub(crate) seq: u32,
    /// 0 when the request succeeded, else the errno it failed with.
    pub(crate) errno: i32,
    /// The kernel's extended-ack error text, if it sent one.
    pub(crate) text: Option<String>,
}

/// What [`NlSocket::acks`] read.
#[derive(Debug)]
pub(crate) struct Acks {
    /// The acknowledgement of each awaited request, in the order given (`None` only when a
    /// failure answered to the abort sequence number cut the wait short).
    pub(crate) each: Vec<Option<Ack>>,
    /// The failure answered to the abort sequence number, if any.
    pub(crate) aborted: Option<Ack>,
}

/// How a dump ended.
#[derive(Debug)]
pub(crate) enum DumpEnd<B> {
    /// NLMSG_DONE (or an acknowledgement without error).
    Done,
    /// The kernel refused the dump.
    Failed(Ack),
    /// The part handler stopped it.
    Stopped(B),
}

/// Why [`NlSocket::send`] failed; nothing was sent.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Raising the send buffer for a big batch (SO_SNDBUFFORCE) failed.
    SendBuffer(io::Error),
    /// Raising the receive buffer for the batch's acknowledgements (SO_RCVBUFFORCE) failed.
    RecvBuffer(io::Error),
    /// send(2) failed.
    Send(io::Error),
}

/// One message of a datagram.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Message<'a> {
    /// Its type (nlmsg_type).
    pub(crate) kind: u16,
    /// Its sequence number (nlmsg_seq).
    pub(crate) seq: u32,
    /// The whole message, header included (cut at the end of the datagram if its length
    /// field overruns it).
    pub(crate) bytes: &'a [u8],
}

impl<F: Family> NlSocket<F> {
    /// Open a socket in the calling thread's namespace: bound to a port the kernel picks,
    /// connected to the kernel, small acknowledgements (no copy of the request) with the
    /// kernel's error text, a big receive buffer. An error names the step that failed
    /// ("open", "bind", "connect").
    pub(crate) fn open() -> Result<NlSocket<F>, (&'static str, io::Error)> {
        let mut sock = Socket::new(F::PROTOCOL).map_err(|e| ("open", e))?;
        sock.bind_auto().map_err(|e| ("bind", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| ("connect", e))?;
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_ext_ack(true);
        let sock = NlSocket {
            sock,
            seq: F::SEQ_START,
            inbuf: Vec::with_capacity(F::DATAGRAM),
            family: PhantomData,
        };
        if sock.force_recv_buffer(RECV_BUFFER).is_err() {
            let _ = sock.sock.set_rx_buf_sz(F::RCVBUF_FALLBACK);
        }
        Ok(sock)
    }

    /// The next request's sequence number.
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Wait at most `timeout` for a datagram; a receive that times out fails (WouldBlock).
    pub(crate) fn set_recv_timeout(&self, timeout: Duration) -> io::Result<()> {
        let timeout = TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _);
        Ok(setsockopt(&self.sock, sockopt::ReceiveTimeout, &timeout)?)
    }

    fn force_recv_buffer(&self, bytes: usize) -> io::Result<()> {
        Ok(setsockopt(&self.sock, sockopt::RcvBufForce, &bytes)?)
    }

    /// Send `bytes` (whole messages, which `acks` acknowledgements will answer) in one
    /// `send(2)`. The buffers are raised first where the default ones are too small: the send
    /// buffer for a big batch, the receive buffer when the acknowledgements, all queued
    /// before `send` returns, would not fit (ENOBUFS would lose them).
    pub(crate) fn send(&self, bytes: &[u8], acks: usize) -> Result<(), SendError> {
        if bytes.len() + 4096 > SEND_BUFFER_DEFAULT {
            let size = bytes.len() + 64 * 1024;
            setsockopt(&self.sock, sockopt::SndBufForce, &size)
                .map_err(|e| SendError::SendBuffer(e.into()))?;
        }
        let room = acks.saturating_mul(ACK_TRUESIZE);
        if room > RECV_BUFFER {
            self.force_recv_buffer(room.saturating_mul(2))
                .map_err(SendError::RecvBuffer)?;
        }
        self.sock.send(bytes, 0).map_err(SendError::Send)?;
        Ok(())
    }

    /// Read one datagram into the input buffer (again on EINTR); false when `wait` is false
    /// and none is queued.
    fn recv(&mut self, wait: bool) -> io::Result<bool> {
        let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
        loop {
            self.inbuf.clear();
            match self.sock.recv(&mut self.inbuf, flags) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if !wait && e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// Throw away every datagram already queued (answers left from an earlier exchange).
    pub(crate) fn discard_queued(&mut self) -> io::Result<()> {
        while self.recv(false)? {}
        Ok(())
    }

    /// Read acknowledgements until each request of `seqs` has one (the first for a sequence
    /// number counts; answers to other requests are skipped). A failure answered to `abort`
    /// (an nf_tables BATCH_BEGIN) means the others may never come: after it, only what is
    /// already queued is read.
    pub(crate) fn acks(
        &mut self,
        seqs: impl IntoIterator<Item = u32>,
        abort: Option<u32>,
    ) -> io::Result<Acks> {
        let mut index = HashMap::new();
        let mut count = 0;
        for (i, seq) in seqs.into_iter().enumerate() {
            index.entry(seq).or_insert(i);
            count = i + 1;
        }
        let mut each: Vec<Option<Ack>> = vec![None; count];
        let mut aborted: Option<Ack> = None;
        let mut pending = index.len();
        while pending > 0 {
            if !self.recv(aborted.is_none())? {
                break;
            }
            for ack in messages(&self.inbuf).filter_map(|m| m.ack()) {
                if let Some(slot) = index.get(&ack.seq).and_then(|&i| each.get_mut(i)) {
                    if slot.is_none() {
                        pending -= 1;
                        *slot = Some(ack);
                    }
                } else if Some(ack.seq) == abort && ack.errno != 0 {
                    aborted.get_or_insert(ack);
                }
            }
        }
        Ok(Acks { each, aborted })
    }

    /// Read datagrams until `each` returns an answer: it sees, in order, every message
    /// answering request `seq`; messages answering other requests are skipped.
    pub(crate) fn replies<T>(
        &mut self,
        seq: u32,
        mut each: impl FnMut(&Message<'_>) -> Option<T>,
    ) -> io::Result<T> {
        loop {
            self.recv(true)?;
            for m in messages(&self.inbuf).filter(|m| m.seq == seq) {
                if let Some(answer) = each(&m) {
                    return Ok(answer);
                }
            }
        }
    }

    /// Read the answers to dump request `seq` to its end, handing each part (a whole message)
    /// to `part`, which may stop there.
    pub(crate) fn dump<B>(
        &mut self,
        seq: u32,
        mut part: impl FnMut(&[u8]) -> ControlFlow<B>,
    ) -> io::Result<DumpEnd<B>> {
        self.replies(seq, |m| match m.kind {
            NLMSG_DONE => Some(DumpEnd::Done),
            NLMSG_ERROR => Some(match m.ack() {
                Some(ack) if ack.errno != 0 => DumpEnd::Failed(ack),
                _ => DumpEnd::Done,
            }),
            _ => match part(m.bytes) {
                ControlFlow::Break(b) => Some(DumpEnd::Stopped(b)),
                ControlFlow::Continue(()) => None,
            },
        })
    }
}

impl Ack {
    /// The errno as an `io::Error`.
    pub(crate) fn error(&self) -> io::Error {
        io::Error::from_raw_os_error(self.errno)
    }

    /// `" (kernel: TEXT)"`, or nothing when the kernel sent no text: how errors quote it.
    pub(crate) fn detail(&self) -> String {
        self.text
            .as_ref()
            .map(|t| format!(" (kernel: {t})"))
            .unwrap_or_default()
    }
}

impl SendError {
    /// The underlying error, whichever step failed.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            SendError::SendBuffer(e) | SendError::RecvBuffer(e) | SendError::Send(e) => e,
        }
    }
}

impl Message<'_> {
    /// The acknowledgement this message is, if it is an NLMSG_ERROR (errno 0: success).
    pub(crate) fn ack(&self) -> Option<Ack> {
        if self.kind != NLMSG_ERROR {
            return None;
        }
        let code: [u8; 4] = self.bytes.get(HEADER..HEADER + 4)?.try_into().ok()?;
        Some(Ack {
            seq: self.seq,
            errno: i32::from_ne_bytes(code).wrapping_neg(),
            text: ext_ack_text(self.bytes),
        })
    }
}

/// The messages of a datagram, in order. A length shorter than a header ends the walk (the
/// rest cannot be framed); a length overrunning the datagram is cut at its end.
fn messages(buf: &[u8]) -> impl Iterator<Item = Message<'_>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        let header: &[u8; HEADER] = rest.get(..HEADER)?.try_into().ok()?;
        let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len < HEADER {
            return None;
        }
        let message = Message {
            kind: u16::from_ne_bytes([header[4], header[5]]),
            seq: u32::from_ne_bytes([header[8], header[9], header[10], header[11]]),
            bytes: rest.get(..len).unwrap_or(rest),
        };
        rest = rest.get(align4(len)..).unwrap_or(&[]);
        Some(message)
    })
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// The kernel's extended-ack error text in an NLMSG_ERROR message (capped ack), if any.
fn ext_ack_text(msg: &[u8]) -> Option<String> {
    // nlmsghdr(16) + error code(4) + the request's nlmsghdr(16), then attributes.
    let mut p = 36usize;
    while p + 4 <= msg.len() {
        let len = u16::from_ne_bytes([msg[p], msg[p + 1]]) as usize;
        let kind = u16::from_ne_bytes([msg[p + 2], msg[p + 3]]) & 0x3fff;
        if len < 4 || p + len > msg.len() {
            break;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let raw = &msg[p + 4..p + len];
            let text = raw.split(|b| *b == 0).next().unwrap_or(raw);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        p += align4(len);
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A netlink message: header (length, `kind`, flags 0, `seq`, port 0) and `payload`,
    /// padded to 4 bytes.
    fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (HEADER + payload.len()) as u32;
        let mut m = Vec::new();
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(align4(m.len()), 0);
        m
    }

    /// A capped NLMSG_ERROR for `seq` answering with `-errno`, with `text` as
    /// NLMSGERR_ATTR_MSG when given.
    fn ack(seq: u32, errno: i32, text: Option<&str>) -> Vec<u8> {
        let mut payload = errno.wrapping_neg().to_ne_bytes().to_vec();
        payload.extend_from_slice(&message(16, seq, &[])); // the request's header
        if let Some(text) = text {
            let attr_len = (4 + text.len() + 1) as u16;
            payload.extend_from_slice(&attr_len.to_ne_bytes());
            payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
            payload.extend_from_slice(text.as_bytes());
            payload.push(0);
            payload.resize(align4(payload.len()), 0);
        }
        message(NLMSG_ERROR, seq, &payload)
    }

    #[test]
    fn walks_every_message_of_a_datagram() {
        let mut buf = message(16, 7, b"abc");
        buf.extend(ack(8, 0, None));
        buf.extend(message(NLMSG_DONE, 9, &0i32.to_ne_bytes()));
        let found: Vec<(u16, u32, usize)> = messages(&buf)
            .map(|m| (m.kind, m.seq, m.bytes.len()))
            .collect();
        assert_eq!(
            found,
            [(16, 7, 19), (NLMSG_ERROR, 8, 36), (NLMSG_DONE, 9, 20)]
        );
    }

    #[test]
    fn a_short_length_ends_the_walk_and_an_overrun_is_cut() {
        let mut buf = message(16, 1, b"x");
        buf.extend_from_slice(&[8, 0, 0, 0, 16, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(messages(&buf).count(), 1);
        let mut cut = message(16, 2, &[0; 40]);
        cut.truncate(30);
        let found: Vec<usize> = messages(&cut).map(|m| m.bytes.len()).collect();
        assert_eq!(found, [30]);
        assert_eq!(messages(&cut[..10]).count(), 0);
    }

    #[test]
    fn acks_carry_errno_and_kernel_text() {
        let buf = ack(5, libc::EEXIST, Some("Object exists"));
        let got = messages(&buf).next().and_then(|m| m.ack()).unwrap();
        assert_eq!((got.seq, got.errno), (5, libc::EEXIST));
        assert_eq!(got.detail(), " (kernel: Object exists)");
        assert_eq!(got.error().raw_os_error(), Some(libc::EEXIST));

        let buf = ack(6, 0, None);
        let got = messages(&buf).next().and_then(|m| m.ack()).unwrap();
        assert_eq!(got.detail(), "");
        assert_eq!((got.errno, got.text), (0, None));
    }

    #[test]
    fn only_nlmsg_error_with_a_code_is_an_ack() {
        let data = message(16, 1, &[0; 8]);
        assert!(messages(&data).next().and_then(|m| m.ack()).is_none());
        let short = message(NLMSG_ERROR, 1, &[0; 2]);
        assert!(messages(&short).next().and_then(|m| m.ack()).is_none());
    }
}
