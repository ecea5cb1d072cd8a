//! Closes client connections that stall: no complete request head for `timeout` (a slowloris
//! client, or a keep-alive connection idle between requests), or a response that makes no
//! write progress for `timeout` (a client that stopped reading). nginx has the same guards
//! (client_header_timeout, keepalive_timeout, send_timeout).
//!
//! hyper's own `header_read_timeout` arms a boxed timer for every request head; here a
//! request costs two relaxed atomic stores instead: each proxy thread runs one sweeper that
//! ticks once a second over the thread's connections and closes those past their deadline,
//! so a stalled connection lives between `timeout` and `timeout` + 1 s.
//!
//! The same client stream checks each request head against the [`RequestLimits`] as it is
//! read ([`HeadScan`]), and answers an oversized head itself (problem+json, then close)
//! without handing it to hyper. It knows where a head starts by counting the body after it:
//! the service tells the request's Content-Length when it starts ([`Watch::request_started`]),
//! and the next head begins right after that many bytes. Where that cannot be known (a
//! chunked body, pipelined requests read ahead of their predecessor's start), the stream
//! stops scanning and the service measures the parsed heads instead.
//!
//! [`RequestLimits`]: super::request_limits::RequestLimits

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::request_limits::{HeadGuard, HeadScan, Scanned, Violation};

