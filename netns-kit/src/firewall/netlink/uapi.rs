//! Numbers of the nf_tables netlink protocol, named as in the kernel's UAPI headers
//! (linux/netfilter/nfnetlink.h, nf_tables.h, nf_conntrack_common.h, netfilter.h) and, for
//! the user-data blobs `nft` reads back when listing, as in libnftnl/nftables.
//!
//! Only what netns-kit's rulesets use is here. Attribute numbers are the position in the
//! header's enum (UNSPEC is 0).

// -- netlink / nfnetlink (linux/netlink.h, linux/netfilter/nfnetlink.h) -------------------
/// NLMSG_ERROR: an error or acknowledgement.
pub const NLMSG_ERROR: u16 = 2;
/// NLMSG_DONE: the end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// NLM_F_DUMP (NLM_F_ROOT | NLM_F_MATCH): every object, not one.
pub const NLM_F_DUMP: u16 = 0x300;
/// NLM_F_REQUEST.
pub const NLM_F_REQUEST: u16 = 0x1;
/// NLM_F_ACK: ask for an acknowledgement.
pub const NLM_F_ACK: u16 = 0x4;
/// NLM_F_EXCL: fail if the object exists.
pub const NLM_F_EXCL: u16 = 0x200;
/// NLM_F_CREATE: create the object if it does not exist.
pub const NLM_F_CREATE: u16 = 0x400;
/// NLM_F_APPEND: add a rule at the end of its chain.
pub const NLM_F_APPEND: u16 = 0x800;
/// NLA_F_NESTED: the attribute holds attributes.
pub const NLA_F_NESTED: u16 = 0x8000;
/// NFNL_MSG_BATCH_BEGIN (NLMSG_MIN_TYPE): opens a transaction.
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// NFNL_MSG_BATCH_END (NLMSG_MIN_TYPE + 1): commits it.
pub const NFNL_MSG_BATCH_END: u16 = 0x11;
/// NFNL_SUBSYS_NFTABLES: the nf_tables subsystem (high byte of the message type).
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// NFNETLINK_V0: nfgenmsg version.
pub const NFNETLINK_V0: u8 = 0;

// -- families, hooks, verdicts, protocols (linux/netfilter.h, netinet/in.h) ----------------
/// NFPROTO_UNSPEC (the batch messages' family).
pub const NFPROTO_UNSPEC: u8 = 0;
/// NFPROTO_INET: tables of family `inet` (IPv4 and IPv6).
pub const NFPROTO_INET: u8 = 1;
/// NFPROTO_IPV4 (value of `meta nfproto`).
pub const NFPROTO_IPV4: u8 = 2;
/// NFPROTO_IPV6.
pub const NFPROTO_IPV6: u8 = 10;
/// NF_INET_LOCAL_IN: the input hook.
pub const NF_INET_LOCAL_IN: u32 = 1;
/// NF_INET_FORWARD.
pub const NF_INET_FORWARD: u32 = 2;
/// NF_INET_LOCAL_OUT: the output hook.
pub const NF_INET_LOCAL_OUT: u32 = 3;
/// NF_INET_POST_ROUTING.
pub const NF_INET_POST_ROUTING: u32 = 4;
/// NF_DROP verdict.
pub const NF_DROP: u32 = 0;
/// NF_ACCEPT verdict.
pub const NF_ACCEPT: u32 = 1;
/// IPPROTO_ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IPPROTO_TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IPPROTO_UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IPPROTO_ICMPV6.
pub const IPPROTO_ICMPV6: u8 = 58;

// -- message types (enum nf_tables_msg_types) -----------------------------------------------
/// NFT_MSG_NEWTABLE.
pub const NFT_MSG_NEWTABLE: u8 = 0;
/// NFT_MSG_GETTABLE.
pub const NFT_MSG_GETTABLE: u8 = 1;
/// NFT_MSG_DELTABLE.
pub const NFT_MSG_DELTABLE: u8 = 2;
/// NFT_MSG_NEWCHAIN.
pub const NFT_MSG_NEWCHAIN: u8 = 3;
/// NFT_MSG_GETCHAIN.
pub const NFT_MSG_GETCHAIN: u8 = 4;
/// NFT_MSG_NEWRULE.
pub const NFT_MSG_NEWRULE: u8 = 6;
/// NFT_MSG_GETRULE.
pub const NFT_MSG_GETRULE: u8 = 7;
/// NFT_MSG_NEWSET.
pub const NFT_MSG_NEWSET: u8 = 9;
/// NFT_MSG_GETSET.
pub const NFT_MSG_GETSET: u8 = 10;
/// NFT_MSG_NEWSETELEM.
pub const NFT_MSG_NEWSETELEM: u8 = 12;
/// NFT_MSG_GETSETELEM.
pub const NFT_MSG_GETSETELEM: u8 = 13;

