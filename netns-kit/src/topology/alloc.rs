//! Deterministic address allocation: the lowest free host address of a subnet.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The reason `addr` cannot be a host address of `subnet`, if any: "network" or "broadcast".
///
/// IPv4: the network and broadcast addresses are reserved below /31. IPv6: the subnet-router
/// anycast (network) address is reserved below /127.
pub fn reserved_kind(subnet: &IpNet, addr: IpAddr) -> Option<&'static str> {
    let max = subnet.max_prefix_len();
    if subnet.prefix_len() + 1 >= max {
        return None;
    }
    if addr == subnet.network() {
        return Some("network");
    }
    if subnet.addr().is_ipv4() && addr == subnet.broadcast() {
        return Some("broadcast");
    }
    None
}

/// The first usable host address of `subnet` (where the router sits by default).
pub fn first_host(subnet: &IpNet) -> Option<IpAddr> {
    allocate(subnet, &BTreeSet::new())
}

/// The lowest host address of `subnet` not in `taken`, or `None` when the subnet is full.
///
/// Runs in O(|taken|) steps: it only ever skips addresses that are taken.
pub fn allocate(subnet: &IpNet, taken: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    let mut candidate = subnet.network();
    // Skip the reserved network address (below /31, /127).
    if reserved_kind(subnet, candidate).is_some() {
        candidate = next(candidate)?;
    }
    loop {
        if !subnet.contains(&candidate) || reserved_kind(subnet, candidate).is_some() {
            return None;
        }
        if !taken.contains(&candidate) {
            return Some(candidate);
        }
        candidate = next(candidate)?;
    }
}

fn next(addr: IpAddr) -> Option<IpAddr> {
    match addr {
        IpAddr::V4(a) => u32::from(a)
            .checked_add(1)
            .map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        IpAddr::V6(a) => u128::from(a)
            .checked_add(1)
            .map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_the_lowest_free_host_address() {
        let taken: BTreeSet<IpAddr> = [ip("172.20.0.1"), ip("172.20.0.2")].into();
        assert_eq!(
            allocate(&net("172.20.0.0/24"), &taken),
            Some(ip("172.20.0.3"))
        );
        assert_eq!(first_host(&net("172.20.0.0/24")), Some(ip("172.20.0.1")));
        assert_eq!(first_host(&net("fd00::/64")), Some(ip("fd00::1")));
    }

    #[test]
    fn a_full_subnet_yields_none() {
        let taken: BTreeSet<IpAddr> = [ip("10.0.0.1"), ip("10.0.0.2")].into();
        assert_eq!(allocate(&net("10.0.0.0/30"), &taken), None);
    }

    #[test]
    fn point_to_point_subnets_have_no_reserved_addresses() {
        assert_eq!(first_host(&net("10.0.0.0/31")), Some(ip("10.0.0.0")));
        assert_eq!(
            reserved_kind(&net("10.0.0.0/24"), ip("10.0.0.255")),
            Some("broadcast")
        );
        assert_eq!(
            reserved_kind(&net("10.0.0.0/24"), ip("10.0.0.0")),
            Some("network")
        );
    }
}
