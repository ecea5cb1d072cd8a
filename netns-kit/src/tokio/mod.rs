//! The `tokio` feature: netns-kit from async code, without ever calling setns on a tokio
//! thread.
//!
//! setns(2) moves only the calling thread, and a tokio worker (or a `spawn_blocking` pool
//! thread, which is reused) that entered a namespace would carry it into every later task.
//! So each operation here does the namespace-bound part on a fresh dedicated thread — or in
//! the child between fork and exec — and the async side only awaits its answer:
//!
//! - [`Netns::run_async`](crate::Netns::run_async): a closure on a new thread inside the
//!   namespace, awaited through a oneshot channel.
//! - [`Netns::command_async`](crate::Netns::command_async) /
//!   [`NsCommand::into_async`](crate::netns::NsCommand::into_async): a
//!   [`tokio::process::Command`] whose child enters the namespace before exec (the same
//!   `pre_exec` + setns as [`Netns::command`](crate::Netns::command)); the [`AsyncNsChild`]
//!   is killed on drop.
//! - [`probe_tcp_async`], [`probe_tcp_stream_async`], [`listen_tcp_async`]: the socket is
//!   created by a thread inside the namespace (a socket keeps the namespace it was created
//!   in), then connected or accepted on by tokio, with the same [`TcpProbe`](crate::TcpProbe)
//!   answers as [`probe::tcp_connect`](crate::probe::tcp_connect); [`matrix_async`] runs
//!   many at once, [`icmp_echo_async`] awaits an ICMP echo.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use netns_kit::{tokio::probe_tcp_async, Netns, TcpProbe};
//!
//! let ns = Netns::new_anonymous()?;
//! let inode = ns.run_async(|| Netns::current_thread().map(|n| n.inode())).await??;
//! assert_eq!(inode, ns.inode());
//! // A fresh namespace's `lo` is down: no route to 127.0.0.1 (an error), never Reachable.
//! let answer = probe_tcp_async(&ns, "127.0.0.1:80".parse()?, Duration::from_secs(1)).await;
//! assert!(!matches!(answer, Ok(TcpProbe::Reachable)));
//! let status = ns.command_async("ip").args(["link", "show"]).status().await?;
//! assert!(status.success());
//! # Ok(()) }
//! ```
//!
//! Everything here must be awaited inside a tokio runtime with its IO and time drivers
//! enabled (`#[tokio::main]`, or a `Builder` with `enable_all()`); outside one the functions
//! return [`Error::Invalid`] rather than panic (the time driver cannot be checked: a deadline
//! without it panics, as every tokio timer does).

mod command;
mod probe;
mod run;

pub use command::{AsyncNsChild, AsyncNsCommand};
pub use probe::{
    icmp_echo_async, listen_tcp_async, matrix_async, probe_tcp_async, probe_tcp_stream_async,
};

use crate::error::{Error, Result};

/// The runtime the caller is in, or an error naming `what` was called outside one.
pub(crate) fn current_runtime(what: &'static str) -> Result<::tokio::runtime::Handle> {
    ::tokio::runtime::Handle::try_current().map_err(|_| Error::Invalid {
        kind: "calling context",
        value: format!("{what} outside a tokio runtime"),
        expected: "a call from inside a tokio runtime with its IO and time drivers enabled",
    })
}
