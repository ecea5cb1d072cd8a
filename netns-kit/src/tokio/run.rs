//! [`Netns::run_async`]: a closure on a dedicated thread inside the namespace, awaited.

use std::future::Future;

use nix::sched::{setns, CloneFlags};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::netns::Netns;

impl Netns {
    /// Run `f` on a new thread that has entered this namespace and await what it returns.
    ///
    /// The thread is netns-kit's own, never a tokio worker nor a `spawn_blocking` thread
    /// (those are reused: a namespace entered there would leak into later tasks); it starts
    /// when the future is first polled and ends when `f` returns. `f` may block: only its
    /// thread waits. Dropping the future does not stop `f`; its result is then discarded.
    /// The future owns a handle on the namespace, so it can be `tokio::spawn`ed.
    pub fn run_async<F, T>(&self, f: F) -> impl Future<Output = Result<T>> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let ns = self.clone();
        async move {
            let label = ns.label();
            let (tx, rx) = oneshot::channel();
            std::thread::Builder::new()
                .name("netns-kit-run".to_string())
                .spawn(move || {
                    let entered = setns(ns.fd(), CloneFlags::CLONE_NEWNET)
                        .map_err(|e| Error::io("enter namespace", ns.label(), e.into()));
                    // The receiver is gone only if the future was dropped: nobody to tell.
                    let _ = tx.send(entered.map(|()| f()));
                })
                .map_err(|e| Error::io("start a thread to enter namespace", label, e))?;
            rx.await
                .map_err(|_| Error::ThreadPanicked("running a closure inside a namespace"))?
        }
    }
}
