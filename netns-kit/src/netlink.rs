//! A thin rtnetlink socket: requests are queued and sent in batches (many messages per
//! `send`), then every acknowledgement is collected. One socket per namespace, opened by a
//! thread inside it; the socket stays bound to that namespace whatever thread uses it later.
//!
//! Messages are netlink-packet-route types, built and parsed only in this file, so a change of
//! that crate's API stays here and in `link/`, `addr.rs`, `route.rs`. The socket underneath
//! (opening, sequence numbers, sending, reading acknowledgements and dumps) is `socket`'s
//! `NlSocket`, which the nf_tables socket shares.

pub(crate) mod socket;

use std::io;
use std::ops::ControlFlow;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;

use crate::error::{Error, Result};
use socket::{DumpEnd, Family, NlSocket};

/// Bytes of requests sent per `send(2)` (the kernel handles each message in turn).
const BATCH_BYTES: usize = 48 * 1024;
/// Requests per `send(2)`: each acknowledgement is its own socket buffer (~1 KiB of
/// receive-buffer accounting), so a batch must not outgrow the receive buffer (ENOBUFS).
const BATCH_MESSAGES: usize = 128;
/// Receive buffer for answers and dumps (asked for when SO_RCVBUFFORCE is refused), and the
/// largest datagram read.
const RECV_BYTES: usize = 256 * 1024;

/// The rtnetlink family (NETLINK_ROUTE).
#[derive(Debug)]
pub(crate) struct Rtnetlink;

impl Family for Rtnetlink {
    const PROTOCOL: isize = NETLINK_ROUTE;
    const RCVBUF_FALLBACK: usize = RECV_BYTES;
    const DATAGRAM: usize = RECV_BYTES;
    const SEQ_START: u32 = 0;
}

/// An rtnetlink socket bound to one namespace, with a queue of pending requests.
#[derive(Debug)]
pub struct Netlink {
    sock: NlSocket<Rtnetlink>,
    ns: String,
    /// (sequence number, length in `out`, description) of each queued request.
    queued: Vec<(u32, usize, String)>,
    out: Vec<u8>,
}

impl Netlink {
    /// Open a socket in the calling thread's namespace; `ns` labels errors.
    pub(crate) fn open(ns: String) -> Result<Netlink> {
        let sock = NlSocket::open()
            .map_err(|(op, e)| Error::io(op, format!("netlink socket in {ns}"), e))?;
        Ok(Netlink {
            sock,
            ns,
            queued: Vec::new(),
            out: Vec::with_capacity(BATCH_BYTES + 4096),
        })
    }

    /// The namespace label this socket was opened in.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// Queue a request (`flags` adds to REQUEST|ACK, e.g. NLM_F_CREATE|NLM_F_EXCL); `op`
    /// describes it for error messages. Nothing is sent before [`Netlink::flush`].
    pub fn queue(&mut self, msg: RouteNetlinkMessage, flags: u16, op: impl Into<String>) {
        let seq = self.sock.next_seq();
        let len = encode(&mut self.out, msg, NLM_F_REQUEST | NLM_F_ACK | flags, seq);
        self.queued.push((seq, len, op.into()));
    }

    /// Number of queued, unsent requests.
    pub fn pending(&self) -> usize {
        self.queued.len()
    }

    /// Send every queued request (in batches) and wait for all acknowledgements. Every
    /// request is processed even if one fails; the first failure is returned.
    pub fn flush(&mut self) -> Result<()> {
        let out = std::mem::take(&mut self.out);
        let queued = std::mem::take(&mut self.queued);
        let result = self.send_all(&out, &queued);
        self.out = out;
        self.out.clear();
        result
    }

    /// Queue one request and flush.
    pub fn execute(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: impl Into<String>,
    ) -> Result<()> {
        self.queue(msg, flags, op);
        self.flush()
    }

