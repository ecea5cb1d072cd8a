//! A NETLINK_NETFILTER socket opened inside a namespace (on a dedicated thread, see
//! [`Netns::run`]); it stays bound to that namespace whatever thread uses it afterwards.
//!
//! A batch is one `send(2)`: the kernel processes the whole transaction inside that call and
//! queues one acknowledgement or error per message before returning, so every answer is
//! already waiting when we read.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};

use super::batch::Encoded;
use super::message::MessageWriter;
use super::uapi::*;
use crate::error::{Error, Result};
use crate::netlink::ext_ack_text;
use crate::netns::Netns;

/// Receive buffer of the socket: each acknowledgement costs about 1 KiB of receive-buffer
/// accounting, so this holds a few thousand (bytes; root may exceed rmem_max).
const RECV_BUFFER: usize = 4 * 1024 * 1024;
/// Receive-buffer accounting of one acknowledgement (an skb of its own), in bytes.
const ACK_TRUESIZE: usize = 1024;
/// Largest single datagram read.
const RECV_CHUNK: usize = 64 * 1024;
/// How long to wait for an answer that has not arrived (it always has; this only guards
/// against a kernel that never answers).
const RECV_TIMEOUT: Duration = Duration::from_secs(10);
/// Default send buffer; a bigger batch raises it first (netlink refuses a message larger
/// than the send buffer).
const SEND_BUFFER_DEFAULT: usize = 208 * 1024;

/// An nfnetlink socket in one namespace.
#[derive(Debug)]
pub struct NfSocket {
    sock: Socket,
    ns: String,
    seq: u32,
    inbuf: Vec<u8>,
}

/// How the kernel answered one acknowledged message.
#[derive(Debug)]
struct Answer {
    seq: u32,
    errno: i32,
    detail: Option<String>,
}

impl NfSocket {
    /// Open a socket inside `ns` (a short-lived thread enters the namespace to open it).
    pub fn open_in(ns: &Netns) -> Result<NfSocket> {
        let label = ns.label();
        ns.run(move || NfSocket::open_here(label))?
    }

