//! Everything that can be wrong with a topology file, caught before any kernel call.
//!
//! Every variant names the field path (e.g. `nodes[3].interfaces[0].address`), the value
//! found and what was expected.

use std::path::PathBuf;

/// A topology file that cannot be applied, and exactly why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TopologyError {
    /// The file could not be read.
    #[error("cannot read topology file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error text.
        reason: String,
    },
    /// TOML syntax or shape error (unknown key, wrong type, missing field).
    #[error("invalid TOML at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message (one line).
        message: String,
    },
    /// A CIDR that does not parse or has host bits set.
    #[error("{field}: {value:?} is not a valid subnet: expected CIDR notation like \"172.20.0.0/24\" with no host bits set")]
    BadCidr {
        /// Field path.
        field: String,
        /// The value found.
        value: String,
    },
    /// An address that does not parse.
    #[error(
        "{field}: {value:?} is not a valid IP address: expected e.g. \"172.20.0.10\" (no prefix)"
    )]
    BadAddress {
        /// Field path.
        field: String,
        /// The value found.
        value: String,
    },
    /// An address outside its network's subnet.
    #[error("{field}: {value} is outside network {network:?} ({subnet})")]
    AddressOutsideSubnet {
        /// Field path.
        field: String,
        /// The address.
        value: String,
        /// The network it was meant for.
        network: String,
        /// That network's subnet.
        subnet: String,
    },
    /// The subnet's network or broadcast address used as a host address.
    #[error("{field}: {value} is the {kind} address of {subnet}: expected a host address")]
    ReservedAddress {
        /// Field path.
        field: String,
        /// The address.
        value: String,
        /// "network" or "broadcast".
        kind: &'static str,
        /// The subnet.
        subnet: String,
    },
    /// Two things with the same name.
    #[error("{field}: name {value:?} is already used by {first}: expected unique names")]
    DuplicateName {
        /// Field path of the second use.
        field: String,
        /// The name.
        value: String,
        /// Field path of the first use.
        first: String,
    },
    /// Two interfaces with the same address.
    #[error("{field}: address {value} is already used by {first}: expected unique addresses")]
    DuplicateAddress {
        /// Field path of the second use.
        field: String,
        /// The address.
        value: String,
        /// Field path of the first use.
        first: String,
    },
    /// Two subnets that overlap.
    #[error("{field}: subnet {value} overlaps {other_field} ({other}): expected disjoint subnets")]
    OverlappingSubnets {
        /// Field path.
        field: String,
        /// The subnet.
        value: String,
        /// Field path of the other subnet.
        other_field: String,
        /// The other subnet.
        other: String,
    },
    /// A reference to a network that is not declared.
    #[error("{field}: unknown network {value:?}: expected one of [{known}]")]
    UnknownNetwork {
        /// Field path.
        field: String,
        /// The name.
        value: String,
        /// The declared networks, comma-separated.
        known: String,
    },
    /// A reference to a node that is not declared.
    #[error("{field}: unknown node {value:?}: expected one of [{known}]")]
    UnknownNode {
        /// Field path.
        field: String,
        /// The name.
        value: String,
        /// The declared nodes, comma-separated.
        known: String,
    },
    /// A policy endpoint that is neither a network nor a node.
    #[error("{field}: {value:?} is neither a network nor a node: expected one of [{known}]")]
    UnknownPolicyTarget {
        /// Field path.
        field: String,
        /// The name.
        value: String,
        /// The declared networks and nodes, comma-separated.
        known: String,
    },
    /// A name with characters outside [A-Za-z0-9_-] or of bad length.
    #[error("{field}: {value:?} is not a valid name: expected 1..={max} characters from A-Z a-z 0-9 '-' '_', starting with a letter or digit")]
    InvalidName {
        /// Field path.
        field: String,
        /// The name.
        value: String,
        /// Maximum length.
        max: usize,
    },
    /// An interface name longer than IFNAMSIZ-1 or with forbidden characters.
    #[error("{field}: interface name {value:?} cannot be used: expected 1..=15 bytes of A-Z a-z 0-9 '-' '_' '.'")]
    BadIfname {
        /// Field path.
        field: String,
        /// The name.
        value: String,
    },
    /// Two derived interface names in one namespace collide.
    #[error("{field}: interface name {value:?} in namespace {ns:?} collides with {first}: rename one of them")]
    IfnameCollision {
        /// Field path.
        field: String,
        /// The name.
        value: String,
        /// Namespace key.
        ns: String,
        /// Field path of the first use.
        first: String,
    },
    /// Policy crosses networks the router is not on (or there is no router).
    #[error("{field}: {rule} crosses from network {from_net:?} to {to_net:?} but {reason}")]
    RouterMissing {
        /// Field path.
        field: String,
        /// The rule, as "from -> to".
        rule: String,
        /// A source network.
        from_net: String,
        /// A destination network.
        to_net: String,
        /// "there is no [router]" or "the router is not on network X".
        reason: String,
    },
    /// A port of 0, above 65535, or a malformed/reversed range.
    #[error("{field}: bad port {value:?}: expected 1..=65535 or \"low-high\" with low <= high")]
    BadPort {
        /// Field path.
        field: String,
        /// The value as written.
        value: String,
    },
    /// An unknown protocol.
    #[error("{field}: unknown protocol {value:?}: expected one of tcp, udp, icmp, any")]
    BadProto {
        /// Field path.
        field: String,
        /// The value.
        value: String,
    },
    /// Ports given for a protocol without ports.
    #[error("{field}: ports need proto \"tcp\" or \"udp\", found {value:?}")]
    PortsWithoutTransport {
        /// Field path.
        field: String,
        /// The protocol.
        value: String,
    },
    /// A numeric field out of range.
    #[error("{field}: {value} is out of range: expected {expected}")]
    OutOfRange {
        /// Field path.
        field: String,
        /// The value.
        value: String,
        /// The allowed range, in words.
        expected: String,
    },
    /// Fields that must (or must not) appear together.
    #[error("{field}: {message}")]
    Conflict {
        /// Field path.
        field: String,
        /// What is wrong, in words naming the fields.
        message: String,
    },
    /// A subnet with no free host address left for an interface without an address.
    #[error("{field}: no free address left in {subnet} for an interface without an address")]
    SubnetExhausted {
        /// Field path.
        field: String,
        /// The subnet.
        subnet: String,
    },
    /// A node that is also a network name (policy names would be ambiguous) or reserved.
    #[error("{field}: name {value:?} is reserved or ambiguous: {reason}")]
    ReservedName {
        /// Field path.
        field: String,
        /// The name.
        value: String,
        /// Why.
        reason: String,
    },
    /// A sysctl key that is not a dotted /proc/sys path.
    #[error("{field}: sysctl key {value:?} is invalid: expected dotted words like \"net.ipv4.ip_forward\"")]
    BadSysctl {
        /// Field path.
        field: String,
        /// The key.
        value: String,
    },
    /// A reference to a service that is not declared.
    #[error("{field}: unknown service {value:?}: expected one of [{known}]")]
    UnknownService {
        /// Field path.
        field: String,
        /// The name.
        value: String,
        /// The declared services, comma-separated.
        known: String,
    },
    /// A `${…}` placeholder that names nothing declared.
    #[error("{field}: unknown placeholder \"${{{value}}}\": {expected}")]
    UnknownPlaceholder {
        /// Field path.
        field: String,
        /// The placeholder's text between `${` and `}`.
        value: String,
        /// What was expected instead, in words.
        expected: String,
    },
    /// Services that depend on each other in a circle.
    #[error("{field}: dependency cycle {cycle}: expected depends_on to form no cycle")]
    DependencyCycle {
        /// Field path of the edge that closes the cycle.
        field: String,
        /// The cycle, as "a -> b -> a".
        cycle: String,
    },
    /// Two services (or instances) listening on one address and port.
    #[error(
        "{field}: {value} is already taken by {first}: expected one listener per address:port"
    )]
    DuplicateListen {
        /// Field path of the second listener.
        field: String,
        /// The address:port.
        value: String,
        /// Who listens there first (field path and instance).
        first: String,
    },
    /// A node (or the router) that the placement puts on no host.
    #[error("{field}: {value:?} is placed on no host: expected every node and the router on exactly one host")]
    Unplaced {
        /// Field path ("placement").
        field: String,
        /// The node.
        value: String,
    },
    /// A node the placement puts on two hosts (or twice on one).
    #[error(
        "{field}: {value:?} is already placed by {first}: expected every node on exactly one host"
    )]
    PlacedTwice {
        /// Field path of the second placement.
        field: String,
        /// The node.
        value: String,
        /// Field path of the first.
        first: String,
    },
    /// A host that the placement does not declare.
    #[error("{field}: unknown host {value:?}: expected one of [{known}]")]
    UnknownHost {
        /// Field path (or "--host").
        field: String,
        /// The host.
        value: String,
        /// The placement's hosts, comma-separated.
        known: String,
    },
    /// A runtime variable the runner did not supply.
    #[error("{field}: variable \"${{{value}}}\" has no value: the runner must supply every name in `vars` it uses")]
    MissingVar {
        /// Field path (service and argument).
        field: String,
        /// The variable's name.
        value: String,
    },
    /// A run id or run name that cannot be used.
    #[error(
        "run {field} {value:?} is invalid: expected 1..={max} characters from a-z A-Z 0-9 '-' '_'"
    )]
    BadRunName {
        /// "id" or "name".
        field: &'static str,
        /// The value.
        value: String,
        /// Maximum length.
        max: usize,
    },
}