    fn send_all(&mut self, out: &[u8], queued: &[(u32, usize, String)]) -> Result<()> {
        let mut first_err: Option<Error> = None;
        let mut off = 0usize;
        let mut qi = 0usize;
        while qi < queued.len() {
            // Gather whole messages up to BATCH_BYTES.
            let start = off;
            let first = qi;
            while let Some(&(_, len, _)) = queued.get(qi) {
                if off > start && (off + len - start > BATCH_BYTES || qi - first >= BATCH_MESSAGES)
                {
                    break;
                }
                off += len;
                qi += 1;
            }
            let batch = &queued[first..qi];
            self.sock.send(&out[start..off], batch.len()).map_err(|e| {
                Error::io("send", format!("netlink batch in {}", self.ns), e.into_io())
            })?;
            let acks = self
                .sock
                .acks(batch.iter().map(|(seq, _, _)| *seq), None)
                .map_err(|e| self.recv_error(e))?;
            if first_err.is_none() {
                let failed = batch
                    .iter()
                    .zip(acks.each)
                    .find_map(|((_, _, op), ack)| ack.filter(|a| a.errno != 0).map(|a| (op, a)));
                first_err = failed.map(|(op, ack)| Error::Netlink {
                    op: op.clone(),
                    ns: self.ns.clone(),
                    source: ack.error(),
                    detail: ack.detail(),
                });
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Send one get request (no dump) and return its answer; `None` when the kernel
    /// answers that the object does not exist (ENODEV, ENOENT). One round trip, one
    /// message parsed: cheaper than a dump filtered here.
    pub fn get(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Option<RouteNetlinkMessage>> {
        let seq = self.send_request(msg, 0, "get")?;
        let ns = &self.ns;
        let answer = self.sock.replies(seq, |m| {
            if let Some(ack) = m.ack() {
                return Some(match ack.errno {
                    0 | libc::ENODEV | libc::ENOENT => Ok(None),
                    _ => Err(Error::Netlink {
                        op: format!("get {what}"),
                        ns: ns.clone(),
                        source: ack.error(),
                        detail: ack.detail(),
                    }),
                });
            }
            // Netlink's own messages (done, noop, overrun) are not the answer.
            decode(m.bytes, ns, what).transpose().map(|r| r.map(Some))
        });
        answer.map_err(|e| self.recv_error(e))?
    }

    /// Send a dump request and collect every answer.
    pub fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send_request(msg, NLM_F_DUMP, "dump")?;
        let ns = &self.ns;
        let mut answers = Vec::new();
        let end = self.sock.dump(seq, |part| match decode(part, ns, what) {
            Ok(m) => {
                answers.extend(m);
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(e),
        });
        match end.map_err(|e| self.recv_error(e))? {
            DumpEnd::Done => Ok(answers),
            DumpEnd::Failed(ack) => Err(Error::Netlink {
                op: format!("dump {what}"),
                ns: self.ns.clone(),
                source: ack.error(),
                detail: String::new(),
            }),
            DumpEnd::Stopped(e) => Err(e),
        }
    }

    /// Sends one request (`NLM_F_REQUEST | flags`) under the next sequence number; returns it.
    fn send_request(&mut self, msg: RouteNetlinkMessage, flags: u16, verb: &str) -> Result<u32> {
        let seq = self.sock.next_seq();
        let mut buf = Vec::new();
        encode(&mut buf, msg, NLM_F_REQUEST | flags, seq);
        self.sock.send(&buf, 0).map_err(|e| {
            Error::io(
                "send",
                format!("netlink {verb} in {}", self.ns),
                e.into_io(),
            )
        })?;
        Ok(seq)
    }

    fn recv_error(&self, e: io::Error) -> Error {
        Error::io("receive", format!("netlink answer in {}", self.ns), e)
    }
}

/// Append `msg` with `flags` and sequence number `seq` to `out`; returns its length.
fn encode(out: &mut Vec<u8>, msg: RouteNetlinkMessage, flags: u16, seq: u32) -> usize {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    nl.finalize();
    let start = out.len();
    out.resize(start + nl.buffer_len(), 0);
    nl.serialize(&mut out[start..]);
    nl.buffer_len()
}

/// The route message in `bytes` (one whole netlink message); `None` for netlink's own
/// messages (done, noop, overrun).
fn decode(bytes: &[u8], ns: &str, what: &str) -> Result<Option<RouteNetlinkMessage>> {
    let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).map_err(|e| {
        Error::NetlinkDecode {
            ns: ns.to_string(),
            detail: format!("{what}: {e}"),
        }
    })?;
    Ok(match parsed.payload {
        NetlinkPayload::InnerMessage(m) => Some(m),
        _ => None,
    })
}