    /// Open a socket in the calling thread's namespace; `ns` labels errors.
    pub(crate) fn open_here(ns: String) -> Result<NfSocket> {
        let io_err = |op, e: io::Error| Error::io(op, format!("nfnetlink socket in {ns}"), e);
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(|e| io_err("open", e))?;
        sock.bind_auto().map_err(|e| io_err("bind", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| io_err("connect", e))?;
        // Small acks (no copy of the request) with the kernel's error text.
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_ext_ack(true);
        if setsockopt(&sock, sockopt::RcvBufForce, &RECV_BUFFER).is_err() {
            let _ = sock.set_rx_buf_sz(RECV_BUFFER);
        }
        let timeout = nix::sys::time::TimeVal::new(RECV_TIMEOUT.as_secs() as _, 0);
        setsockopt(&sock, sockopt::ReceiveTimeout, &timeout)
            .map_err(|e| io_err("set receive timeout on", e.into()))?;
        Ok(NfSocket {
            sock,
            ns,
            seq: 0x1000_0000,
            inbuf: Vec::with_capacity(RECV_CHUNK),
        })
    }

    /// Send one transaction and wait for the kernel's verdict on every message. On any error
    /// the kernel applied nothing; the error names the first message it rejected.
    pub fn commit(&mut self, batch: Encoded) -> Result<()> {
        if batch.ops.is_empty() {
            return Ok(());
        }
        if batch.oversized {
            return Err(Error::Invalid {
                kind: "nf_tables transaction",
                value: describe(&batch.ops),
                expected: "every netlink attribute under 64 KiB",
            });
        }
        if batch.bytes.len() + 4096 > SEND_BUFFER_DEFAULT {
            let size = batch.bytes.len() + 64 * 1024;
            setsockopt(&self.sock, sockopt::SndBufForce, &size)
                .map_err(|e| self.io("raise the send buffer of", e.into()))?;
        }
        // All answers arrive at once: make room for them (ENOBUFS would lose the verdict).
        let room = batch.ops.len() * ACK_TRUESIZE;
        if room > RECV_BUFFER {
            setsockopt(&self.sock, sockopt::RcvBufForce, &(2 * room))
                .map_err(|e| self.io("raise the receive buffer of", e.into()))?;
        }
        // Answers left over from an earlier exchange must not be taken for this batch's.
        while self.recv(true)? {}
        self.sock
            .send(&batch.bytes, 0)
            .map_err(|e| self.io("send nf_tables batch on", e))?;

        // The answer to each acknowledged message, by its index in `batch.ops`.
        let index: HashMap<u32, usize> = batch
            .ops
            .iter()
            .enumerate()
            .map(|(i, (seq, _))| (*seq, i))
            .collect();
        let mut answers: Vec<Option<Answer>> = batch.ops.iter().map(|_| None).collect();
        let mut batch_error: Option<Answer> = None;
        let mut pending = batch.ops.len();
        // Everything is queued already; read it all. A failed commit is reported against
        // BATCH_BEGIN (possibly followed by the per-message answers), a malformed batch only
        // against BATCH_BEGIN: after that, drain what is left without waiting.
        while pending > 0 {
            let nonblocking = batch_error.is_some();
            if !self.recv(nonblocking)? {
                break;
            }
            for a in errors_in(&self.inbuf) {
                match index.get(&a.seq) {
                    Some(&i) if answers[i].is_none() => {
                        pending -= 1;
                        answers[i] = Some(a);
                    }
                    Some(_) => {}
                    None if a.seq == batch.begin_seq && a.errno != 0 => {
                        batch_error.get_or_insert(a);
                    }
                    None => {}
                }
            }
        }

        // The first rejected message (in batch order) is the cause; later ones often follow
        // from it (e.g. a rule in a chain that failed).
        let mut failed = answers
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.as_ref().filter(|a| a.errno != 0).map(|a| (i, a)));
        let aborted = "; the transaction was aborted, nothing was applied";
        if let Some((i, first)) = failed.next() {
            let more = match failed.count() {
                0 => String::new(),
                n => format!("; {n} more message(s) of the batch were rejected"),
            };
            return Err(Error::Netlink {
                op: batch.ops[i].1.clone(),
                ns: self.ns.clone(),
                source: io::Error::from_raw_os_error(first.errno),
                detail: format!("{}{more}{aborted}", kernel_text(&first.detail)),
            });
        }
        if let Some(e) = batch_error {
            return Err(Error::Netlink {
                op: format!("commit nf_tables transaction ({})", describe(&batch.ops)),
                ns: self.ns.clone(),
                source: io::Error::from_raw_os_error(e.errno),
                detail: format!("{}{aborted}", kernel_text(&e.detail)),
            });
        }
        if pending > 0 {
            return Err(Error::Netlink {
                op: format!("commit nf_tables transaction ({})", describe(&batch.ops)),
                ns: self.ns.clone(),
                source: io::Error::from(io::ErrorKind::TimedOut),
                detail: format!(
                    " ({pending} of {} messages were never acknowledged)",
                    batch.ops.len()
                ),
            });
        }
        Ok(())
    }