// -- attributes -------------------------------------------------------------------------------
/// NFTA_TABLE_NAME.
pub const NFTA_TABLE_NAME: u16 = 1;
/// NFTA_TABLE_FLAGS.
pub const NFTA_TABLE_FLAGS: u16 = 2;
/// NFTA_CHAIN_TABLE.
pub const NFTA_CHAIN_TABLE: u16 = 1;
/// NFTA_CHAIN_NAME.
pub const NFTA_CHAIN_NAME: u16 = 3;
/// NFTA_CHAIN_HOOK (nested: NFTA_HOOK_*).
pub const NFTA_CHAIN_HOOK: u16 = 4;
/// NFTA_CHAIN_POLICY.
pub const NFTA_CHAIN_POLICY: u16 = 5;
/// NFTA_CHAIN_TYPE ("filter", "nat").
pub const NFTA_CHAIN_TYPE: u16 = 7;
/// NFTA_HOOK_HOOKNUM.
pub const NFTA_HOOK_HOOKNUM: u16 = 1;
/// NFTA_HOOK_PRIORITY.
pub const NFTA_HOOK_PRIORITY: u16 = 2;
/// NFTA_RULE_TABLE.
pub const NFTA_RULE_TABLE: u16 = 1;
/// NFTA_RULE_CHAIN.
pub const NFTA_RULE_CHAIN: u16 = 2;
/// NFTA_RULE_EXPRESSIONS (nested list of NFTA_LIST_ELEM).
pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
/// NFTA_RULE_USERDATA (the comment lives here).
pub const NFTA_RULE_USERDATA: u16 = 7;
/// NFTA_LIST_ELEM.
pub const NFTA_LIST_ELEM: u16 = 1;
/// NFTA_EXPR_NAME.
pub const NFTA_EXPR_NAME: u16 = 1;
/// NFTA_EXPR_DATA.
pub const NFTA_EXPR_DATA: u16 = 2;
/// NFTA_DATA_VALUE.
pub const NFTA_DATA_VALUE: u16 = 1;
/// NFTA_DATA_VERDICT.
pub const NFTA_DATA_VERDICT: u16 = 2;
/// NFTA_VERDICT_CODE.
pub const NFTA_VERDICT_CODE: u16 = 1;
/// NFTA_IMMEDIATE_DREG.
pub const NFTA_IMMEDIATE_DREG: u16 = 1;
/// NFTA_IMMEDIATE_DATA.
pub const NFTA_IMMEDIATE_DATA: u16 = 2;
/// NFTA_CMP_SREG.
pub const NFTA_CMP_SREG: u16 = 1;
/// NFTA_CMP_OP.
pub const NFTA_CMP_OP: u16 = 2;
/// NFTA_CMP_DATA.
pub const NFTA_CMP_DATA: u16 = 3;
/// NFTA_BITWISE_SREG.
pub const NFTA_BITWISE_SREG: u16 = 1;
/// NFTA_BITWISE_DREG.
pub const NFTA_BITWISE_DREG: u16 = 2;
/// NFTA_BITWISE_LEN.
pub const NFTA_BITWISE_LEN: u16 = 3;
/// NFTA_BITWISE_MASK.
pub const NFTA_BITWISE_MASK: u16 = 4;
/// NFTA_BITWISE_XOR.
pub const NFTA_BITWISE_XOR: u16 = 5;
/// NFTA_PAYLOAD_DREG.
pub const NFTA_PAYLOAD_DREG: u16 = 1;
/// NFTA_PAYLOAD_BASE.
pub const NFTA_PAYLOAD_BASE: u16 = 2;
/// NFTA_PAYLOAD_OFFSET.
pub const NFTA_PAYLOAD_OFFSET: u16 = 3;
/// NFTA_PAYLOAD_LEN.
pub const NFTA_PAYLOAD_LEN: u16 = 4;
/// NFTA_META_DREG.
pub const NFTA_META_DREG: u16 = 1;
/// NFTA_META_KEY.
pub const NFTA_META_KEY: u16 = 2;
/// NFTA_CT_DREG.
pub const NFTA_CT_DREG: u16 = 1;
/// NFTA_CT_KEY.
pub const NFTA_CT_KEY: u16 = 2;
/// NFTA_LOOKUP_SET.
pub const NFTA_LOOKUP_SET: u16 = 1;
/// NFTA_LOOKUP_SREG.
pub const NFTA_LOOKUP_SREG: u16 = 2;
/// NFTA_LOOKUP_SET_ID.
pub const NFTA_LOOKUP_SET_ID: u16 = 4;
/// NFTA_SET_TABLE.
pub const NFTA_SET_TABLE: u16 = 1;
/// NFTA_SET_NAME.
pub const NFTA_SET_NAME: u16 = 2;
/// NFTA_SET_FLAGS.
pub const NFTA_SET_FLAGS: u16 = 3;
/// NFTA_SET_KEY_TYPE.
pub const NFTA_SET_KEY_TYPE: u16 = 4;
/// NFTA_SET_KEY_LEN.
pub const NFTA_SET_KEY_LEN: u16 = 5;
/// NFTA_SET_DESC (nested: NFTA_SET_DESC_SIZE).
pub const NFTA_SET_DESC: u16 = 9;
/// NFTA_SET_ID: names a set within one transaction.
pub const NFTA_SET_ID: u16 = 10;
/// NFTA_SET_USERDATA.
pub const NFTA_SET_USERDATA: u16 = 13;
/// NFTA_SET_DESC_SIZE.
pub const NFTA_SET_DESC_SIZE: u16 = 1;
/// NFTA_SET_ELEM_LIST_TABLE.
pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
/// NFTA_SET_ELEM_LIST_SET.
pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
/// NFTA_SET_ELEM_LIST_ELEMENTS.
pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
/// NFTA_SET_ELEM_LIST_SET_ID.
pub const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
/// NFTA_SET_ELEM_KEY.
pub const NFTA_SET_ELEM_KEY: u16 = 1;
/// NFTA_SET_ELEM_FLAGS.
pub const NFTA_SET_ELEM_FLAGS: u16 = 3;
/// NFTA_SET_ELEM_USERDATA.
pub const NFTA_SET_ELEM_USERDATA: u16 = 6;

