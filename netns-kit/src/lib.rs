#![warn(missing_docs)]
#![doc = include_str!("../README.md")]
//!
//! # Map of the crate
//!
//! **Kernel layer** — one module per kernel object, each usable on its own:
//!
//! - [`netns`]: namespaces held by file descriptor ([`Netns`]), anonymous or named under
//!   /run/netns; [`Netns::run`] runs a closure on a dedicated thread inside (setns never
//!   touches a caller's thread), [`Netns::command`] spawns a process inside, sysctls, and
//!   [`Netns::netlink`] opens a netlink socket inside.
//! - [`netlink`]: that socket ([`netlink::Netlink`]): requests queued and sent in batches, over
//!   the netlink socket the nf_tables one shares (opening, sequence numbers, acknowledgements).
//! - [`link`]: one builder per kind — [`link::bridge()`], [`link::veth()`] (each end created in
//!   its own namespace), [`link::vxlan()`], [`link::dummy()`] — and changes, deletion, listing.
//! - [`addr`] (addresses), [`route`] (routes), [`sysctl`] (/proc/sys keys).
//! - [`firewall`]: netns-kit's one nftables table per namespace ([`Ruleset`]), replaced
//!   atomically over nf_tables netlink ([`firewall::apply::load`]).
//! - [`impair`]: netem (delay, jitter, loss, rate) on a link.
//! - [`probe`]: TCP connect with three answers ([`TcpProbe`]), ICMP echo, listeners inside a
//!   namespace, a reachability matrix.
//! - [`procfs`]: one reader of `/proc/<pid>/stat` (state, parent, group, CPU time, start
//!   time), for supervisors and leak checks.
//! - [`supervise`]: a process spawned in a namespace as a session leader that dies with
//!   this process, optionally as another user, logged to a file, stopped with a grace period.
//! - [`error`]: the kernel layer's [`Error`] (every failure names its object and operation).
//!
//! **Topology model** (pure: no kernel calls) — [`topology`]: the TOML file format
//! ([`topology::spec`]), validated completely into a [`Topology`] (or a [`TopologyError`]
//! naming the field), resolved per run into a [`topology::Plan`]; [`graph`] draws it.
//!
//! **Runs** — [`LiveTopology`] applies a plan as one transaction ([`ApplyOptions`]; on failure
//! everything done is undone and an [`ApplyError`] returned) and tears it down on drop; named
//! runs are recorded ([`topology::state`]), compared with the kernel ([`topology::status`]) and
//! their leftovers collected ([`topology::gc`]); [`runid`] is the id everything created carries.
//!
//! **Async** (features, off by default) — `tokio`: the module `netns_kit::tokio` and
//! `Netns::run_async` / `Netns::command_async`, each doing its namespace-bound work on a
//! dedicated thread (or between fork and exec) and awaiting it; `rtnetlink`:
//! `Netns::rtnetlink_connection` and the module `netns_kit::rtnetlink_interop`.

pub mod addr;
pub mod error;
// The crash-point testing hook (`NETNS_KIT_FAULT_AFTER_STEP`) and the timing lines
// (`NETNS_KIT_TIMINGS`): public for the binary only, not part of the API.
#[doc(hidden)]
pub mod fault;
pub mod firewall;
pub mod graph;
pub mod impair;
pub mod link;
pub mod netlink;
pub mod netns;
pub mod probe;
pub mod procfs;
pub mod route;
pub mod runid;
pub mod runs;
pub mod supervise;
pub mod sysctl;
pub mod topology;

#[cfg(feature = "rtnetlink")]
pub mod rtnetlink_interop;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use error::{Error, Result};
pub use firewall::{Ruleset, RulesetError};
pub use netns::Netns;
pub use probe::TcpProbe;
pub use topology::live::{ApplyError, ApplyOptions, LiveTopology};
pub use topology::{Topology, TopologyError};

// The netlink crates whose types are in netns-kit's API ([`Netlink::queue`](netlink::Netlink::queue)
// takes a `RouteNetlinkMessage`, the link builders build a `LinkMessage`): use these paths and
// the versions always match netns-kit's.
pub use netlink_packet_core;
pub use netlink_packet_route;
pub use netlink_sys;
/// The rtnetlink crate [`Netns::rtnetlink_connection`] speaks (feature `rtnetlink`).
#[cfg(feature = "rtnetlink")]
pub use rtnetlink;
