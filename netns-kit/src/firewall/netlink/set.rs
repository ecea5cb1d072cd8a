//! Anonymous sets, built exactly as `nft` builds them so that `nft list` shows the same
//! thing whichever way the table was loaded: destination-port sets (`tcp dport { 22,
//! 8000-8010 }`, an interval set when a range is present, merged like nft's automerge) and
//! the ICMP protocol set (`meta l4proto { icmp, ipv6-icmp }`).

use super::message::{MessageWriter, UserData};
use super::uapi::*;
use crate::firewall::rule::PortRange;

/// Name the kernel turns into `__set<N>` (nft's template for anonymous sets).
pub const ANONYMOUS_SET_NAME: &str = "__set%d";

/// Elements per NEWSETELEM message (at most ~28 bytes each: the element list is one netlink
/// attribute, whose length must stay below 64 KiB).
pub const ELEMENTS_PER_MESSAGE: usize = 1024;

/// One set element: its key and, for interval sets, whether it closes an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The key bytes (network order for ports).
    pub key: Vec<u8>,
    /// NFT_SET_ELEM_INTERVAL_END: this element ends the previous interval.
    pub interval_end: bool,
    /// The interval this element starts runs to the end of the key space (no end element).
    pub open: bool,
}

/// An anonymous, constant set bound to one rule.
#[derive(Debug, Clone)]
pub struct AnonymousSet {
    flags: u32,
    key_type: u32,
    key_len: u32,
    size: u32,
    userdata: UserData,
    elements: Vec<Element>,
}

impl AnonymousSet {
    /// The destination ports of a tcp (`proto == IPPROTO_TCP`) or udp rule.
    pub fn ports(proto: u8, ports: &[PortRange]) -> AnonymousSet {
        let mut typeof_data = UserData::default();
        let desc = if proto == IPPROTO_UDP {
            PROTO_DESC_UDP
        } else {
            PROTO_DESC_TCP
        };
        typeof_data
            .put_u32(PAYLOAD_UDATA_DESC, desc)
            .put_u32(PAYLOAD_UDATA_TYPE, THDR_DPORT);
        let mut typeof_key = UserData::default();
        typeof_key
            .put_u32(NFTNL_UDATA_SET_TYPEOF_EXPR, EXPR_PAYLOAD)
            .put_nested(NFTNL_UDATA_SET_TYPEOF_DATA, &typeof_data);
        let mut userdata = UserData::default();
        userdata.put_u32(NFTNL_UDATA_SET_KEYBYTEORDER, BYTEORDER_BIG_ENDIAN);

        let interval = ports.iter().any(|r| r.first != r.last);
        let (flags, size, elements) = if interval {
            userdata.put_u32(NFTNL_UDATA_SET_MERGE_ELEMENTS, 1);
            let merged = merge(ports);
            (
                NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_INTERVAL,
                1 + 2 * merged.len() as u32,
                interval_elements(&merged),
            )
        } else {
            // nft keeps the listed order (and any repeats) of a plain set.
            let elements = ports
                .iter()
                .map(|r| Element {
                    key: r.first.to_be_bytes().to_vec(),
                    interval_end: false,
                    open: false,
                })
                .collect();
            (
                NFT_SET_ANONYMOUS | NFT_SET_CONSTANT,
                ports.len() as u32,
                elements,
            )
        };
        userdata.put_nested(NFTNL_UDATA_SET_KEY_TYPEOF, &typeof_key);
        AnonymousSet {
            flags,
            key_type: TYPE_INET_SERVICE,
            key_len: 2,
            size,
            userdata,
            elements,
        }
    }

    /// `{ icmp, ipv6-icmp }`, matched against `meta l4proto`.
    pub fn icmp_protocols() -> AnonymousSet {
        let mut typeof_data = UserData::default();
        typeof_data.put_u32(META_UDATA_KEY, NFT_META_L4PROTO);
        let mut typeof_key = UserData::default();
        typeof_key
            .put_u32(NFTNL_UDATA_SET_TYPEOF_EXPR, EXPR_META)
            .put_nested(NFTNL_UDATA_SET_TYPEOF_DATA, &typeof_data);
        let mut userdata = UserData::default();
        userdata
            .put_u32(NFTNL_UDATA_SET_KEYBYTEORDER, BYTEORDER_HOST_ENDIAN)
            .put_nested(NFTNL_UDATA_SET_KEY_TYPEOF, &typeof_key);
        let elements = [IPPROTO_ICMP, IPPROTO_ICMPV6]
            .iter()
            .map(|p| Element {
                key: vec![*p],
                interval_end: false,
                open: false,
            })
            .collect();
        AnonymousSet {
            flags: NFT_SET_ANONYMOUS | NFT_SET_CONSTANT,
            key_type: TYPE_INET_PROTOCOL,
            key_len: 1,
            size: 2,
            userdata,
            elements,
        }
    }

    /// The elements, in the order they are sent.
    pub fn elements(&self) -> &[Element] {
        &self.elements
    }