// -- attribute values -------------------------------------------------------------------------
/// NFT_REG_VERDICT.
pub const NFT_REG_VERDICT: u32 = 0;
/// NFT_REG_1: the 16-byte register every match loads into (as `nft` does).
pub const NFT_REG_1: u32 = 1;
/// NFT_CMP_EQ.
pub const NFT_CMP_EQ: u32 = 0;
/// NFT_CMP_NEQ.
pub const NFT_CMP_NEQ: u32 = 1;
/// NFT_CMP_LTE.
pub const NFT_CMP_LTE: u32 = 3;
/// NFT_CMP_GTE.
pub const NFT_CMP_GTE: u32 = 5;
/// NFT_PAYLOAD_NETWORK_HEADER.
pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
/// NFT_PAYLOAD_TRANSPORT_HEADER.
pub const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
/// NFT_META_IIFNAME.
pub const NFT_META_IIFNAME: u32 = 6;
/// NFT_META_OIFNAME.
pub const NFT_META_OIFNAME: u32 = 7;
/// NFT_META_NFPROTO.
pub const NFT_META_NFPROTO: u32 = 15;
/// NFT_META_L4PROTO.
pub const NFT_META_L4PROTO: u32 = 16;
/// NFT_CT_STATE.
pub const NFT_CT_STATE: u32 = 0;
/// NFT_SET_ANONYMOUS.
pub const NFT_SET_ANONYMOUS: u32 = 0x1;
/// NFT_SET_CONSTANT.
pub const NFT_SET_CONSTANT: u32 = 0x2;
/// NFT_SET_INTERVAL.
pub const NFT_SET_INTERVAL: u32 = 0x4;
/// NFT_SET_ELEM_INTERVAL_END.
pub const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
/// IFNAMSIZ: interface-name matches compare this many bytes (name, zero padded).
pub const IFNAMSIZ: usize = 16;

