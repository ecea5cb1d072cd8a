//! One proxy thread's idle upstream connections, per instance address: last in, first out
//! (the warmest connection is reused), at most `max_idle` per instance, none older than
//! `idle_timeout` (also for instances that left discovery: every [`SWEEP_EVERY`] check-ins
//! the whole pool is swept). Each proxy thread owns one, so the lock is never contended.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustc_hash::FxBuildHasher;

use super::upstream_conn::{ExchangeError, UpstreamConn};
use crate::http::Counter;

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct ConnPoolLimits {
    /// TCP connect timeout (default 1 s).
    pub connect_timeout: Duration,
    /// Idle connections kept per instance (default 512).
    pub max_idle: usize,
    /// How long an idle connection is kept (default 90 s).
    pub idle_timeout: Duration,
}

/// Check-ins between two sweeps of every instance's idle connections.
pub const SWEEP_EVERY: u32 = 1024;

/// The idle connections by instance, and check-ins since the last sweep.
#[derive(Default)]
struct Idle {
    /// FxHash, not SipHash: the keys come from discovery (not from clients), so flooding
    /// resistance buys nothing on a path that runs twice per proxied request.
    by_addr: HashMap<SocketAddr, Vec<UpstreamConn>, FxBuildHasher>,
    checkins: u32,
}

/// Idle keep-alive connections of one proxy thread.
pub struct ConnPool {
    idle: Mutex<Idle>,
    limits: ConnPoolLimits,
    opened: Counter,
}

impl ConnPool {
    /// An empty pool; `opened` counts new upstream connections.
    pub fn new(limits: ConnPoolLimits, opened: Counter) -> Self {
        Self {
            idle: Mutex::new(Idle::default()),
            limits,
            opened,
        }
    }

