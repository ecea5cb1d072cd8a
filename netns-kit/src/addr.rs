//! IPv4/IPv6 addresses on links.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::netlink::Netlink;

/// An address with its prefix length, on the link with index `link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// Interface index.
    pub link: u32,
    /// The address.
    pub ip: IpAddr,
    /// Prefix length (0..=32 for IPv4, 0..=128 for IPv6).
    pub prefix: u8,
}

impl Address {
    /// `ip/prefix` on link `link`; rejects a prefix too long for the family.
    pub fn new(link: u32, ip: IpAddr, prefix: u8) -> Result<Address> {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(Error::Invalid {
                kind: "prefix length",
                value: format!("{ip}/{prefix}"),
                expected: "at most 32 for IPv4, 128 for IPv6",
            });
        }
        Ok(Address { link, ip, prefix })
    }

    fn message(&self) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = family_of(self.ip);
        msg.header.prefix_len = self.prefix;
        msg.header.index = self.link;
        if self.ip.is_ipv6() {
            // No duplicate address detection: addresses are declared (validation rejects
            // duplicates), and DAD would keep a fresh address unusable for a second or two
            // (bind fails with EADDRNOTAVAIL while it is tentative). Docker does the same.
            msg.header.flags |= AddressHeaderFlags::Nodad;
        }
        msg.attributes.push(AddressAttribute::Local(self.ip));
        msg.attributes.push(AddressAttribute::Address(self.ip));
        msg
    }

    /// Queue adding the address.
    pub fn queue_add(&self, nl: &mut Netlink) {
        nl.queue(
            RouteNetlinkMessage::NewAddress(self.message()),
            NLM_F_CREATE | NLM_F_EXCL,
            format!(
                "add address {}/{} on link #{}",
                self.ip, self.prefix, self.link
            ),
        );
    }

    /// Add the address now.
    pub fn add(&self, nl: &mut Netlink) -> Result<()> {
        self.queue_add(nl);
        nl.flush()
    }

    /// Remove the address now.
    pub fn delete(&self, nl: &mut Netlink) -> Result<()> {
        nl.execute(
            RouteNetlinkMessage::DelAddress(self.message()),
            0,
            format!(
                "delete address {}/{} on link #{}",
                self.ip, self.prefix, self.link
            ),
        )
    }
}

pub(crate) fn family_of(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// Every address in the socket's namespace.
pub fn list(nl: &mut Netlink) -> Result<Vec<Address>> {
    let answers = nl.dump(
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        "addresses",
    )?;
    let mut out = Vec::new();
    for m in answers {
        if let RouteNetlinkMessage::NewAddress(a) = m {
            let ip = a.attributes.iter().find_map(|at| match at {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let ip = ip.or_else(|| {
                a.attributes.iter().find_map(|at| match at {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(ip) = ip {
                out.push(Address {
                    link: a.header.index,
                    ip,
                    prefix: a.header.prefix_len,
                });
            }
        }
    }
    Ok(out)
}
