//! A thin rtnetlink socket: requests are queued and sent in batches (many messages per
//! `send`), then every acknowledgement is collected. One socket per namespace, opened by a
//! thread inside it; the socket stays bound to that namespace whatever thread uses it later.
//!
//! Messages are netlink-packet-route types; this file is the only place that touches the
//! socket, so a change of that crate's API stays here and in `link/`, `addr.rs`, `route.rs`.

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{Error, Result};

/// Bytes of requests sent per `send(2)` (the kernel handles each message in turn).
const BATCH_BYTES: usize = 48 * 1024;
/// Requests per `send(2)`: each acknowledgement is its own socket buffer (~1 KiB of
/// receive-buffer accounting), so a batch must not outgrow the receive buffer (ENOBUFS).
const BATCH_MESSAGES: usize = 128;
/// Receive buffer for answers and dumps.
const RECV_BYTES: usize = 256 * 1024;
/// Receive-buffer size asked for with SO_RCVBUFFORCE (root may exceed rmem_max).
const RECV_BUFFER_FORCE: libc::c_int = 4 * 1024 * 1024;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// An rtnetlink socket bound to one namespace, with a queue of pending requests.
#[derive(Debug)]
pub struct Netlink {
    sock: Socket,
    ns: String,
    seq: u32,
    queued: Vec<(u32, String)>,
    out: Vec<u8>,
    inbuf: Vec<u8>,
}

impl Netlink {
    /// Open a socket in the calling thread's namespace; `ns` labels errors.
    pub(crate) fn open(ns: String) -> Result<Netlink> {
        let io_err = |op, e: io::Error| Error::io(op, format!("netlink socket in {ns}"), e);
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| io_err("open", e))?;
        sock.bind_auto().map_err(|e| io_err("bind", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| io_err("connect", e))?;
        // Small acks (no echo of the request) but with the kernel's error text.
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_rx_buf_sz(RECV_BYTES);
        force_rcvbuf(&sock);
        Ok(Netlink {
            sock,
            ns,
            seq: 0,
            queued: Vec::new(),
            out: Vec::with_capacity(BATCH_BYTES + 4096),
            inbuf: Vec::with_capacity(RECV_BYTES),
        })
    }

