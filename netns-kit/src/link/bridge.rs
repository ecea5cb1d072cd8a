//! Bridges: an L2 switch inside a namespace (netns-kit puts them in a fabric namespace).

use netlink_packet_route::link::InfoKind;

use super::NewLink;

/// A bridge named `name`; chain common settings (`.up()`, `.mtu()`, `.index()`...).
pub fn bridge(name: &str) -> NewLink {
    NewLink::new(name, InfoKind::Bridge)
}
