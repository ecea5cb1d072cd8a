//! A NETLINK_NETFILTER socket opened inside a namespace (on a dedicated thread, see
//! [`Netns::run`]); it stays bound to that namespace whatever thread uses it afterwards.
//!
//! A batch is one `send(2)`: the kernel processes the whole transaction inside that call and
//! queues one acknowledgement or error per message before returning, so every answer is
//! already waiting when we read.
//!
//! The socket itself (opening, sequence numbers, sending, reading acknowledgements and dumps)
//! is the `NlSocket` rtnetlink uses too (`crate::netlink::socket`); this file builds the
//! nf_tables requests and turns the kernel's answers into verdicts.

use std::convert::Infallible;
use std::io;
use std::ops::ControlFlow;
use std::time::Duration;

use netlink_sys::protocols::NETLINK_NETFILTER;

use super::batch::Encoded;
use super::message::MessageWriter;
use super::uapi::*;
use crate::error::{Error, Result};
use crate::netlink::socket::{self, DumpEnd, Family, NlSocket, SendError};
use crate::netns::Netns;

/// Largest single datagram read.
const RECV_CHUNK: usize = 64 * 1024;
/// How long to wait for an answer that has not arrived (it always has; this only guards
/// against a kernel that never answers).
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// The nfnetlink family (NETLINK_NETFILTER).
#[derive(Debug)]
pub(crate) struct Nfnetlink;

impl Family for Nfnetlink {
    const PROTOCOL: isize = NETLINK_NETFILTER;
    const RCVBUF_FALLBACK: usize = socket::RECV_BUFFER;
    const DATAGRAM: usize = RECV_CHUNK;
    // Above the sequence numbers of a batch, which count from 1.
    const SEQ_START: u32 = 0x1000_0000;
}

/// An nfnetlink socket in one namespace.
#[derive(Debug)]
pub struct NfSocket {
    sock: NlSocket<Nfnetlink>,
    ns: String,
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
        let sock = NlSocket::open().map_err(|(op, e)| io_err(op, e))?;
        sock.set_recv_timeout(RECV_TIMEOUT)
            .map_err(|e| io_err("set receive timeout on", e))?;
        Ok(NfSocket { sock, ns })
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
        // Answers left over from an earlier exchange must not be taken for this batch's.
        self.sock
            .discard_queued()
            .map_err(|e| self.io("receive nf_tables answers on", e))?;
        // The kernel processes the whole transaction inside `send` and queues every answer
        // before returning (the socket makes room for them first).
        self.sock
            .send(&batch.bytes, batch.ops.len())
            .map_err(|e| match e {
                SendError::SendBuffer(e) => self.io("raise the send buffer of", e),
                SendError::RecvBuffer(e) => self.io("raise the receive buffer of", e),
                SendError::Send(e) => self.io("send nf_tables batch on", e),
            })?;
        // A failed commit is reported against BATCH_BEGIN (possibly followed by the
        // per-message answers), a malformed batch only against BATCH_BEGIN: after that, what
        // is left is read without waiting.
        let acks = self
            .sock
            .acks(batch.ops.iter().map(|(seq, _)| *seq), Some(batch.begin_seq))
            .map_err(|e| self.io("receive nf_tables answers on", e))?;

        // The first rejected message (in batch order) is the cause; later ones often follow
        // from it (e.g. a rule in a chain that failed).
        let mut failed = batch
            .ops
            .iter()
            .zip(&acks.each)
            .filter_map(|((_, op), a)| a.as_ref().filter(|a| a.errno != 0).map(|a| (op, a)));
        let aborted = "; the transaction was aborted, nothing was applied";
        if let Some((op, first)) = failed.next() {
            let more = match failed.count() {
                0 => String::new(),
                n => format!("; {n} more message(s) of the batch were rejected"),
            };
            return Err(Error::Netlink {
                op: op.clone(),
                ns: self.ns.clone(),
                source: first.error(),
                detail: format!("{}{more}{aborted}", first.detail()),
            });
        }
        if let Some(e) = acks.aborted {
            return Err(Error::Netlink {
                op: format!("commit nf_tables transaction ({})", describe(&batch.ops)),
                ns: self.ns.clone(),
                source: e.error(),
                detail: format!("{}{aborted}", e.detail()),
            });
        }
        let pending = acks.each.iter().filter(|a| a.is_none()).count();
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
        let seq = self.sock.next_seq();
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
            .send(w.bytes(), 1)
            .map_err(|e| self.io("send nf_tables request on", e.into_io()))?;
        let ack = self
            .sock
            .replies(seq, |m| m.ack())
            .map_err(|e| self.io("receive nf_tables answers on", e))?;
        match ack.errno {
            0 => Ok(true),
            libc::ENOENT => Ok(false),
            _ => Err(Error::Netlink {
                op: format!("get table inet {table}"),
                ns: self.ns.clone(),
                source: ack.error(),
                detail: ack.detail(),
            }),
        }
    }

    /// Dump every object of kind `msg` (an NFT_MSG_GET* type) matching the string attributes
    /// `filter` (e.g. NFTA_RULE_TABLE = "netns_kit"), as the kernel encodes them: the
    /// attribute bytes of each answer (after the netlink and nfgenmsg headers). For tests
    /// and debugging: comparing these compares kernel state byte for byte.
    pub fn dump_raw(&mut self, msg: u8, filter: &[(u16, &str)]) -> Result<Vec<Vec<u8>>> {
        let seq = self.sock.next_seq();
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
            .map_err(|e| self.io("send nf_tables dump request on", e.into_io()))?;
        let mut out = Vec::new();
        let end = self.sock.dump(seq, |part| {
            // After the netlink header (16 bytes) and nfgenmsg (4).
            if let Some(attrs) = part.get(20..) {
                out.push(attrs.to_vec());
            }
            ControlFlow::<Infallible>::Continue(())
        });
        match end.map_err(|e| self.io("receive nf_tables answers on", e))? {
            DumpEnd::Done => Ok(out),
            DumpEnd::Failed(a) => Err(Error::Netlink {
                op: format!("dump nf_tables objects (message {msg})"),
                ns: self.ns.clone(),
                source: a.error(),
                detail: a.detail(),
            }),
            DumpEnd::Stopped(never) => match never {},
        }
    }

    fn io(&self, op: &'static str, e: io::Error) -> Error {
        Error::io(op, format!("nfnetlink socket in {}", self.ns), e)
    }
}

/// "add table inet t, ... (N messages)": the first op names the table.
fn describe(ops: &[(u32, String)]) -> String {
    match ops.first() {
        Some((_, op)) => format!("{op}, ... {} messages", ops.len()),
        None => "empty".to_string(),
    }
}
