//! One nf_tables transaction: NFNL_MSG_BATCH_BEGIN, the table/chain/set/rule messages, then
//! NFNL_MSG_BATCH_END. The kernel applies all of it or nothing. Every message between begin
//! and end asks for an acknowledgement and carries a description, so a rejection names the
//! table, chain or rule it was about.

use super::expr::{rule_exprs, Expr};
use super::message::{MessageWriter, UserData};
use super::set::ELEMENTS_PER_MESSAGE;
use super::uapi::*;
use crate::firewall::render::{chain_name, truncate_comment};
use crate::firewall::rule::{Hook, Policy, Rule, RulesetError};
use crate::firewall::Ruleset;

/// The type of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainType {
    /// `type filter`.
    Filter,
    /// `type nat`.
    Nat,
}

/// A base chain: where it hooks in and what unmatched packets get.
#[derive(Debug, Clone, Copy)]
pub struct BaseChain {
    /// The hook; the chain is named after it (`input`, `forward`, ...).
    pub hook: Hook,
    /// Filter or nat.
    pub kind: ChainType,
    /// Priority (0 for filter chains, 100 — srcnat — for postrouting nat).
    pub priority: i32,
    /// Verdict for packets no rule decided.
    pub policy: Policy,
}

/// An nf_tables transaction being built (family `inet`). Send it with
/// [`commit`](crate::firewall::apply::commit).
#[derive(Debug, Clone)]
pub struct Batch {
    w: MessageWriter,
    seq: u32,
    begin_seq: u32,
    ops: Vec<(u32, String)>,
    next_set_id: u32,
    rules: usize,
}

