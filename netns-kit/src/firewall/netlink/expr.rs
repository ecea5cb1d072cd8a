//! A typed [`Rule`] as nf_tables expressions — the same expressions `nft` 1.0 generates for
//! the rule's JSON rendering (render.rs), in the same order, so that a table loaded either
//! way lists identically:
//!
//! - `iifname`/`oifname`: meta load + cmp against the name padded to IFNAMSIZ;
//! - addresses: a `meta nfproto` dependency (once), then payload load + cmp; a prefix on a
//!   byte boundary loads only its bytes, any other prefix loads the whole address and masks it;
//! - tcp/udp: meta l4proto + cmp; one port: cmp; one range: cmp >= and cmp <=; several: a
//!   lookup in an anonymous set; icmp: lookup of l4proto in `{ icmp, ipv6-icmp }`;
//! - ct state: ct load + bitwise mask + cmp != 0;
//! - the verdict (immediate accept/drop) or masq.

use ipnet::IpNet;

use super::message::MessageWriter;
use super::set::{AnonymousSet, ANONYMOUS_SET_NAME};
use super::uapi::*;
use crate::firewall::rule::{Action, CtState, Proto, Rule};

/// One nf_tables expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// `meta load <key> => reg 1`.
    Meta {
        /// NFT_META_* key.
        key: u32,
    },
    /// `cmp <op> reg 1 <data>`.
    Cmp {
        /// NFT_CMP_* operator.
        op: u32,
        /// The value compared with.
        data: Vec<u8>,
    },
    /// `payload load <len>b @ <base> + <offset> => reg 1`.
    Payload {
        /// NFT_PAYLOAD_* header.
        base: u32,
        /// Byte offset in that header.
        offset: u32,
        /// Bytes loaded.
        len: u32,
    },
    /// `bitwise reg 1 = (reg 1 & mask) ^ xor`.
    Bitwise {
        /// The mask (its length is the operand length).
        mask: Vec<u8>,
        /// The xor operand (same length).
        xor: Vec<u8>,
    },
    /// `ct load <key> => reg 1`.
    Ct {
        /// NFT_CT_* key.
        key: u32,
    },
    /// `lookup reg 1 set <anonymous set>`; the set is created just before the rule.
    Lookup(AnonymousSet),
    /// `immediate reg 0 <verdict>`.
    Verdict(u32),
    /// `masq`.
    Masquerade,
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } => "meta",
            Expr::Cmp { .. } => "cmp",
            Expr::Payload { .. } => "payload",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Ct { .. } => "ct",
            Expr::Lookup(_) => "lookup",
            Expr::Verdict(_) => "immediate",
            Expr::Masquerade => "masq",
        }
    }

    /// Write this expression as one NFTA_LIST_ELEM; `set_id` is the transaction id of the
    /// set a [`Expr::Lookup`] refers to.
    pub fn write(&self, w: &mut MessageWriter, set_id: u32) {
        w.nested(NFTA_LIST_ELEM, |w| {
            w.put_str(NFTA_EXPR_NAME, self.name());
            w.nested(NFTA_EXPR_DATA, |w| match self {
                Expr::Meta { key } => {
                    w.put_be32(NFTA_META_KEY, *key);
                    w.put_be32(NFTA_META_DREG, NFT_REG_1);
                }
                Expr::Cmp { op, data } => {
                    w.put_be32(NFTA_CMP_SREG, NFT_REG_1);
                    w.put_be32(NFTA_CMP_OP, *op);
                    w.nested(NFTA_CMP_DATA, |w| w.put(NFTA_DATA_VALUE, data));
                }
                Expr::Payload { base, offset, len } => {
                    w.put_be32(NFTA_PAYLOAD_DREG, NFT_REG_1);
                    w.put_be32(NFTA_PAYLOAD_BASE, *base);
                    w.put_be32(NFTA_PAYLOAD_OFFSET, *offset);
                    w.put_be32(NFTA_PAYLOAD_LEN, *len);
                }
                Expr::Bitwise { mask, xor } => {
                    w.put_be32(NFTA_BITWISE_SREG, NFT_REG_1);
                    w.put_be32(NFTA_BITWISE_DREG, NFT_REG_1);
                    w.put_be32(NFTA_BITWISE_LEN, mask.len() as u32);
                    w.nested(NFTA_BITWISE_MASK, |w| w.put(NFTA_DATA_VALUE, mask));
                    w.nested(NFTA_BITWISE_XOR, |w| w.put(NFTA_DATA_VALUE, xor));
                }
                Expr::Ct { key } => {
                    w.put_be32(NFTA_CT_KEY, *key);
                    w.put_be32(NFTA_CT_DREG, NFT_REG_1);
                }
                Expr::Lookup(_) => {
                    w.put_be32(NFTA_LOOKUP_SREG, NFT_REG_1);
                    w.put_str(NFTA_LOOKUP_SET, ANONYMOUS_SET_NAME);
                    w.put_be32(NFTA_LOOKUP_SET_ID, set_id);
                }
                Expr::Verdict(code) => {
                    w.put_be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                    w.nested(NFTA_IMMEDIATE_DATA, |w| {
                        w.nested(NFTA_DATA_VERDICT, |w| w.put_be32(NFTA_VERDICT_CODE, *code))
                    });
                }
                Expr::Masquerade => {}
            });
        });
    }
}

