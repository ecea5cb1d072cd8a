//! Closes client connections that stall: no complete request head for `timeout` (a slowloris
//! client, or a keep-alive connection idle between requests), or a response that makes no
//! write progress for `timeout` (a client that stopped reading). nginx has the same guards
//! (client_header_timeout, keepalive_timeout, send_timeout).
//!
//! hyper's own `header_read_timeout` arms a boxed timer for every request head; here a
//! request costs two relaxed atomic stores instead: each proxy thread runs one sweeper that
//! ticks once a second over the thread's connections and closes those past their deadline,
//! so a stalled connection lives between `timeout` and `timeout` + 1 s.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// `since` while the service works on a request (no deadline runs).
const IN_FLIGHT: u32 = u32::MAX;
/// How often the sweeper looks.
const TICK: Duration = Duration::from_secs(1);

/// Seconds since the watchlist started, advanced by the sweeper (one load to read).
struct CoarseClock {
    start: Instant,
    secs: AtomicU32,
}

impl CoarseClock {
    fn now(&self) -> u32 {
        self.secs.load(Ordering::Relaxed)
    }

    fn tick(&self) -> u32 {
        let secs = u32::try_from(self.start.elapsed().as_secs()).unwrap_or(IN_FLIGHT - 1);
        self.secs.store(secs, Ordering::Relaxed);
        secs
    }
}

/// The connections of one proxy thread and their deadline.
pub struct Watchlist {
    clock: Arc<CoarseClock>,
    timeout_s: u32,
    watches: Mutex<Vec<Weak<Watch>>>,
}

impl Watchlist {
    /// A watchlist closing connections stalled for `timeout` (rounded up to whole seconds,
    /// at least one).
    pub fn new(timeout: Duration) -> Arc<Self> {
        let timeout_s = timeout
            .as_secs()
            .saturating_add(u64::from(timeout.subsec_nanos() > 0))
            .clamp(1, u64::from(IN_FLIGHT - 1));
        Arc::new(Self {
            clock: Arc::new(CoarseClock {
                start: Instant::now(),
                secs: AtomicU32::new(0),
            }),
            timeout_s: u32::try_from(timeout_s).unwrap_or(IN_FLIGHT - 1),
            watches: Mutex::new(Vec::new()),
        })
    }

    /// Watches `stream` from now on (its first request head is due within the timeout).
    pub fn watch(&self, stream: TcpStream) -> (Watched, Arc<Watch>) {
        let watch = Arc::new(Watch {
            since: AtomicU32::new(self.clock.now()),
            killed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            clock: self.clock.clone(),
        });
        if let Ok(mut watches) = self.watches.lock() {
            watches.push(Arc::downgrade(&watch));
        }
        (
            Watched {
                stream,
                watch: watch.clone(),
            },
            watch,
        )
    }

    /// Closes every connection past its deadline; returns how many it closed.
    pub fn sweep(&self) -> usize {
        let now = self.clock.tick();
        let Ok(mut watches) = self.watches.lock() else {
            return 0;
        };
        let mut closed = 0;
        watches.retain(|weak| {
            let Some(watch) = weak.upgrade() else {
                return false;
            };
            let since = watch.since.load(Ordering::Relaxed);
            if since != IN_FLIGHT && now.saturating_sub(since) >= self.timeout_s {
                watch.kill();
                closed += 1;
                return false;
            }
            true
        });
        closed
    }

    /// Sweeps once a second, forever (spawn it on the proxy thread's runtime).
    pub async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let closed = self.sweep();
            if closed > 0 {
                tracing::debug!(closed, "closed stalled client connections");
            }
        }
    }

    /// Connections being watched (alive or not yet swept).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.watches.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// Whether no connection is being watched.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One client connection's deadline state.
pub struct Watch {
    since: AtomicU32,
    killed: AtomicBool,
    waker: AtomicWaker,
    clock: Arc<CoarseClock>,
}

impl Watch {
    /// A complete request head arrived: no deadline while the service works on it.
    pub fn request_started(&self) {
        self.since.store(IN_FLIGHT, Ordering::Relaxed);
    }

    /// The response is handed to the connection: the next head (or write progress) is due
    /// within the timeout.
    pub fn request_done(&self) {
        self.since.store(self.clock.now(), Ordering::Relaxed);
    }

    fn progress(&self) {
        if self.since.load(Ordering::Relaxed) != IN_FLIGHT {
            self.since.store(self.clock.now(), Ordering::Relaxed);
        }
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    fn check(&self) -> io::Result<()> {
        if self.killed.load(Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client connection stalled past the client timeout",
            ))
        } else {
            Ok(())
        }
    }

    /// A write's outcome as the client stream reports it: bytes written count as progress;
    /// Pending parks (see [`Watch::park`]).
    fn after_write(
        &self,
        cx: &Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Pending => {
                self.park(cx)?;
                Poll::Pending
            }
            Poll::Ready(Ok(n)) => {
                self.progress();
                Poll::Ready(Ok(n))
            }
            error => error,
        }
    }

    /// After a Pending poll: be woken by [`Watch::kill`] too, and fail at once if it came
    /// first.
    fn park(&self, cx: &Context<'_>) -> io::Result<()> {
        self.waker.register(cx.waker());
        self.check()
    }
}

/// A client stream that fails with `TimedOut` once its watch is killed.
pub struct Watched {
    stream: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.watch.check()?;
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Pending => {
                self.watch.park(cx)?;
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.watch.check()?;
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch.after_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.watch.check()?;
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.watch.after_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair(list: &Watchlist) -> (Watched, Arc<Watch>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (watched, watch) = list.watch(server);
        (watched, watch, client)
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_head_is_closed_after_the_timeout() {
        let list = Watchlist::new(Duration::from_secs(2));
        let (mut watched, _watch, _client) = pair(&list).await;
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            watched.read(&mut buf).await
        });
        tokio::task::yield_now().await;
        // The clock is coarse: 1 s in, nothing is due yet.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(list.sweep(), 0);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(list.sweep(), 1);
        let error = reader.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(list.is_empty(), "a closed connection leaves the list");
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_runs_while_a_request_is_in_flight() {
        let list = Watchlist::new(Duration::from_secs(1));
        let (_watched, watch, _client) = pair(&list).await;
        watch.request_started();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(list.sweep(), 0);
        watch.request_done();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(list.sweep(), 1, "idle for the timeout after the response");
    }

    #[tokio::test(start_paused = true)]
    async fn write_progress_keeps_a_connection_alive() {
        let list = Watchlist::new(Duration::from_secs(2));
        let (mut watched, watch, mut client) = pair(&list).await;
        watch.request_done();
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(1)).await;
            assert_eq!(list.sweep(), 0);
            watched.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            client.read_exact(&mut byte).await.unwrap();
        }
        assert_eq!(list.len(), 1);
        drop(watched);
        drop(watch);
        assert_eq!(list.sweep(), 0);
        assert!(list.is_empty(), "a dropped connection leaves the list");
    }
}
