//! The roles an image is built for, and the Debian packages they start from.

/// The root packages of every role; `just lock` locks their dependency closure.
pub const ROOTS: &[&str] = &[
    "busybox-static",
    "iproute2",
    "libc6",
    "nftables",
    "postgresql-15",
    "redis-server",
];
