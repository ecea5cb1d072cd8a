//! Typed nftables rules: what netns-kit's one table per namespace may contain.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Default name of the nftables table netns-kit owns in each namespace.
pub const DEFAULT_TABLE: &str = "netns_kit";

/// A whole table: chain policies plus rules; rendered and replaced atomically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ruleset {
    /// The table's name (family `inet`); default [`DEFAULT_TABLE`].
    pub table: String,
    /// Policy of the input chain (traffic to this namespace).
    pub input: Policy,
    /// Policy of the forward chain (traffic routed through this namespace).
    pub forward: Policy,
    /// Policy of the output chain (traffic from this namespace).
    pub output: Policy,
    /// Rules in order; each names the hook (chain) it belongs to.
    pub rules: Vec<Rule>,
}

impl Default for Ruleset {
    /// An empty table that accepts everything.
    fn default() -> Self {
        Ruleset {
            table: DEFAULT_TABLE.to_string(),
            input: Policy::Accept,
            forward: Policy::Accept,
            output: Policy::Accept,
            rules: Vec::new(),
        }
    }
}

/// A chain's default verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Let unmatched packets through.
    Accept,
    /// Drop unmatched packets.
    Drop,
}

/// The hook (and thus chain) a rule lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    /// Filter chain for packets addressed to this namespace.
    Input,
    /// Filter chain for packets routed through this namespace.
    Forward,
    /// Filter chain for packets sent by this namespace.
    Output,
    /// NAT chain after routing (masquerade lives here).
    Postrouting,
}

/// Layer-4 protocol a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// Any protocol (no match on protocol).
    Any,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP and ICMPv6.
    Icmp,
}

/// An inclusive destination-port range (`first == last` for one port); ports are 1..=65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range (>= first).
    pub last: u16,
}

impl PortRange {
    /// One single port.
    pub fn single(port: u16) -> Self {
        PortRange {
            first: port,
            last: port,
        }
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// A connection-tracking state a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CtState {
    /// A packet of a connection already seen both ways.
    Established,
    /// A packet related to an existing connection (e.g. ICMP errors).
    Related,
    /// The first packet of a connection.
    New,
    /// A packet conntrack could not classify.
    Invalid,
}

/// What a matching packet gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let it through.
    Accept,
    /// Drop it silently.
    Drop,
    /// Source-NAT to the outgoing interface's address (postrouting only).
    Masquerade,
}

/// One rule: every `Some`/non-empty field must match; then `action` applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// The chain this rule belongs to.
    pub hook: Hook,
    /// Source network (or host, as /32 or /128).
    pub from: Option<IpNet>,
    /// Input interface name.
    pub iif: Option<String>,
    /// Destination network (or host).
    pub to: Option<IpNet>,
    /// Output interface name.
    pub oif: Option<String>,
    /// Protocol; `Any` matches everything.
    pub proto: Proto,
    /// Destination ports (tcp/udp only); empty = every port.
    pub dst_ports: Vec<PortRange>,
    /// Connection-tracking states; empty = any state.
    pub ct_states: Vec<CtState>,
    /// The verdict.
    pub action: Action,
    /// Free-text comment stored with the rule (shows in `nft list ruleset`).
    pub comment: Option<String>,
}

impl Rule {
    /// A rule in `hook` with no matches that applies `action` (add matches with the builders).
    pub fn new(hook: Hook, action: Action) -> Self {
        Rule {
            hook,
            from: None,
            iif: None,
            to: None,
            oif: None,
            proto: Proto::Any,
            dst_ports: Vec::new(),
            ct_states: Vec::new(),
            action,
            comment: None,
        }
    }

    /// `ct state established,related accept` in `hook`: replies to allowed traffic.
    pub fn established_related(hook: Hook) -> Self {
        Rule {
            ct_states: vec![CtState::Established, CtState::Related],
            ..Rule::new(hook, Action::Accept)
        }
    }

    /// Match the source network.
    pub fn from(mut self, net: IpNet) -> Self {
        self.from = Some(net);
        self
    }

    /// Match the destination network.
    pub fn to(mut self, net: IpNet) -> Self {
        self.to = Some(net);
        self
    }