/// The expressions of `rule`, in order. The rule must have passed
/// [`Ruleset::validate`](crate::firewall::Ruleset::validate) (names fit IFNAMSIZ, ports
/// only with tcp/udp, one address family).
pub fn rule_exprs(rule: &Rule) -> Vec<Expr> {
    let mut e = Vec::new();
    if let Some(name) = &rule.iif {
        ifname_match(&mut e, NFT_META_IIFNAME, name);
    }
    if let Some(name) = &rule.oif {
        ifname_match(&mut e, NFT_META_OIFNAME, name);
    }
    if let Some(net) = rule.from.or(rule.to) {
        let family = if net.addr().is_ipv4() {
            NFPROTO_IPV4
        } else {
            NFPROTO_IPV6
        };
        e.push(Expr::Meta {
            key: NFT_META_NFPROTO,
        });
        e.push(eq(vec![family]));
    }
    if let Some(net) = rule.from {
        let offset = match net {
            IpNet::V4(_) => IPV4_SADDR_OFFSET,
            IpNet::V6(_) => IPV6_SADDR_OFFSET,
        };
        addr_match(&mut e, net, offset);
    }
    if let Some(net) = rule.to {
        let offset = match net {
            IpNet::V4(_) => IPV4_DADDR_OFFSET,
            IpNet::V6(_) => IPV6_DADDR_OFFSET,
        };
        addr_match(&mut e, net, offset);
    }
    match rule.proto {
        Proto::Any => {}
        Proto::Tcp | Proto::Udp => {
            let proto = if rule.proto == Proto::Tcp {
                IPPROTO_TCP
            } else {
                IPPROTO_UDP
            };
            e.push(Expr::Meta {
                key: NFT_META_L4PROTO,
            });
            e.push(eq(vec![proto]));
            if !rule.dst_ports.is_empty() {
                e.push(Expr::Payload {
                    base: NFT_PAYLOAD_TRANSPORT_HEADER,
                    offset: TH_DPORT_OFFSET,
                    len: 2,
                });
                match rule.dst_ports.as_slice() {
                    [one] if one.first == one.last => e.push(eq(one.first.to_be_bytes().to_vec())),
                    [one] => {
                        e.push(Expr::Cmp {
                            op: NFT_CMP_GTE,
                            data: one.first.to_be_bytes().to_vec(),
                        });
                        e.push(Expr::Cmp {
                            op: NFT_CMP_LTE,
                            data: one.last.to_be_bytes().to_vec(),
                        });
                    }
                    many => e.push(Expr::Lookup(AnonymousSet::ports(proto, many))),
                }
            }
        }
        Proto::Icmp => {
            e.push(Expr::Meta {
                key: NFT_META_L4PROTO,
            });
            e.push(Expr::Lookup(AnonymousSet::icmp_protocols()));
        }
    }
    if !rule.ct_states.is_empty() {
        let mask = rule.ct_states.iter().fold(0u32, |m, s| m | ct_bit(*s));
        e.push(Expr::Ct { key: NFT_CT_STATE });
        e.push(Expr::Bitwise {
            mask: mask.to_ne_bytes().to_vec(),
            xor: 0u32.to_ne_bytes().to_vec(),
        });
        e.push(Expr::Cmp {
            op: NFT_CMP_NEQ,
            data: 0u32.to_ne_bytes().to_vec(),
        });
    }
    e.push(match rule.action {
        Action::Accept => Expr::Verdict(NF_ACCEPT),
        Action::Drop => Expr::Verdict(NF_DROP),
        Action::Masquerade => Expr::Masquerade,
    });
    e
}

fn eq(data: Vec<u8>) -> Expr {
    Expr::Cmp {
        op: NFT_CMP_EQ,
        data,
    }
}

