//! Deterministic short interface names (at most 15 bytes, IFNAMSIZ - 1) and name checks.
//!
//! A derived name is `prefix + base` when that fits; otherwise the base is cut and a 4-hex-digit
//! FNV-1a hash of the full base is appended, so the same input always yields the same name and
//! two long bases that share a prefix still differ.

/// Longest interface name the kernel accepts (IFNAMSIZ - 1): the kernel layer's
/// [`crate::link::MAX_IFNAME`].
pub const IFNAME_MAX: usize = crate::link::MAX_IFNAME;

/// Longest topology, network or node name.
pub const NAME_MAX: usize = 48;

/// True when `s` is a valid topology/network/node name: 1..=[`NAME_MAX`] of `[A-Za-z0-9_-]`,
/// starting with a letter or digit.
pub fn is_valid_name(s: &str) -> bool {
    is_valid_name_max(s, NAME_MAX)
}

/// Like [`is_valid_name`] with an explicit maximum length.
pub fn is_valid_name_max(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// True when `s` is a usable interface name in a topology file: the kernel's rule
/// ([`crate::link::is_valid_ifname`]) restricted to the portable `[A-Za-z0-9_.-]`, so every
/// name also works in `ip`, nft and shell scripts.
pub fn is_valid_ifname(s: &str) -> bool {
    crate::link::is_valid_ifname(s)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// `prefix + base`, shortened deterministically to at most 15 bytes.
///
/// `prefix` must be ASCII and shorter than 10 bytes; `base` is a valid name (ASCII).
pub fn derive_ifname(prefix: &str, base: &str) -> String {
    let full = format!("{prefix}{base}");
    if full.len() <= IFNAME_MAX {
        return full;
    }
    let hash = format!("{:04x}", fnv1a(base) & 0xffff);
    let keep = IFNAME_MAX.saturating_sub(prefix.len() + hash.len());
    let cut: String = base.chars().take(keep).collect();
    format!("{prefix}{cut}{hash}")
}

/// 32-bit FNV-1a: tiny, stable across releases and platforms (unlike `DefaultHasher`).
pub fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Interface name of a node's (or the router's) `index`-th interface, inside its namespace.
pub fn node_ifname(index: usize) -> String {
    format!("eth{index}")
}

/// Fabric-side veth name for `owner`'s `index`-th interface (unique within the fabric).
pub fn fabric_ifname(owner: &str, index: usize) -> String {
    derive_ifname(&format!("v{index}-"), owner)
}

/// Default bridge name of a network.
pub fn bridge_ifname(network: &str) -> String {
    derive_ifname("br-", network)
}

/// Interface name of the host link inside the router.
pub const ROUTER_HOST_IFNAME: &str = "host0";

/// Default host-side name of the host link for run name `run_name`.
pub fn host_ifname(run_name: &str) -> String {
    derive_ifname("nk-", run_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_verbatim() {
        assert_eq!(bridge_ifname("frontend"), "br-frontend");
        assert_eq!(fabric_ifname("gateway", 0), "v0-gateway");
        assert_eq!(node_ifname(2), "eth2");
    }

    #[test]
    fn long_names_are_shortened_deterministically() {
        let a = fabric_ifname("product-service-replica-1", 0);
        let b = fabric_ifname("product-service-replica-2", 0);
        assert!(a.len() <= IFNAME_MAX && b.len() <= IFNAME_MAX);
        assert_ne!(a, b);
        assert_eq!(a, fabric_ifname("product-service-replica-1", 0));
        assert!(a.starts_with("v0-product"));
        assert!(is_valid_ifname(&a));
    }

    #[test]
    fn name_checks() {
        assert!(is_valid_name("product-1"));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"x".repeat(NAME_MAX + 1)));
        assert!(is_valid_ifname("br-frontend"));
        assert!(!is_valid_ifname("this-is-sixteen!"));
        assert!(!is_valid_ifname("sixteen-chars-xx"));
        assert!(!is_valid_ifname("a/b"));
    }
}
