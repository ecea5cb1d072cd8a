//! Firewall: one nftables table per namespace, owned by netns-kit, replaced atomically.
//!
//! [`rule`] is the typed model; [`netlink`] encodes it into one nf_tables transaction that
//! [`apply`] sends into a namespace; [`render`] turns it into the equivalent `nft -j -f -`
//! document (for `netns-kit plan --nft`, debugging, and as the reference the netlink
//! encoding is tested against).

pub mod apply;
pub mod netlink;
pub mod render;
pub mod rule;

pub use rule::{
    Action, CtState, Hook, Policy, PortRange, Proto, Rule, Ruleset, RulesetError, DEFAULT_TABLE,
};