// -- conntrack state bits (linux/netfilter/nf_conntrack_common.h) -----------------------------
/// NF_CT_STATE_INVALID_BIT.
pub const NF_CT_STATE_INVALID_BIT: u32 = 1 << 0;
/// NF_CT_STATE_BIT(IP_CT_ESTABLISHED).
pub const NF_CT_STATE_ESTABLISHED_BIT: u32 = 1 << 1;
/// NF_CT_STATE_BIT(IP_CT_RELATED).
pub const NF_CT_STATE_RELATED_BIT: u32 = 1 << 2;
/// NF_CT_STATE_BIT(IP_CT_NEW).
pub const NF_CT_STATE_NEW_BIT: u32 = 1 << 3;

// -- header offsets (RFC 791, RFC 8200, RFC 793/768) ------------------------------------------
/// IPv4 source address offset in the network header.
pub const IPV4_SADDR_OFFSET: u32 = 12;
/// IPv4 destination address offset.
pub const IPV4_DADDR_OFFSET: u32 = 16;
/// IPv6 source address offset.
pub const IPV6_SADDR_OFFSET: u32 = 8;
/// IPv6 destination address offset.
pub const IPV6_DADDR_OFFSET: u32 = 24;
/// TCP/UDP destination-port offset in the transport header.
pub const TH_DPORT_OFFSET: u32 = 2;

// -- user data `nft` stores and reads back when listing (libnftnl udata.h, nftables) ----------
/// NFTNL_UDATA_RULE_COMMENT.
pub const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
/// NFTNL_UDATA_SET_KEYBYTEORDER.
pub const NFTNL_UDATA_SET_KEYBYTEORDER: u8 = 0;
/// NFTNL_UDATA_SET_MERGE_ELEMENTS.
pub const NFTNL_UDATA_SET_MERGE_ELEMENTS: u8 = 2;
/// NFTNL_UDATA_SET_KEY_TYPEOF.
pub const NFTNL_UDATA_SET_KEY_TYPEOF: u8 = 3;
/// NFTNL_UDATA_SET_TYPEOF_EXPR.
pub const NFTNL_UDATA_SET_TYPEOF_EXPR: u8 = 0;
/// NFTNL_UDATA_SET_TYPEOF_DATA.
pub const NFTNL_UDATA_SET_TYPEOF_DATA: u8 = 1;
/// NFTNL_UDATA_SET_ELEM_FLAGS.
pub const NFTNL_UDATA_SET_ELEM_FLAGS: u8 = 1;
/// NFTNL_SET_ELEM_F_INTERVAL_OPEN: the interval runs to the end of the key space.
pub const NFTNL_SET_ELEM_F_INTERVAL_OPEN: u32 = 0x1;
/// nftables BYTEORDER_HOST_ENDIAN.
pub const BYTEORDER_HOST_ENDIAN: u32 = 1;
/// nftables BYTEORDER_BIG_ENDIAN.
pub const BYTEORDER_BIG_ENDIAN: u32 = 2;
/// nftables TYPE_INET_PROTOCOL (key type of `meta l4proto` sets).
pub const TYPE_INET_PROTOCOL: u32 = 12;
/// nftables TYPE_INET_SERVICE (key type of port sets).
pub const TYPE_INET_SERVICE: u32 = 13;
/// nftables EXPR_PAYLOAD (typeof of a port set).
pub const EXPR_PAYLOAD: u32 = 7;
/// nftables EXPR_META (typeof of an l4proto set).
pub const EXPR_META: u32 = 9;
/// nftables payload udata PAYLOAD_UDATA_DESC (protocol description id).
pub const PAYLOAD_UDATA_DESC: u8 = 0;
/// nftables payload udata PAYLOAD_UDATA_TYPE (header field index).
pub const PAYLOAD_UDATA_TYPE: u8 = 1;
/// nftables meta udata META_UDATA_KEY.
pub const META_UDATA_KEY: u8 = 0;
/// nftables PROTO_DESC_UDP.
pub const PROTO_DESC_UDP: u32 = 6;
/// nftables PROTO_DESC_TCP.
pub const PROTO_DESC_TCP: u32 = 8;
/// nftables TCPHDR_DPORT / UDPHDR_DPORT (field index of the destination port).
pub const THDR_DPORT: u32 = 2;