    /// The NEWSET attributes for this set in `table`, known in the transaction as `id`.
    pub fn write_set(&self, w: &mut MessageWriter, table: &str, id: u32) {
        w.put_str(NFTA_SET_TABLE, table);
        w.put_str(NFTA_SET_NAME, ANONYMOUS_SET_NAME);
        w.put_be32(NFTA_SET_FLAGS, self.flags);
        w.put_be32(NFTA_SET_KEY_TYPE, self.key_type);
        w.put_be32(NFTA_SET_KEY_LEN, self.key_len);
        w.put_be32(NFTA_SET_ID, id);
        w.nested(NFTA_SET_DESC, |w| w.put_be32(NFTA_SET_DESC_SIZE, self.size));
        w.put(NFTA_SET_USERDATA, self.userdata.bytes());
    }

    /// The NEWSETELEM attributes for `elements` (at most [`ELEMENTS_PER_MESSAGE`] of this
    /// set's elements) of the set `id` in `table`.
    pub fn write_elements(
        &self,
        w: &mut MessageWriter,
        table: &str,
        id: u32,
        elements: &[Element],
    ) {
        w.put_str(NFTA_SET_ELEM_LIST_TABLE, table);
        w.put_str(NFTA_SET_ELEM_LIST_SET, ANONYMOUS_SET_NAME);
        w.put_be32(NFTA_SET_ELEM_LIST_SET_ID, id);
        w.nested(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
            for (i, e) in elements.iter().enumerate() {
                // libnftnl numbers the list entries 1, 2, ...; the kernel ignores the type.
                w.nested(i as u16 + 1, |w| {
                    if e.interval_end {
                        w.put_be32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
                    }
                    w.nested(NFTA_SET_ELEM_KEY, |w| w.put(NFTA_DATA_VALUE, &e.key));
                    if e.open {
                        let mut u = UserData::default();
                        u.put_u32(NFTNL_UDATA_SET_ELEM_FLAGS, NFTNL_SET_ELEM_F_INTERVAL_OPEN);
                        w.put(NFTA_SET_ELEM_USERDATA, u.bytes());
                    }
                });
            }
        });
    }
}

/// Sorted, with overlapping and adjacent ranges joined (nft's automerge).
fn merge(ports: &[PortRange]) -> Vec<(u16, u16)> {
    let mut sorted: Vec<(u16, u16)> = ports.iter().map(|r| (r.first, r.last)).collect();
    sorted.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(sorted.len());
    for (first, last) in sorted {
        match out.last_mut() {
            Some(prev) if u32::from(first) <= u32::from(prev.1) + 1 => prev.1 = prev.1.max(last),
            _ => out.push((first, last)),
        }
    }
    out
}

/// nft's interval encoding: an end marker at 0 (ports start at 1), then for each range its
/// start and an end marker one past its end (or, for a range ending at 65535, an "open"
/// start and no end marker).
fn interval_elements(merged: &[(u16, u16)]) -> Vec<Element> {
    let mut out = vec![Element {
        key: 0u16.to_be_bytes().to_vec(),
        interval_end: true,
        open: false,
    }];
    for &(first, last) in merged {
        match last.checked_add(1) {
            Some(end) => {
                out.push(Element {
                    key: first.to_be_bytes().to_vec(),
                    interval_end: false,
                    open: false,
                });
                out.push(Element {
                    key: end.to_be_bytes().to_vec(),
                    interval_end: true,
                    open: false,
                });
            }
            None => out.push(Element {
                key: first.to_be_bytes().to_vec(),
                interval_end: false,
                open: true,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(first: u16, last: u16) -> PortRange {
        PortRange { first, last }
    }

    fn keys(set: &AnonymousSet) -> Vec<(u16, bool, bool)> {
        set.elements()
            .iter()
            .map(|e| {
                (
                    u16::from_be_bytes([e.key[0], e.key[1]]),
                    e.interval_end,
                    e.open,
                )
            })
            .collect()
    }

    #[test]
    fn single_ports_make_a_plain_set_in_the_listed_order() {
        let set = AnonymousSet::ports(IPPROTO_TCP, &[r(8500, 8500), r(8001, 8001)]);
        assert_eq!(set.flags, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT);
        assert_eq!(set.size, 2);
        assert_eq!(keys(&set), vec![(8500, false, false), (8001, false, false)]);
    }

    #[test]
    fn a_range_makes_an_interval_set_with_end_markers() {
        let set = AnonymousSet::ports(IPPROTO_TCP, &[r(8500, 8500), r(9000, 9010), r(22, 22)]);
        assert_eq!(set.flags & NFT_SET_INTERVAL, NFT_SET_INTERVAL);
        assert_eq!(set.size, 7);
        assert_eq!(
            keys(&set),
            vec![
                (0, true, false),
                (22, false, false),
                (23, true, false),
                (8500, false, false),
                (8501, true, false),
                (9000, false, false),
                (9011, true, false),
            ]
        );
    }

    #[test]
    fn adjacent_and_overlapping_ranges_merge_and_the_last_port_is_open() {
        let set = AnonymousSet::ports(
            IPPROTO_UDP,
            &[r(22, 22), r(23, 23), r(24, 30), r(25, 26), r(60000, 65535)],
        );
        assert_eq!(set.size, 5);
        assert_eq!(
            keys(&set),
            vec![
                (0, true, false),
                (22, false, false),
                (31, true, false),
                (60000, false, true),
            ]
        );
    }
}
