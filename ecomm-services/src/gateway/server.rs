//! The gateway's serving threads: N proxy threads, each a single-threaded tokio runtime
//! owning its own upstream connection pool, so a request never crosses threads (nginx's
//! worker model). One acceptor hands every new client connection to the proxy thread with
//! the fewest open connections, so keep-alive clients spread evenly (a shared listening
//! socket lets whichever thread wakes first take a burst of connections). HTTP/1.1
//! keep-alive by hyper, with graceful drain (stop accepting, finish in-flight requests,
//! close idle connections); stalled clients are closed by each thread's [`Watchlist`].

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::client_watch::{Watch, Watchlist};

use super::conn_pool::ConnPool;
use super::proxy::Proxy;
use crate::http::Shutdown;

/// One proxy thread as the acceptor sees it: where to send connections, how many it has.
struct Worker {
    connections: mpsc::UnboundedSender<(std::net::TcpStream, std::net::SocketAddr)>,
    open: Arc<AtomicUsize>,
}

/// How long connections may take.
#[derive(Debug, Clone, Copy)]
pub struct ServeTimeouts {
    /// How long in-flight requests may finish after shutdown.
    pub drain: Duration,
    /// How long a client may take to send a request head, sit idle between requests, or
    /// make no progress reading a response.
    pub client: Duration,
}

/// Runs `threads` proxy threads behind an acceptor on `listener` until `shutdown`; returns
/// when all drained.
pub async fn serve_proxy_threads<F>(
    listener: std::net::TcpListener,
    proxy: Proxy,
    make_pool: F,
    threads: usize,
    shutdown: Shutdown,
    timeouts: ServeTimeouts,
) -> std::io::Result<()>
where
    F: Fn() -> ConnPool + Send + Sync + 'static,
{
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let make_pool = Arc::new(make_pool);
    let mut handles = Vec::new();
    let mut workers = Vec::new();
    for index in 0..threads.max(1) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        workers.push(Worker {
            connections: sender,
            open: open.clone(),
        });
        let proxy = proxy.clone();
        let make_pool = make_pool.clone();
        let shutdown = shutdown.clone();
        let handle = std::thread::Builder::new()
            .name(format!("proxy-{index}"))
            .spawn(move || -> std::io::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let proxy = Arc::new(proxy.with_conn_pool(make_pool()));
                    serve_connections(receiver, open, proxy, shutdown, timeouts).await
                })
            })?;
        handles.push(handle);
    }
    accept(&listener, &workers, &shutdown).await;
    drop(listener);
    drop(workers);
    tokio::task::spawn_blocking(move || {
        for handle in handles {
            match handle.join() {
                Ok(result) => result?,
                Err(_) => return Err(std::io::Error::other("a proxy thread panicked")),
            }
        }
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The next client connection, or None once `shutdown` fires. Accept errors (typically
/// EMFILE) are logged and retried after a short back-off instead of spinning.
async fn next_client(
    listener: &TcpListener,
    shutdown: &Shutdown,
) -> Option<(TcpStream, std::net::SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            () = shutdown.wait() => return None,
        }
    }
}

/// Accepts until `shutdown`, giving each connection to the least loaded worker.
async fn accept(listener: &TcpListener, workers: &[Worker], shutdown: &Shutdown) {
    while let Some((stream, peer)) = next_client(listener, shutdown).await {
        let Some(worker) = workers
            .iter()
            .filter(|w| !w.connections.is_closed())
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            return;
        };
        // Deregistered from this runtime; the proxy thread registers it with its own.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        worker.open.fetch_add(1, Ordering::Relaxed);
        if worker.connections.send((stream, peer)).is_err() {
            worker.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Serves the connections arriving on `connections` in the current runtime until
/// `shutdown` (or the acceptor stops), then drains for at most `drain`.
async fn serve_connections(
    mut connections: mpsc::UnboundedReceiver<(std::net::TcpStream, std::net::SocketAddr)>,
    open: Arc<AtomicUsize>,
    proxy: Arc<Proxy>,
    shutdown: Shutdown,
    timeouts: ServeTimeouts,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let builder = builder();
    let watchlist = Watchlist::guarded(timeouts.client, proxy.head_guard());
    let sweeper = tokio::spawn(watchlist.clone().run());
    loop {
        let (stream, peer) = tokio::select! {
            received = connections.recv() => match received {
                Some(connection) => connection,
                None => break,
            },
            () = shutdown.wait() => break,
        };
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                open.fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(%peer, %error, "cannot register a client connection");
                continue;
            }
        };
        serve_one(
            &builder,
            &graceful,
            Client {
                stream,
                peer,
                open: Some(open.clone()),
            },
            &proxy,
            &watchlist,
        );
    }
    drop(connections);
    drain_all(graceful, timeouts.drain).await;
    sweeper.abort();
    Ok(())
}

/// Serves `proxy` on `listener` in the current runtime until `shutdown`, then drains for at
/// most `drain` (one thread, no acceptor: for embedding and tests).
pub async fn serve_proxy(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: Shutdown,
    timeouts: ServeTimeouts,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let builder = builder();
    let watchlist = Watchlist::guarded(timeouts.client, proxy.head_guard());
    let sweeper = tokio::spawn(watchlist.clone().run());
    while let Some((stream, peer)) = next_client(&listener, &shutdown).await {
        let client = Client {
            stream,
            peer,
            open: None,
        };
        serve_one(&builder, &graceful, client, &proxy, &watchlist);
    }
    drop(listener);
    drain_all(graceful, timeouts.drain).await;
    sweeper.abort();
    Ok(())
}

fn builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Stalled clients are the Watchlist's: no boxed timer per request head.
        .header_read_timeout(None)
        // Head and (already whole) body copied into one buffer: one send, no iovec queue.
        .writev(false)
        .keep_alive(true);
    builder
}