    /// An idle connection to `addr` that still looks alive at `now`, if any.
    pub fn take_idle(&self, addr: SocketAddr, now: Instant) -> Option<UpstreamConn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let stack = idle.by_addr.get_mut(&addr)?;
        while let Some(conn) = stack.pop() {
            if now.duration_since(conn.idle_since()) < self.limits.idle_timeout
                && conn.looks_alive()
            {
                return Some(conn);
            }
        }
        None
    }

    /// Opens a new connection to `addr`.
    pub async fn connect(&self, addr: SocketAddr) -> Result<UpstreamConn, ExchangeError> {
        let conn = UpstreamConn::connect(addr, self.limits.connect_timeout).await?;
        self.opened.inc();
        Ok(conn)
    }

    /// An idle connection to `addr` (true: reused) or a new one (false); `now` is the
    /// caller's clock reading.
    pub async fn checkout(
        &self,
        addr: SocketAddr,
        now: Instant,
    ) -> Result<(UpstreamConn, bool), ExchangeError> {
        match self.take_idle(addr, now) {
            Some(conn) => Ok((conn, true)),
            None => Ok((self.connect(addr).await?, false)),
        }
    }

    /// Returns a connection that finished a clean exchange (idle from `now`); dropped
    /// (closed) when the instance already has `max_idle` idle ones. The oldest idle one is
    /// closed once it outlives the idle timeout.
    pub fn checkin(&self, mut conn: UpstreamConn, now: Instant) {
        conn.set_idle_since(now);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.checkins += 1;
        if idle.checkins >= SWEEP_EVERY {
            idle.checkins = 0;
            self.sweep_locked(&mut idle, now);
        }
        let stack = idle.by_addr.entry(conn.addr()).or_default();
        if stack.first().is_some_and(|oldest| {
            now.saturating_duration_since(oldest.idle_since()) >= self.limits.idle_timeout
        }) {
            stack.remove(0);
        }
        if stack.len() < self.limits.max_idle {
            stack.push(conn);
        }
    }

    /// Closes every idle connection older than the idle timeout at `now`, whatever its
    /// instance (those of instances no longer in rotation are never checked out again).
    pub fn sweep(&self, now: Instant) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        self.sweep_locked(&mut idle, now);
    }

    fn sweep_locked(&self, idle: &mut Idle, now: Instant) {
        let timeout = self.limits.idle_timeout;
        idle.by_addr.retain(|_, stack| {
            stack.retain(|conn| now.saturating_duration_since(conn.idle_since()) < timeout);
            !stack.is_empty()
        });
    }

    /// Idle connections currently kept for `addr`.
    pub fn idle_count(&self, addr: SocketAddr) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_addr
            .get(&addr)
            .map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http::{HeaderMap, Method};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::gateway::upstream_conn::OutgoingRequest;
    use crate::http::Metrics;

    /// A real upstream on loopback answering `answers` requests per connection with a
    /// 2-byte body, then closing the connection (without saying so); counts accepts.
    async fn upstream(answers: usize) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    for _ in 0..answers {
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            let n = stream.read(&mut buf).await.unwrap();
                            if n == 0 {
                                return;
                            }
                            seen.extend_from_slice(&buf[..n]);
                        }
                        seen.clear();
                        stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await
                            .unwrap();
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn pool(max_idle: usize) -> ConnPool {
        pool_with_timeout(max_idle, Duration::from_secs(60))
    }

    fn pool_with_timeout(max_idle: usize, idle_timeout: Duration) -> ConnPool {
        let metrics = Metrics::new("test");
        ConnPool::new(
            ConnPoolLimits {
                connect_timeout: Duration::from_secs(1),
                max_idle,
                idle_timeout,
            },
            metrics.counter("opened_total", "Opened.", &[]),
        )
    }

    async fn get(pool: &ConnPool, addr: SocketAddr) -> (bool, bool) {
        let (mut conn, reused) = pool.checkout(addr, Instant::now()).await.unwrap();
        let authority = addr.to_string().parse().unwrap();
        let request = OutgoingRequest {
            method: &Method::GET,
            path: &"/x".parse().unwrap(),
            headers: &HeaderMap::new(),
            body: b"",
            client: [127, 0, 0, 1].into(),
            request_id: &http::HeaderValue::from_static("test"),
        };
        let exchanged = conn.exchange(&request, &authority, 1024).await.unwrap();
        assert_eq!(exchanged.response.body().as_ref(), b"ok");
        let reusable = exchanged.reusable;
        if reusable {
            pool.checkin(conn, Instant::now());
        }
        (reused, reusable)
    }

    #[tokio::test]
    async fn a_returned_connection_carries_the_next_request() {
        let (addr, accepted) = upstream(100).await;
        let pool = pool(8);
        assert_eq!(get(&pool, addr).await, (false, true));
        assert_eq!(get(&pool, addr).await, (true, true));
        assert_eq!(get(&pool, addr).await, (true, true));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.opened.get(), 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_dropped_not_reused() {
        let (addr, accepted) = upstream(1).await;
        let pool = pool(8);
        assert_eq!(get(&pool, addr).await, (false, true));
        // The upstream closes after one answer; let its FIN arrive.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(get(&pool, addr).await, (false, true));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn at_most_max_idle_connections_are_kept_per_instance() {
        let (addr, _) = upstream(100).await;
        let pool = pool(2);
        let mut conns = Vec::new();
        for _ in 0..3 {
            conns.push(pool.checkout(addr, Instant::now()).await.unwrap().0);
        }
        for conn in conns {
            pool.checkin(conn, Instant::now());
        }
        assert_eq!(pool.idle_count(addr), 2);
    }

    #[tokio::test]
    async fn idle_connections_past_the_timeout_are_closed_by_the_sweep() {
        let (addr, _) = upstream(100).await;
        let pool = pool_with_timeout(8, Duration::from_secs(30));
        let conn = pool.checkout(addr, Instant::now()).await.unwrap().0;
        let idle_from = Instant::now();
        pool.checkin(conn, idle_from);
        pool.sweep(idle_from + Duration::from_secs(29));
        assert_eq!(pool.idle_count(addr), 1, "still within the idle timeout");
        pool.sweep(idle_from + Duration::from_secs(31));
        assert_eq!(pool.idle_count(addr), 0);
        assert!(pool.take_idle(addr, idle_from).is_none());
    }
}