    /// Whether table `table` (family inet) exists, asked with NFT_MSG_GETTABLE.
    pub fn table_exists(&mut self, table: &str) -> Result<bool> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut w = MessageWriter::default();
        let m = w.begin_message(
            (NFNL_SUBSYS_NFTABLES << 8) | u16::from(NFT_MSG_GETTABLE),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            NFPROTO_INET,
            0,
        );
        w.put_str(NFTA_TABLE_NAME, table);
        w.end_message(m);
        self.sock
            .send(w.bytes(), 0)
            .map_err(|e| self.io("send nf_tables request on", e))?;
        loop {
            if !self.recv(false)? {
                return Err(self.io(
                    "receive the answer to get table on",
                    io::Error::from(io::ErrorKind::UnexpectedEof),
                ));
            }
            if let Some(a) = errors_in(&self.inbuf).into_iter().find(|a| a.seq == seq) {
                return match a.errno {
                    0 => Ok(true),
                    libc::ENOENT => Ok(false),
                    errno => Err(Error::Netlink {
                        op: format!("get table inet {table}"),
                        ns: self.ns.clone(),
                        source: io::Error::from_raw_os_error(errno),
                        detail: kernel_text(&a.detail),
                    }),
                };
            }
        }
    }

    /// Dump every object of kind `msg` (an NFT_MSG_GET* type) matching the string attributes
    /// `filter` (e.g. NFTA_RULE_TABLE = "netns_kit"), as the kernel encodes them: the
    /// attribute bytes of each answer (after the netlink and nfgenmsg headers). For tests
    /// and debugging: comparing these compares kernel state byte for byte.
    pub fn dump_raw(&mut self, msg: u8, filter: &[(u16, &str)]) -> Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut w = MessageWriter::default();
        let m = w.begin_message(
            (NFNL_SUBSYS_NFTABLES << 8) | u16::from(msg),
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            NFPROTO_INET,
            0,
        );
        for (kind, value) in filter {
            w.put_str(*kind, value);
        }
        w.end_message(m);
        self.sock
            .send(w.bytes(), 0)
            .map_err(|e| self.io("send nf_tables dump request on", e))?;
        let mut out = Vec::new();
        loop {
            if !self.recv(false)? {
                return Ok(out);
            }
            let mut p = 0usize;
            let buf = &self.inbuf;
            while p + 16 <= buf.len() {
                let len = u32::from_ne_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]) as usize;
                if len < 16 || p + len > buf.len() {
                    break;
                }
                let kind = u16::from_ne_bytes([buf[p + 4], buf[p + 5]]);
                let this = u32::from_ne_bytes([buf[p + 8], buf[p + 9], buf[p + 10], buf[p + 11]]);
                if this == seq {
                    match kind {
                        NLMSG_DONE => return Ok(out),
                        NLMSG_ERROR => {
                            if let Some(a) = errors_in(&buf[p..p + len]).into_iter().next() {
                                if a.errno != 0 {
                                    return Err(Error::Netlink {
                                        op: format!("dump nf_tables objects (message {msg})"),
                                        ns: self.ns.clone(),
                                        source: io::Error::from_raw_os_error(a.errno),
                                        detail: kernel_text(&a.detail),
                                    });
                                }
                            }
                            return Ok(out);
                        }
                        _ if len >= 20 => out.push(buf[p + 20..p + len].to_vec()),
                        _ => {}
                    }
                }
                p += (len + 3) & !3;
            }
        }
    }

    /// Read one datagram into `inbuf`; false when `nonblocking` and nothing is left.
    fn recv(&mut self, nonblocking: bool) -> Result<bool> {
        let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        loop {
            self.inbuf.clear();
            match self.sock.recv(&mut self.inbuf, flags) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if nonblocking && e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(self.io("receive nf_tables answers on", e)),
            }
        }
    }

    fn io(&self, op: &'static str, e: io::Error) -> Error {
        Error::io(op, format!("nfnetlink socket in {}", self.ns), e)
    }
}

fn kernel_text(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|t| format!(" (kernel: {t})"))
        .unwrap_or_default()
}

/// "add table inet t, ... (N messages)": the first op names the table.
fn describe(ops: &[(u32, String)]) -> String {
    match ops.first() {
        Some((_, op)) => format!("{op}, ... {} messages", ops.len()),
        None => "empty".to_string(),
    }
}

/// Every NLMSG_ERROR (error or acknowledgement) in a datagram.
fn errors_in(buf: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while p + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]) as usize;
        if len < 16 || p + len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[p + 4], buf[p + 5]]);
        let seq = u32::from_ne_bytes([buf[p + 8], buf[p + 9], buf[p + 10], buf[p + 11]]);
        if kind == NLMSG_ERROR && len >= 20 {
            let code = i32::from_ne_bytes([buf[p + 16], buf[p + 17], buf[p + 18], buf[p + 19]]);
            out.push(Answer {
                seq,
                errno: -code,
                detail: ext_ack_text(&buf[p..p + len]),
            });
        }
        p += (len + 3) & !3;
    }
    out
}
