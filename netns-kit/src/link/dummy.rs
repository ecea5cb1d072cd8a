//! Dummy links: a local interface to hang addresses on (loopback-like, but named).

use netlink_packet_route::link::InfoKind;

use super::NewLink;

/// A dummy link named `name`.
pub fn dummy(name: &str) -> NewLink {
    NewLink::new(name, InfoKind::Dummy)
}
