//! Firewall: one nftables table per namespace, owned by netns-kit, replaced atomically.
//!
//! [`rule`] is the typed model, [`render`] turns it into one `nft -j -f -` transaction;
//! applying it inside a namespace is the kernel layer's job.

pub mod apply;
pub mod render;
pub mod rule;

pub use rule::{
    Action, CtState, Hook, Policy, PortRange, Proto, Rule, Ruleset, RulesetError, DEFAULT_TABLE,
};