/// `since` while the service works on a request (no deadline runs).
const IN_FLIGHT: u32 = u32::MAX;
/// How often the sweeper looks.
const TICK: Duration = Duration::from_secs(1);
/// `body_len` before the service has told the request's body length.
const UNKNOWN: u64 = u64::MAX;
/// Bytes of a refused head read and dropped (so that the close does not reset the refusal
/// away) before the connection is cut, in bytes.
const DRAIN_LIMIT: usize = 1 << 20;

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
    guard: Option<Arc<HeadGuard>>,
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
            guard: None,
        })
    }

    /// A watchlist as [`Watchlist::new`] whose streams also check request heads against
    /// `guard`'s limits as they arrive.
    pub fn guarded(timeout: Duration, guard: Arc<HeadGuard>) -> Arc<Self> {
        let mut list = Self::new(timeout);
        if let Some(list) = Arc::get_mut(&mut list) {
            list.guard = Some(guard);
        }
        list
    }

    /// Watches `stream` from now on (its first request head is due within the timeout).
    pub fn watch(&self, stream: TcpStream) -> (Watched, Arc<Watch>) {
        let watch = Arc::new(Watch {
            since: AtomicU32::new(self.clock.now()),
            killed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            clock: self.clock.clone(),
            body_len: AtomicU64::new(UNKNOWN),
            after_head: AtomicU64::new(0),
            unguarded: AtomicBool::new(self.guard.is_none()),
        });
        if let Ok(mut watches) = self.watches.lock() {
            watches.push(Arc::downgrade(&watch));
        }
        (
            Watched {
                stream,
                watch: watch.clone(),
                guard: self.guard.clone(),
                state: GuardState::Scanning(HeadScan::default()),
                write_blocked: false,
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
    /// Body length of the request whose head was scanned last ([`UNKNOWN`] until its
    /// service starts).
    body_len: AtomicU64,
    /// Bytes read since the end of the head scanned last.
    after_head: AtomicU64,
    /// Whether the stream no longer knows where heads start (the service checks them).
    unguarded: AtomicBool,
}

impl Watch {
    /// A complete request head arrived, its body `body_len` bytes long (None: chunked): no
    /// deadline while the service works on it. Returns whether the client stream checked
    /// this head against the request limits (false: the service must check it).
    pub fn request_started(&self, body_len: Option<u64>) -> bool {
        self.since.store(IN_FLIGHT, Ordering::Relaxed);
        let guarded = !self.unguarded.load(Ordering::Relaxed);
        match body_len {
            // Nothing of the next request read yet: the stream finds where it starts.
            Some(len) if self.after_head.load(Ordering::Relaxed) <= len => {
                self.body_len.store(len, Ordering::Relaxed)
            }
            _ => self.unguarded.store(true, Ordering::Relaxed),
        }
        guarded
    }

    fn in_flight(&self) -> bool {
        self.since.load(Ordering::Relaxed) == IN_FLIGHT
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

/// Where the client stream is in its byte stream, for the request limits.
enum GuardState {
    /// Reading a request head from its first byte.
    Scanning(HeadScan),
    /// Past the end of a head: `after` bytes of its body (and maybe more) read.
    Body { after: u64 },
    /// Lost track of where heads start: the service checks them.
    Off,
    /// A head was refused: `refusal[written..]` still to send, then the client's bytes are
    /// dropped (at most `left` more) until it closes.
    Refused {
        refusal: Vec<u8>,
        written: usize,
        left: usize,
    },
}

impl GuardState {
    /// Follows `read`, the bytes just read; a violation of the head being scanned, if any.
    fn observe(&mut self, watch: &Watch, guard: &HeadGuard, mut read: &[u8]) -> Option<Violation> {
        loop {
            match self {
                Self::Scanning(scan) => {
                    return match scan.feed(&guard.limits, read) {
                        Scanned::More => None,
                        Scanned::End(n) => {
                            let after = (read.len() - n) as u64;
                            watch.body_len.store(UNKNOWN, Ordering::Relaxed);
                            watch.after_head.store(after, Ordering::Relaxed);
                            *self = Self::Body { after };
                            None
                        }
                        Scanned::Over(violation) => Some(violation),
                    };
                }
                Self::Body { after } => {
                    if watch.unguarded.load(Ordering::Relaxed) {
                        *self = Self::Off;
                        return None;
                    }
                    let len = watch.body_len.load(Ordering::Relaxed);
                    let n = read.len() as u64;
                    if len == UNKNOWN || *after + n < len {
                        *after += n;
                        watch.after_head.store(*after, Ordering::Relaxed);
                        return None;
                    }
                    // The body ends in this read (request_started made sure it had not
                    // ended before): the next head starts right after it.
                    let split = usize::try_from(len.saturating_sub(*after)).unwrap_or(read.len());
                    read = &read[split.min(read.len())..];
                    *self = Self::Scanning(HeadScan::default());
                    if read.is_empty() {
                        return None;
                    }
                }
                Self::Off | Self::Refused { .. } => return None,
            }
        }
    }
}

/// A client stream that fails with `TimedOut` once its watch is killed, and refuses request
/// heads over the limits (see the module docs).
pub struct Watched {
    stream: TcpStream,
    watch: Arc<Watch>,
    guard: Option<Arc<HeadGuard>>,
    state: GuardState,
    /// Whether the last write found the socket full (hyper holds unsent response bytes).
    write_blocked: bool,
}

impl Watched {
    /// After a refusal: sends the rest of the refusal, then shuts the write side and reads
    /// and drops what the client still sends; EOF for hyper when the client closes.
    fn poll_refused(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let GuardState::Refused {
            refusal,
            written,
            left,
        } = &mut self.state
        else {
            return Poll::Ready(Ok(()));
        };
        while *written < refusal.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &refusal[*written..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    *written = refusal.len();
                    break;
                }
                Poll::Ready(Ok(n)) => {
                    *written += n;
                    if *written == refusal.len() {
                        let _ = Pin::new(&mut self.stream).poll_shutdown(cx);
                    }
                }
                Poll::Pending => break,
            }
        }
        loop {
            let before = buf.filled().len();
            match Pin::new(&mut self.stream).poll_read(cx, buf) {
                Poll::Pending => {
                    self.watch.park(cx)?;
                    return Poll::Pending;
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len() - before;
                    buf.set_filled(before);
                    if n == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    *left = left.saturating_sub(n);
                    if *left == 0 {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "client kept sending a refused request head",
                        )));
                    }
                }
            }
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.watch.check()?;
        let this = &mut *self;
        if matches!(this.state, GuardState::Refused { .. }) {
            return this.poll_refused(cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Pending => {
                this.watch.park(cx)?;
                return Poll::Pending;
            }
            Poll::Ready(Ok(())) => {}
            error => return error,
        }
        let Some(guard) = &this.guard else {
            return Poll::Ready(Ok(()));
        };
        let Some(violation) = this
            .state
            .observe(&this.watch, guard, &buf.filled()[before..])
        else {
            return Poll::Ready(Ok(()));
        };
        if this.watch.in_flight() || this.write_blocked {
            // A response is still on its way: answering now would overtake it. hyper gets
            // the head, and the service refuses it in turn.
            this.watch.unguarded.store(true, Ordering::Relaxed);
            this.state = GuardState::Off;
            return Poll::Ready(Ok(()));
        }
        tracing::debug!(reason = violation.reason(), "refusing a request head");
        buf.set_filled(before);
        this.state = GuardState::Refused {
            refusal: guard.refusal(violation),
            written: 0,
            left: DRAIN_LIMIT,
        };
        this.poll_refused(cx, buf)
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
        self.write_blocked = polled.is_pending();
        self.watch.after_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.watch.check()?;
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.write_blocked = polled.is_pending();
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
        watch.request_started(Some(0));
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
