//! Veth pairs, created in ONE message with each end directly in its target namespace
//! (IFLA_NET_NS_FD on the link and on the peer): no end ever passes through the namespace
//! the request was sent from, so a crash cannot strand one there.
//!
//! The peer end cannot be brought up in the creating message (the kernel configures it
//! before the pair is linked and answers ENOTCONN): bring it up from its own namespace.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_route::link::InfoKind;

use super::{LinkSettings, NewLink};

/// A veth pair `name` <-> `peer`; configure the peer end with the `peer_*` methods.
pub fn veth(name: &str, peer: &str) -> NewLink {
    let mut link = NewLink::new(name, InfoKind::Veth);
    link.peer = Some(LinkSettings {
        name: peer.to_string(),
        ..LinkSettings::default()
    });
    link
}

impl NewLink {
    fn peer_mut(&mut self) -> &mut LinkSettings {
        self.peer.get_or_insert_with(LinkSettings::default)
    }

    /// Create the peer end directly in namespace `ns` (the fd must stay open until sent).
    pub fn peer_netns(mut self, ns: BorrowedFd<'_>) -> Self {
        self.peer_mut().netns_fd = Some(ns.as_raw_fd());
        self
    }

    /// Ask for this interface index for the peer end (unique in its namespace; the kernel
    /// honours it only when the first end's index is given too).
    pub fn peer_index(mut self, index: u32) -> Self {
        self.peer_mut().index = index;
        self
    }

    /// The peer end's MTU (bytes).
    pub fn peer_mtu(mut self, mtu: u32) -> Self {
        self.peer_mut().mtu = Some(mtu);
        self
    }

    /// The peer end's Ethernet address.
    pub fn peer_mac(mut self, mac: [u8; 6]) -> Self {
        self.peer_mut().mac = Some(mac);
        self
    }
}
