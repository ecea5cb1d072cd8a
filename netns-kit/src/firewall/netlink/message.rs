//! Writing nfnetlink messages: a netlink header, the nfgenmsg header, then attributes
//! (type-length-value, 4-byte aligned, nested ones carrying NLA_F_NESTED). Lengths of
//! messages and nested attributes are patched in when they are closed.

use super::uapi::{NFNETLINK_V0, NLA_F_NESTED};

/// Netlink header (16 bytes) + nfgenmsg (4 bytes).
const HEADERS_LEN: usize = 20;

/// A growing buffer of netlink messages.
#[derive(Debug, Default, Clone)]
pub struct MessageWriter {
    buf: Vec<u8>,
    oversized: bool,
}

/// Where an open message or nested attribute starts (to patch its length on close).
#[derive(Debug, Clone, Copy)]
#[must_use = "close it with end_message / end_nested"]
pub struct Open(usize);

impl MessageWriter {
    /// Open a message of `kind` with netlink `flags`, sequence number `seq`, nfgenmsg
    /// `family` and `res_id` (big-endian on the wire).
    pub fn begin_message(
        &mut self,
        kind: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
    ) -> Open {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched on close
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
        self.buf.push(family);
        self.buf.push(NFNETLINK_V0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        debug_assert_eq!(self.buf.len() - start, HEADERS_LEN);
        Open(start)
    }

    /// Close a message opened with [`MessageWriter::begin_message`].
    pub fn end_message(&mut self, open: Open) {
        self.patch_u32(open.0, self.buf.len() - open.0);
    }

    /// An attribute holding `data` (padded to 4 bytes).
    pub fn put(&mut self, kind: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.oversized |= len > usize::from(u16::MAX);
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    /// A big-endian u32 attribute (nf_tables numbers are network byte order).
    pub fn put_be32(&mut self, kind: u16, value: u32) {
        self.put(kind, &value.to_be_bytes());
    }

    /// A NUL-terminated string attribute.
    pub fn put_str(&mut self, kind: u16, s: &str) {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.put(kind, &data);
    }

    /// Open a nested attribute.
    pub fn begin_nested(&mut self, kind: u16) -> Open {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        Open(start)
    }

    /// Close a nested attribute.
    pub fn end_nested(&mut self, open: Open) {
        let len = self.buf.len() - open.0;
        self.oversized |= len > usize::from(u16::MAX);
        self.buf[open.0..open.0 + 2].copy_from_slice(&(len as u16).to_ne_bytes());
    }

    /// A nested attribute whose content `f` writes.
    pub fn nested(&mut self, kind: u16, f: impl FnOnce(&mut Self)) {
        let open = self.begin_nested(kind);
        f(self);
        self.end_nested(open);
    }

    /// Whether an attribute outgrew the 16-bit netlink attribute length (the bytes are then
    /// not a valid message and must not be sent).
    pub fn oversized(&self) -> bool {
        self.oversized
    }

    /// The bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Take the bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn patch_u32(&mut self, at: usize, value: usize) {
        self.buf[at..at + 4].copy_from_slice(&(value as u32).to_ne_bytes());
    }
}

/// User data as `nft` stores it: a run of (type: u8, length: u8, value) records.
#[derive(Debug, Default, Clone)]
pub struct UserData {
    buf: Vec<u8>,
}

impl UserData {
    /// A record holding `value` (at most 255 bytes; longer values are cut).
    pub fn put(&mut self, kind: u8, value: &[u8]) -> &mut Self {
        let value = &value[..value.len().min(u8::MAX as usize)];
        self.buf.push(kind);
        self.buf.push(value.len() as u8);
        self.buf.extend_from_slice(value);
        self
    }

    /// A host-endian u32 record.
    pub fn put_u32(&mut self, kind: u8, value: u32) -> &mut Self {
        self.put(kind, &value.to_ne_bytes())
    }

    /// A record holding other records.
    pub fn put_nested(&mut self, kind: u8, inner: &UserData) -> &mut Self {
        self.put(kind, &inner.buf)
    }

    /// The encoded records.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_patched_and_attributes_padded() {
        let mut w = MessageWriter::default();
        let m = w.begin_message(0x0a00, 1, 7, 1, 0);
        w.put_str(1, "t");
        w.nested(4, |w| w.put_be32(1, 2));
        w.end_message(m);
        let b = w.bytes();
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        // "t\0" is a 6-byte attribute padded to 8.
        assert_eq!(&b[20..28], &[6, 0, 1, 0, b't', 0, 0, 0]);
        // The nested attribute: 4 + an 8-byte u32 attribute, flagged nested.
        assert_eq!(&b[28..32], &[12, 0, 4, 0x80]);
        assert_eq!(&b[32..40], &[8, 0, 1, 0, 0, 0, 0, 2]);
        assert!(!w.oversized());
    }

    #[test]
    fn an_attribute_over_64_kib_is_flagged() {
        let mut w = MessageWriter::default();
        w.nested(3, |w| w.put(1, &vec![0u8; 70_000]));
        assert!(w.oversized());
    }
}