    /// Match the input interface name.
    pub fn iif(mut self, name: impl Into<String>) -> Self {
        self.iif = Some(name.into());
        self
    }

    /// Match the output interface name.
    pub fn oif(mut self, name: impl Into<String>) -> Self {
        self.oif = Some(name.into());
        self
    }

    /// Match a protocol and (for tcp/udp) destination ports.
    pub fn proto(mut self, proto: Proto, ports: Vec<PortRange>) -> Self {
        self.proto = proto;
        self.dst_ports = ports;
        self
    }

    /// Attach a comment.
    pub fn comment(mut self, text: impl Into<String>) -> Self {
        self.comment = Some(text.into());
        self
    }
}

/// Why a [`Ruleset`] cannot be rendered into a valid nftables transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesetError {
    /// Table names are nft identifiers.
    #[error("firewall table name {0:?} is invalid: expected 1..=64 letters, digits or '_' starting with a letter")]
    BadTableName(String),
    /// Masquerade is only meaningful after routing.
    #[error(
        "rules[{index}]: masquerade is only allowed in the postrouting hook, found in {hook:?}"
    )]
    MasqueradeOutsidePostrouting {
        /// Index of the offending rule.
        index: usize,
        /// The hook it was placed in.
        hook: Hook,
    },
    /// Ports only exist for tcp and udp.
    #[error("rules[{index}]: destination ports need proto tcp or udp, found {proto:?}")]
    PortsWithoutTransport {
        /// Index of the offending rule.
        index: usize,
        /// The protocol given.
        proto: Proto,
    },
    /// Port ranges are 1..=65535 with first <= last.
    #[error("rules[{index}]: bad port range {first}-{last}: expected 1 <= first <= last <= 65535")]
    BadPortRange {
        /// Index of the offending rule.
        index: usize,
        /// First port.
        first: u16,
        /// Last port.
        last: u16,
    },
    /// Source and destination must be of the same address family.
    #[error("rules[{index}]: from {from} and to {to} are of different address families")]
    MixedFamilies {
        /// Index of the offending rule.
        index: usize,
        /// The source network.
        from: IpNet,
        /// The destination network.
        to: IpNet,
    },
    /// Interface names are at most 15 bytes without '"' or whitespace.
    #[error("rules[{index}]: interface name {name:?} is invalid: expected 1..=15 bytes, no quotes or whitespace")]
    BadIfname {
        /// Index of the offending rule.
        index: usize,
        /// The name given.
        name: String,
    },
}

impl Ruleset {
    /// Checks every rule can be rendered into a valid nftables transaction.
    pub fn validate(&self) -> Result<(), RulesetError> {
        let t = &self.table;
        let ok_table = !t.is_empty()
            && t.len() <= 64
            && t.starts_with(|c: char| c.is_ascii_alphabetic())
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok_table {
            return Err(RulesetError::BadTableName(t.clone()));
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.action == Action::Masquerade && rule.hook != Hook::Postrouting {
                return Err(RulesetError::MasqueradeOutsidePostrouting {
                    index,
                    hook: rule.hook,
                });
            }
            if !rule.dst_ports.is_empty() && !matches!(rule.proto, Proto::Tcp | Proto::Udp) {
                return Err(RulesetError::PortsWithoutTransport {
                    index,
                    proto: rule.proto,
                });
            }
            for r in &rule.dst_ports {
                if r.first == 0 || r.first > r.last {
                    return Err(RulesetError::BadPortRange {
                        index,
                        first: r.first,
                        last: r.last,
                    });
                }
            }
            if let (Some(from), Some(to)) = (rule.from, rule.to) {
                if from.addr().is_ipv4() != to.addr().is_ipv4() {
                    return Err(RulesetError::MixedFamilies { index, from, to });
                }
            }
            for name in [&rule.iif, &rule.oif].into_iter().flatten() {
                let bad = name.is_empty()
                    || name.len() > 15
                    || name.chars().any(|c| c == '"' || c.is_whitespace());
                if bad {
                    return Err(RulesetError::BadIfname {
                        index,
                        name: name.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}