fn ct_bit(state: CtState) -> u32 {
    match state {
        CtState::Invalid => NF_CT_STATE_INVALID_BIT,
        CtState::Established => NF_CT_STATE_ESTABLISHED_BIT,
        CtState::Related => NF_CT_STATE_RELATED_BIT,
        CtState::New => NF_CT_STATE_NEW_BIT,
    }
}

/// `name` padded with NULs to IFNAMSIZ; like nft, a trailing `*` matches every name that
/// starts with the rest (only those bytes are compared).
fn ifname_match(e: &mut Vec<Expr>, key: u32, name: &str) {
    let data = match name.strip_suffix('*') {
        Some(prefix) if !prefix.is_empty() && !prefix.ends_with('\\') => prefix.as_bytes().to_vec(),
        _ => {
            let mut data = vec![0u8; IFNAMSIZ];
            let n = name.len().min(IFNAMSIZ - 1);
            data[..n].copy_from_slice(&name.as_bytes()[..n]);
            data
        }
    };
    e.push(Expr::Meta { key });
    e.push(eq(data));
}

fn addr_match(e: &mut Vec<Expr>, net: IpNet, offset: u32) {
    let (network, mask): (Vec<u8>, Vec<u8>) = match net {
        IpNet::V4(n) => (n.network().octets().to_vec(), n.netmask().octets().to_vec()),
        IpNet::V6(n) => (n.network().octets().to_vec(), n.netmask().octets().to_vec()),
    };
    let full = network.len();
    let prefix = usize::from(net.prefix_len());
    if prefix == full * 8 {
        e.push(Expr::Payload {
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len: full as u32,
        });
        e.push(eq(network));
    } else if prefix > 0 && prefix % 8 == 0 {
        let bytes = prefix / 8;
        e.push(Expr::Payload {
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len: bytes as u32,
        });
        e.push(eq(network[..bytes].to_vec()));
    } else {
        e.push(Expr::Payload {
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len: full as u32,
        });
        e.push(Expr::Bitwise {
            mask,
            xor: vec![0; full],
        });
        e.push(eq(network));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::rule::{Hook, PortRange};

    fn shapes(rule: &Rule) -> Vec<String> {
        rule_exprs(rule)
            .iter()
            .map(|e| match e {
                Expr::Payload { len, .. } => format!("payload{len}"),
                Expr::Cmp { op, data } => format!("cmp{op}:{}", data.len()),
                other => other.name().to_string(),
            })
            .collect()
    }

    #[test]
    fn a_byte_aligned_prefix_loads_only_its_bytes() {
        let rule = Rule::new(Hook::Forward, Action::Accept)
            .from("172.20.0.0/24".parse().unwrap())
            .to("172.21.0.10/32".parse().unwrap());
        assert_eq!(
            shapes(&rule),
            [
                "meta",
                "cmp0:1",
                "payload3",
                "cmp0:3",
                "payload4",
                "cmp0:4",
                "immediate"
            ]
        );
    }

    #[test]
    fn other_prefixes_are_masked() {
        let rule = Rule::new(Hook::Forward, Action::Drop).to("fd00:0:0:10::/60".parse().unwrap());
        assert_eq!(
            shapes(&rule),
            [
                "meta",
                "cmp0:1",
                "payload16",
                "bitwise",
                "cmp0:16",
                "immediate"
            ]
        );
    }

    #[test]
    fn one_port_range_is_two_comparisons_and_several_ports_a_set() {
        let range = Rule::new(Hook::Input, Action::Accept).proto(
            Proto::Udp,
            vec![PortRange {
                first: 1000,
                last: 2000,
            }],
        );
        assert_eq!(
            shapes(&range),
            [
                "meta",
                "cmp0:1",
                "payload2",
                "cmp5:2",
                "cmp3:2",
                "immediate"
            ]
        );
        let set = Rule::new(Hook::Input, Action::Accept).proto(
            Proto::Tcp,
            vec![PortRange::single(22), PortRange::single(80)],
        );
        assert_eq!(
            shapes(&set),
            ["meta", "cmp0:1", "payload2", "lookup", "immediate"]
        );
    }

    #[test]
    fn established_related_is_a_ct_state_mask() {
        let e = rule_exprs(&Rule::established_related(Hook::Forward));
        assert!(
            matches!(&e[1], Expr::Bitwise { mask, .. } if mask == &6u32.to_ne_bytes().to_vec())
        );
        assert!(matches!(&e[2], Expr::Cmp { op, .. } if *op == NFT_CMP_NEQ));
    }
}
