//! Loading rulesets over nf_tables netlink directly (no `nft` process): a [`Batch`] is one
//! transaction, encoded with our own code from the typed [`Ruleset`](super::Ruleset), sent
//! on a NETLINK_NETFILTER socket opened inside the target namespace ([`NfSocket`]).
//!
//! The encoding mirrors what `nft` 1.0 sends for the JSON document of
//! [`Ruleset::to_nft_json`](super::Ruleset::to_nft_json), so a table loaded either way lists
//! identically (the privileged test `firewall_netlink` proves it).

pub(crate) mod batch;
pub(crate) mod expr;
pub(crate) mod message;
pub(crate) mod set;
pub(crate) mod socket;
// The kernel's nf_tables constants: public only for the privileged test that decodes what
// the kernel lists back (tests/privileged_firewall_netlink.rs); not part of the API.
#[doc(hidden)]
pub mod uapi;

pub use batch::{BaseChain, Batch, ChainType, Encoded};
pub use socket::NfSocket;
