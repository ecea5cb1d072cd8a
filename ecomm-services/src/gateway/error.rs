//! Gateway configuration errors.

/// What is wrong with the gateway's flags.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GatewayError {
    /// No discovery backend configured for an upstream.
    #[error("no instances for {upstream}: pass --{upstream}-upstreams, --{upstream}-dns or --registry-url")]
    NoDiscovery {
        /// Upstream name.
        upstream: &'static str,
    },
    /// A DNS discovery name lacks a port.
    #[error(
        "invalid --{upstream}-dns name {name:?}: expected host:port, e.g. tasks.{upstream}:8001"
    )]
    InvalidDnsName {
        /// Upstream name.
        upstream: &'static str,
        /// The name given.
        name: String,
    },
    /// Tries outside 1..=8.
    #[error("invalid --max-tries {0}: expected 1..=8")]
    InvalidMaxTries(usize),
    /// Percentage above 100.
    #[error("invalid --max-ejected-percent {0}: expected 0..=100")]
    InvalidPercent(u8),
}
