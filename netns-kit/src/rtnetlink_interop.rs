//! The `rtnetlink` feature: an [rtnetlink](https://docs.rs/rtnetlink) connection whose socket
//! was opened inside a given namespace, for code written against rtnetlink's `Handle`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let ns = netns_kit::Netns::new_anonymous()?;
//! let (connection, handle, _messages) = ns.rtnetlink_connection().await?;
//! tokio::spawn(connection);
//! handle
//!     .link()
//!     .add(netns_kit::rtnetlink::LinkBridge::new("br0").build())
//!     .execute()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! **Versions.** rtnetlink 0.24 is built on netlink-packet-route 0.34, netlink-packet-core
//! 0.9 and netlink-sys 0.9 — the versions netns-kit itself uses (re-exported at the crate
//! root, and rtnetlink as [`crate::rtnetlink`]), so a `LinkMessage` from one of netns-kit's
//! builders is the type rtnetlink's requests take. rtnetlink 0.22 and older use
//! netlink-packet-core 0.8 and an older netlink-packet-route; 0.23 uses route 0.33. To get
//! there netns-kit moved from netlink-sys 0.8 to 0.9 (0.9.0 only adds `IntoRawFd` for
//! `Socket` and fixes the boolean socket-option getters; nothing netns-kit calls changed) and
//! from `netlink-packet-route = "=0.34.0"` to `"0.34"`.
//!
//! **Namespaces.** The socket is created — and registered with the caller's tokio runtime —
//! on a dedicated thread that entered the namespace ([`Netns::run_async`]); a netlink socket
//! stays bound to the namespace it was created in, so the connection then runs on any tokio
//! thread. No tokio thread ever calls setns.
//!
//! rtnetlink is used behind this door only: netns-kit's own kernel layer keeps its own
//! builders, since rtnetlink's minor releases change its API.

use std::io;

use futures_channel::mpsc::UnboundedReceiver;
use netlink_packet_core::NetlinkMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{SocketAddr, TokioSocket};

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::tokio::current_runtime;

/// The connection future of an rtnetlink socket: spawn it (`tokio::spawn(connection)`), or
/// the handle's requests never complete.
pub type Connection = rtnetlink::proto::Connection<RouteNetlinkMessage, TokioSocket>;

/// Messages the kernel sends unasked (multicast notifications), as rtnetlink hands them out.
pub type Messages = UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

impl Netns {
    /// [`rtnetlink::new_connection`], with the socket opened inside this namespace: the
    /// connection (spawn it on tokio), the [`rtnetlink::Handle`], and unsolicited messages.
    pub async fn rtnetlink_connection(&self) -> Result<(Connection, rtnetlink::Handle, Messages)> {
        self.rtnetlink_connection_with(rtnetlink::new_connection)
            .await
    }

    /// Run one of rtnetlink's constructors inside this namespace, e.g.
    /// `rtnetlink::new_connection_with_strict_check` or a closure calling
    /// `rtnetlink::new_multicast_connection(&groups)`: `open` runs on a dedicated thread
    /// inside the namespace, within the caller's tokio runtime context (so the socket is
    /// registered with that runtime), and must be awaited inside a tokio runtime.
    pub async fn rtnetlink_connection_with<C, F>(&self, open: F) -> Result<C>
    where
        F: FnOnce() -> io::Result<C> + Send + 'static,
        C: Send + 'static,
    {
        let runtime = current_runtime("Netns::rtnetlink_connection")?;
        self.run_async(move || {
            let _context = runtime.enter();
            open()
        })
        .await?
        .map_err(|e| Error::io("open rtnetlink connection in", self.label(), e))
    }
}