    /// The namespace label this socket was opened in.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// Queue a request (`flags` adds to REQUEST|ACK, e.g. NLM_F_CREATE|NLM_F_EXCL); `op`
    /// describes it for error messages. Nothing is sent before [`Netlink::flush`].
    pub fn queue(&mut self, msg: RouteNetlinkMessage, flags: u16, op: impl Into<String>) {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let start = self.out.len();
        self.out.resize(start + nl.buffer_len(), 0);
        nl.serialize(&mut self.out[start..]);
        self.queued.push((self.seq, op.into()));
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

    fn send_all(&mut self, out: &[u8], queued: &[(u32, String)]) -> Result<()> {
        let mut first_err: Option<Error> = None;
        let mut off = 0usize;
        let mut qi = 0usize;
        while qi < queued.len() {
            // Gather whole messages up to BATCH_BYTES.
            let start = off;
            let first = qi;
            while qi < queued.len() {
                let len = msg_len(&out[off..]);
                if off > start && (off + len - start > BATCH_BYTES || qi - first >= BATCH_MESSAGES)
                {
                    break;
                }
                off += len;
                qi += 1;
            }
            self.sock
                .send(&out[start..off], 0)
                .map_err(|e| Error::io("send", format!("netlink batch in {}", self.ns), e))?;
            let mut waiting = qi - first;
            while waiting > 0 {
                self.recv()?;
                let mut p = 0usize;
                while p + 16 <= self.inbuf.len() {
                    let (len, end, kind, seq) = frame(&self.inbuf, p);
                    if kind == NLMSG_ERROR && p + 20 <= self.inbuf.len() {
                        let code = i32::from_ne_bytes(
                            self.inbuf[p + 16..p + 20].try_into().unwrap_or([0; 4]),
                        );
                        if let Some(idx) = queued[first..qi].iter().position(|(s, _)| *s == seq) {
                            waiting = waiting.saturating_sub(1);
                            if code != 0 && first_err.is_none() {
                                let detail = ext_ack_text(&self.inbuf[p..end])
                                    .map(|t| format!(" (kernel: {t})"))
                                    .unwrap_or_default();
                                first_err = Some(Error::Netlink {
                                    op: queued[first + idx].1.clone(),
                                    ns: self.ns.clone(),
                                    source: io::Error::from_raw_os_error(-code),
                                    detail,
                                });
                            }
                        }
                    }
                    p += align4(len);
                }
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
        loop {
            self.recv()?;
            let mut p = 0usize;
            while p + 16 <= self.inbuf.len() {
                let (len, end, kind, this_seq) = frame(&self.inbuf, p);
                if this_seq == seq {
                    if kind == NLMSG_ERROR {
                        let code = i32::from_ne_bytes(
                            self.inbuf[p + 16..p + 20].try_into().unwrap_or([0; 4]),
                        );
                        return match -code {
                            0 | libc::ENODEV | libc::ENOENT => Ok(None),
                            errno => Err(Error::Netlink {
                                op: format!("get {what}"),
                                ns: self.ns.clone(),
                                source: io::Error::from_raw_os_error(errno),
                                detail: ext_ack_text(&self.inbuf[p..end])
                                    .map(|t| format!(" (kernel: {t})"))
                                    .unwrap_or_default(),
                            }),
                        };
                    }
                    let parsed =
                        NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.inbuf[p..end])
                            .map_err(|e| Error::NetlinkDecode {
                                ns: self.ns.clone(),
                                detail: format!("{what}: {e}"),
                            })?;
                    if let NetlinkPayload::InnerMessage(m) = parsed.payload {
                        return Ok(Some(m));
                    }
                }
                p += align4(len);
            }
        }
    }

    /// Send a dump request and collect every answer.
    pub fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send_request(msg, NLM_F_DUMP, "dump")?;
        let mut answers = Vec::new();
        loop {
            self.recv()?;
            let mut p = 0usize;
            while p + 16 <= self.inbuf.len() {
                let (len, end, kind, this_seq) = frame(&self.inbuf, p);
                if this_seq == seq {
                    match kind {
                        NLMSG_DONE => return Ok(answers),
                        NLMSG_ERROR => {
                            let code = i32::from_ne_bytes(
                                self.inbuf[p + 16..p + 20].try_into().unwrap_or([0; 4]),
                            );
                            if code != 0 {
                                return Err(Error::Netlink {
                                    op: format!("dump {what}"),
                                    ns: self.ns.clone(),
                                    source: io::Error::from_raw_os_error(-code),
                                    detail: String::new(),
                                });
                            }
                            return Ok(answers);
                        }
                        _ => {
                            let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(
                                &self.inbuf[p..end],
                            )
                            .map_err(|e| Error::NetlinkDecode {
                                ns: self.ns.clone(),
                                detail: format!("{what}: {e}"),
                            })?;
                            if let NetlinkPayload::InnerMessage(m) = parsed.payload {
                                answers.push(m);
                            }
                        }
                    }
                }
                p += align4(len);
            }
        }
    }

    /// Sends one request (`NLM_F_REQUEST | flags`) under the next sequence number; returns it.
    fn send_request(&mut self, msg: RouteNetlinkMessage, flags: u16, verb: &str) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock
            .send(&buf, 0)
            .map_err(|e| Error::io("send", format!("netlink {verb} in {}", self.ns), e))?;
        Ok(seq)
    }

    fn recv(&mut self) -> Result<()> {
        self.inbuf.clear();
        loop {
            match self.sock.recv(&mut self.inbuf, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::io(
                        "receive",
                        format!("netlink answer in {}", self.ns),
                        e,
                    ))
                }
            }
        }
    }
}

/// Ask for a large receive buffer (needs CAP_NET_ADMIN; silently keeps the default otherwise).
fn force_rcvbuf(sock: &Socket) {
    use std::os::fd::AsRawFd;
    let size = RECV_BUFFER_FORCE;
    // SAFETY: setsockopt reads exactly size_of::<c_int>() bytes from a valid, live c_int; the
    // descriptor is owned by `sock`, which outlives the call.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The length field of the netlink message at the start of `buf`.
/// The frame at `p` of `buf` (at least 16 bytes from `p`): its length (at least a header),
/// where it ends (within `buf`), its type and its sequence number.
fn frame(buf: &[u8], p: usize) -> (usize, usize, u16, u32) {
    let len = msg_len(&buf[p..]).max(16);
    let end = (p + len).min(buf.len());
    let kind = u16::from_ne_bytes([buf[p + 4], buf[p + 5]]);
    let seq = u32::from_ne_bytes(buf[p + 8..p + 12].try_into().unwrap_or([0; 4]));
    (len, end, kind, seq)
}

fn msg_len(buf: &[u8]) -> usize {
    if buf.len() < 4 {
        return buf.len();
    }
    u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The kernel's extended-ack error text in an NLMSG_ERROR message (capped ack), if any
/// (route and nf_tables sockets alike).
pub(crate) fn ext_ack_text(msg: &[u8]) -> Option<String> {
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