impl TopologyError {
    /// The field path the error is about (empty for file-level errors).
    pub fn field(&self) -> &str {
        use TopologyError::*;
        match self {
            Read { .. } | Syntax { .. } | BadRunName { .. } => "",
            BadCidr { field, .. }
            | BadAddress { field, .. }
            | AddressOutsideSubnet { field, .. }
            | ReservedAddress { field, .. }
            | DuplicateName { field, .. }
            | DuplicateAddress { field, .. }
            | OverlappingSubnets { field, .. }
            | UnknownNetwork { field, .. }
            | UnknownNode { field, .. }
            | UnknownPolicyTarget { field, .. }
            | InvalidName { field, .. }
            | BadIfname { field, .. }
            | IfnameCollision { field, .. }
            | RouterMissing { field, .. }
            | BadPort { field, .. }
            | BadProto { field, .. }
            | PortsWithoutTransport { field, .. }
            | OutOfRange { field, .. }
            | Conflict { field, .. }
            | SubnetExhausted { field, .. }
            | ReservedName { field, .. }
            | BadSysctl { field, .. }
            | UnknownService { field, .. }
            | UnknownPlaceholder { field, .. }
            | DependencyCycle { field, .. }
            | DuplicateListen { field, .. }
            | Unplaced { field, .. }
            | PlacedTwice { field, .. }
            | UnknownHost { field, .. }
            | MissingVar { field, .. } => field,
        }
    }
}
