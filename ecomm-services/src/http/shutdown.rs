//! A clonable shutdown signal: triggered by SIGTERM/SIGINT (or by hand in tests), awaited by
//! servers (to drain) and background tasks (heartbeats, sweepers, health checkers).

use tokio::sync::watch;

/// Shutdown handle; clones share the same state. Once triggered it stays triggered.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A handle that triggers only when [`Shutdown::trigger`] is called.
    pub fn new() -> Self {
        Self {
            tx: watch::channel(false).0,
        }
    }

    /// A handle that also triggers on SIGTERM or SIGINT (must be called inside a tokio runtime).
    pub fn on_signals() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let shutdown = Self::new();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "draining"),
                _ = int.recv() => tracing::info!(signal = "SIGINT", "draining"),
            }
            trigger.trigger();
        });
        Ok(shutdown)
    }

    /// Starts the shutdown; every waiter wakes.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once shutdown has started (immediately if it already has).
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // An error means the sender is gone, which cannot happen while `self` holds it.
        let _ = rx.wait_for(|triggered| *triggered).await;
    }
}
