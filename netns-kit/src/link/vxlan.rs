//! VXLAN links: an L2 tunnel over UDP (VNI, local address, unicast remote or multicast
//! group, destination port, underlying device).

use std::net::IpAddr;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVxlan};

use super::NewLink;

/// Where a VXLAN sends frames it has no forwarding entry for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VxlanRemote {
    /// One unicast peer.
    Remote(IpAddr),
    /// A multicast group (needs an underlying device).
    Group(IpAddr),
}

/// VXLAN parameters beyond the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanParams {
    /// VXLAN network identifier (1..=16777215).
    pub vni: u32,
    /// Underlay source address.
    pub local: Option<IpAddr>,
    /// Unicast remote or multicast group.
    pub remote: Option<VxlanRemote>,
    /// UDP destination port (default 4789, the IANA port).
    pub port: u16,
    /// Index of the underlying device.
    pub dev: Option<u32>,
}

/// A VXLAN link `name` with VNI `vni`; refine with [`NewLink::vxlan_params`].
pub fn vxlan(name: &str, vni: u32) -> NewLink {
    let mut link = NewLink::new(name, InfoKind::Vxlan);
    link.data = Some(params_data(&VxlanParams {
        vni,
        local: None,
        remote: None,
        port: 4789,
        dev: None,
    }));
    link
}

impl NewLink {
    /// Set every VXLAN parameter at once (only meaningful on a link from [`vxlan`]).
    pub fn vxlan_params(mut self, params: &VxlanParams) -> Self {
        self.data = Some(params_data(params));
        self
    }
}

fn params_data(p: &VxlanParams) -> InfoData {
    let mut v = vec![
        InfoVxlan::Id(p.vni),
        InfoVxlan::Port(p.port),
        InfoVxlan::Learning(true),
    ];
    match p.local {
        Some(IpAddr::V4(a)) => v.push(InfoVxlan::Local(a)),
        Some(IpAddr::V6(a)) => v.push(InfoVxlan::Local6(a)),
        None => {}
    }
    // iproute2 sends both a unicast remote and a multicast group as IFLA_VXLAN_GROUP{,6}.
    match p.remote {
        Some(VxlanRemote::Remote(IpAddr::V4(a)) | VxlanRemote::Group(IpAddr::V4(a))) => {
            v.push(InfoVxlan::Group(a))
        }
        Some(VxlanRemote::Remote(IpAddr::V6(a)) | VxlanRemote::Group(IpAddr::V6(a))) => {
            v.push(InfoVxlan::Group6(a))
        }
        None => {}
    }
    if let Some(dev) = p.dev {
        v.push(InfoVxlan::Link(dev));
    }
    InfoData::Vxlan(v)
}