/// A client connection handed to a proxy thread; `open` (the thread's connection count) is
/// decremented when it ends.
struct Client {
    stream: TcpStream,
    peer: std::net::SocketAddr,
    open: Option<Arc<AtomicUsize>>,
}

/// What every request of one connection needs (one Arc clone per request).
struct ConnCtx {
    proxy: Arc<Proxy>,
    watch: Arc<Watch>,
    peer: std::net::SocketAddr,
}

/// Spawns the task serving one client connection, watched by `watchlist`.
fn serve_one(
    builder: &http1::Builder,
    graceful: &GracefulShutdown,
    client: Client,
    proxy: &Arc<Proxy>,
    watchlist: &Watchlist,
) {
    let Client { stream, peer, open } = client;
    let _ = stream.set_nodelay(true);
    let (stream, watch) = watchlist.watch(stream);
    let ctx = Arc::new(ConnCtx {
        proxy: proxy.clone(),
        watch,
        peer,
    });
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let ctx = ctx.clone();
        async move {
            let checked = ctx
                .watch
                .request_started(hyper::body::Body::size_hint(req.body()).exact());
            let refused = if checked {
                None
            } else {
                ctx.proxy.refuse_head(&req)
            };
            let response = match refused {
                Some(refusal) => refusal,
                None => ctx.proxy.handle(req, ctx.peer).await,
            };
            ctx.watch.request_done();
            Ok::<_, Infallible>(response)
        }
    });
    let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%peer, %error, "client connection ended with an error");
        }
        if let Some(open) = open {
            open.fetch_sub(1, Ordering::Relaxed);
        }
    });
}

async fn drain_all(graceful: GracefulShutdown, drain: Duration) {
    tracing::debug!(connections = graceful.count(), "draining");
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain,
            "drain deadline passed; closing remaining connections"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_acceptor_gives_each_connection_to_the_least_loaded_thread() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut receivers = Vec::new();
        let mut workers = Vec::new();
        for _ in 0..2 {
            let (sender, receiver) = mpsc::unbounded_channel();
            receivers.push(receiver);
            workers.push(Worker {
                connections: sender,
                open: Arc::new(AtomicUsize::new(0)),
            });
        }
        // The first worker already serves three connections.
        workers[0].open.store(3, Ordering::Relaxed);
        let shutdown = Shutdown::new();
        let acceptor = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move { accept(&listener, &workers, &shutdown).await })
        };
        let mut clients = Vec::new();
        for _ in 0..5 {
            clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let mut got = [0usize; 2];
        let [first, second] = &mut receivers[..] else {
            unreachable!("two workers")
        };
        while got.iter().sum::<usize>() < 5 {
            tokio::select! {
                Some(_) = first.recv() => got[0] += 1,
                Some(_) = second.recv() => got[1] += 1,
            }
        }
        shutdown.trigger();
        acceptor.await.unwrap();
        // 3+1 vs 0+4 after the fifth connection.
        assert_eq!(got, [1, 4]);
    }
}