/// A finished batch: the bytes to send and what each acknowledged message was.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Every message, BATCH_BEGIN to BATCH_END.
    pub bytes: Vec<u8>,
    /// Sequence number of BATCH_BEGIN (a failed commit is reported against it).
    pub begin_seq: u32,
    /// (sequence number, description) of each message that asks for an ack.
    pub ops: Vec<(u32, String)>,
    /// An attribute outgrew 64 KiB: the bytes are invalid and are never sent.
    pub oversized: bool,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    /// An empty transaction (just BATCH_BEGIN so far).
    pub fn new() -> Batch {
        let mut w = MessageWriter::default();
        let begin_seq = 1;
        let m = w.begin_message(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            begin_seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        w.end_message(m);
        Batch {
            w,
            seq: begin_seq,
            begin_seq,
            ops: Vec::new(),
            next_set_id: 1,
            rules: 0,
        }
    }

    /// The transaction that replaces `ruleset.table` with `ruleset` whether or not the table
    /// exists: add (no-op if present), delete, add, then chains, sets and rules — the same
    /// steps as [`Ruleset::to_nft_json`]. Fails if the ruleset does not validate.
    pub fn replace_table(ruleset: &Ruleset) -> Result<Batch, RulesetError> {
        ruleset.validate()?;
        let mut b = Batch::new();
        b.add_table(&ruleset.table);
        b.delete_table(&ruleset.table);
        b.add_table(&ruleset.table);
        b.add_contents(ruleset);
        Ok(b)
    }

    /// The transaction that creates `ruleset.table` with `ruleset`, for a namespace known not
    /// to have it (e.g. one just created); fails with EEXIST if it does. Unlike
    /// [`Batch::replace_table`] it deletes nothing, so closing the socket afterwards does not
    /// wait for the kernel to free a deleted table (an RCU grace period).
    pub fn create_table(ruleset: &Ruleset) -> Result<Batch, RulesetError> {
        ruleset.validate()?;
        let mut b = Batch::new();
        let m = b.open(
            NFT_MSG_NEWTABLE,
            NLM_F_CREATE | NLM_F_EXCL,
            format!("create table inet {}", ruleset.table),
        );
        b.w.put_str(NFTA_TABLE_NAME, &ruleset.table);
        b.w.put_be32(NFTA_TABLE_FLAGS, 0);
        b.w.end_message(m);
        b.add_contents(ruleset);
        Ok(b)
    }

    /// The base chains and rules of `ruleset`, into its (new) table.
    fn add_contents(&mut self, ruleset: &Ruleset) {
        let table = ruleset.table.as_str();
        let b = self;
        for (hook, policy) in [
            (Hook::Input, ruleset.input),
            (Hook::Forward, ruleset.forward),
            (Hook::Output, ruleset.output),
        ] {
            b.add_chain(
                table,
                BaseChain {
                    hook,
                    kind: ChainType::Filter,
                    priority: 0,
                    policy,
                },
            );
        }
        if ruleset.rules.iter().any(|r| r.hook == Hook::Postrouting) {
            b.add_chain(
                table,
                BaseChain {
                    hook: Hook::Postrouting,
                    kind: ChainType::Nat,
                    priority: 100,
                    policy: Policy::Accept,
                },
            );
        }
        for rule in &ruleset.rules {
            b.add_rule(table, chain_name(rule.hook), rule);
        }
    }

    /// Add table `table` (family inet); adding one that exists changes nothing.
    pub fn add_table(&mut self, table: &str) {
        let m = self.open(
            NFT_MSG_NEWTABLE,
            NLM_F_CREATE,
            format!("add table inet {table}"),
        );
        self.w.put_str(NFTA_TABLE_NAME, table);
        self.w.put_be32(NFTA_TABLE_FLAGS, 0);
        self.w.end_message(m);
    }

    /// Delete table `table` with everything in it (fails if it does not exist).
    pub fn delete_table(&mut self, table: &str) {
        let m = self.open(NFT_MSG_DELTABLE, 0, format!("delete table inet {table}"));
        self.w.put_str(NFTA_TABLE_NAME, table);
        self.w.end_message(m);
    }

    /// Add a base chain, named after its hook, to `table`.
    pub fn add_chain(&mut self, table: &str, chain: BaseChain) {
        let name = chain_name(chain.hook);
        let m = self.open(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            format!("add chain {name} to table inet {table}"),
        );
        self.w.put_str(NFTA_CHAIN_TABLE, table);
        self.w.put_str(NFTA_CHAIN_NAME, name);
        self.w.put_str(
            NFTA_CHAIN_TYPE,
            match chain.kind {
                ChainType::Filter => "filter",
                ChainType::Nat => "nat",
            },
        );
        self.w.put_be32(
            NFTA_CHAIN_POLICY,
            match chain.policy {
                Policy::Accept => NF_ACCEPT,
                Policy::Drop => NF_DROP,
            },
        );
        let hooknum = match chain.hook {
            Hook::Input => NF_INET_LOCAL_IN,
            Hook::Forward => NF_INET_FORWARD,
            Hook::Output => NF_INET_LOCAL_OUT,
            Hook::Postrouting => NF_INET_POST_ROUTING,
        };
        self.w.nested(NFTA_CHAIN_HOOK, |w| {
            w.put_be32(NFTA_HOOK_HOOKNUM, hooknum);
            w.put(NFTA_HOOK_PRIORITY, &chain.priority.to_be_bytes());
        });
        self.w.end_message(m);
    }

    /// Append `rule` to chain `chain` of `table`, preceded by the anonymous sets it uses.
    /// The rule should have passed [`Ruleset::validate`].
    pub fn add_rule(&mut self, table: &str, chain: &str, rule: &Rule) {
        // Numbered like the ruleset's `rules[i]` (RulesetError does the same).
        let index = self.rules;
        self.rules += 1;
        let what = match &rule.comment {
            Some(c) => format!("rules[{index}] ({c:?}) in chain {chain} of table inet {table}"),
            None => format!("rules[{index}] in chain {chain} of table inet {table}"),
        };
        let exprs = rule_exprs(rule);
        let mut set_ids = Vec::new();
        for e in &exprs {
            if let Expr::Lookup(set) = e {
                let id = self.next_set_id;
                self.next_set_id += 1;
                set_ids.push(id);
                let m = self.open(
                    NFT_MSG_NEWSET,
                    NLM_F_CREATE,
                    format!("add the set of {what}"),
                );
                set.write_set(&mut self.w, table, id);
                self.w.end_message(m);
                for chunk in set.elements().chunks(ELEMENTS_PER_MESSAGE) {
                    let m = self.open(
                        NFT_MSG_NEWSETELEM,
                        NLM_F_CREATE,
                        format!("add the set elements of {what}"),
                    );
                    set.write_elements(&mut self.w, table, id, chunk);
                    self.w.end_message(m);
                }
            }
        }
        let m = self.open(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            format!("add {what}"),
        );
        self.w.put_str(NFTA_RULE_TABLE, table);
        self.w.put_str(NFTA_RULE_CHAIN, chain);
        let mut ids = set_ids.into_iter();
        self.w.nested(NFTA_RULE_EXPRESSIONS, |w| {
            for e in &exprs {
                let id = match e {
                    Expr::Lookup(_) => ids.next().unwrap_or(0),
                    _ => 0,
                };
                e.write(w, id);
            }
        });
        if let Some(c) = &rule.comment {
            let mut text = truncate_comment(c).into_bytes();
            text.push(0);
            let mut u = UserData::default();
            u.put(NFTNL_UDATA_RULE_COMMENT, &text);
            self.w.put(NFTA_RULE_USERDATA, u.bytes());
        }
        self.w.end_message(m);
    }

    /// Number of messages that will be acknowledged.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing was added yet.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Close the transaction with BATCH_END.
    pub fn finish(mut self) -> Encoded {
        self.seq += 1;
        let m = self.w.begin_message(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            self.seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        self.w.end_message(m);
        Encoded {
            oversized: self.w.oversized(),
            bytes: self.w.into_bytes(),
            begin_seq: self.begin_seq,
            ops: self.ops,
        }
    }

    fn open(&mut self, msg: u8, flags: u16, op: String) -> super::message::Open {
        self.seq += 1;
        self.ops.push((self.seq, op));
        self.w.begin_message(
            (NFNL_SUBSYS_NFTABLES << 8) | u16::from(msg),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            self.seq,
            NFPROTO_INET,
            0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::rule::{Action, PortRange, Proto};

    /// (type, flags) of every message in `bytes`.
    fn messages(bytes: &[u8]) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        let mut p = 0;
        while p + 16 <= bytes.len() {
            let len = u32::from_ne_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes([bytes[p + 4], bytes[p + 5]]);
            let flags = u16::from_ne_bytes([bytes[p + 6], bytes[p + 7]]);
            out.push((kind, flags));
            p += (len + 3) & !3;
        }
        assert_eq!(p, bytes.len());
        out
    }

    #[test]
    fn a_replacement_is_begin_table_delete_table_chains_sets_rules_end() {
        let rs = Ruleset {
            rules: vec![
                Rule::new(Hook::Forward, Action::Accept)
                    .proto(Proto::Tcp, vec![PortRange::single(1), PortRange::single(2)]),
                Rule::new(Hook::Postrouting, Action::Masquerade),
            ],
            ..Ruleset::default()
        };
        let enc = Batch::replace_table(&rs).unwrap().finish();
        let nft = |m: u8| (NFNL_SUBSYS_NFTABLES << 8) | u16::from(m);
        let kinds: Vec<u16> = messages(&enc.bytes).iter().map(|m| m.0).collect();
        assert_eq!(
            kinds,
            vec![
                NFNL_MSG_BATCH_BEGIN,
                nft(NFT_MSG_NEWTABLE),
                nft(NFT_MSG_DELTABLE),
                nft(NFT_MSG_NEWTABLE),
                nft(NFT_MSG_NEWCHAIN),
                nft(NFT_MSG_NEWCHAIN),
                nft(NFT_MSG_NEWCHAIN),
                nft(NFT_MSG_NEWCHAIN),
                nft(NFT_MSG_NEWSET),
                nft(NFT_MSG_NEWSETELEM),
                nft(NFT_MSG_NEWRULE),
                nft(NFT_MSG_NEWRULE),
                NFNL_MSG_BATCH_END,
            ]
        );
        assert_eq!(enc.ops.len(), kinds.len() - 2);
        assert!(messages(&enc.bytes)[1..12]
            .iter()
            .all(|(_, flags)| flags & NLM_F_ACK != 0));
    }

    #[test]
    fn a_creation_adds_the_table_exclusively_and_deletes_nothing() {
        let enc = Batch::create_table(&Ruleset::default()).unwrap().finish();
        let msgs = messages(&enc.bytes);
        let newtable = (NFNL_SUBSYS_NFTABLES << 8) | u16::from(NFT_MSG_NEWTABLE);
        let deltable = (NFNL_SUBSYS_NFTABLES << 8) | u16::from(NFT_MSG_DELTABLE);
        assert_eq!(msgs[1].0, newtable);
        assert_eq!(msgs[1].1 & NLM_F_EXCL, NLM_F_EXCL);
        assert!(msgs.iter().all(|(kind, _)| *kind != deltable));
        assert_eq!(msgs.len(), 2 + 1 + 3, "begin, table, three chains, end");
    }

    #[test]
    fn an_invalid_ruleset_is_refused_before_encoding() {
        let rs = Ruleset {
            rules: vec![Rule::new(Hook::Input, Action::Accept).iif("a-name-far-too-long")],
            ..Ruleset::default()
        };
        assert!(matches!(
            Batch::replace_table(&rs),
            Err(RulesetError::BadIfname { index: 0, .. })
        ));
    }
}
