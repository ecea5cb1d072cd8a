//! The gateway's serving threads: N proxy threads, each a single-threaded tokio runtime
//! accepting on the shared listening socket and owning its own upstream connection pool, so
//! a request never crosses threads (nginx's worker model). HTTP/1.1 keep-alive by hyper,
//! with graceful drain (stop accepting, finish in-flight requests, close idle connections).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::conn_pool::ConnPool;
use super::proxy::Proxy;
use crate::http::Shutdown;

/// Runs `threads` proxy threads on `listener` until `shutdown`; returns when all drained.
pub async fn serve_proxy_threads<F>(
    listener: std::net::TcpListener,
    proxy: Proxy,
    make_pool: F,
    threads: usize,
    shutdown: Shutdown,
    drain: Duration,
) -> std::io::Result<()>
where
    F: Fn() -> ConnPool + Send + Sync + 'static,
{
    listener.set_nonblocking(true)?;
    let make_pool = Arc::new(make_pool);
    let mut handles = Vec::new();
    for index in 0..threads.max(1) {
        let listener = listener.try_clone()?;
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
                    let listener = TcpListener::from_std(listener)?;
                    let proxy = Arc::new(proxy.with_conn_pool(make_pool()));
                    serve_proxy(listener, proxy, shutdown, drain).await
                })
            })?;
        handles.push(handle);
    }
    drop(listener);
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

/// Serves `proxy` on `listener` in the current runtime until `shutdown`, then drains for at
/// most `drain`.
pub async fn serve_proxy(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: Shutdown,
    drain: Duration,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(error) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = shutdown.wait() => break,
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let service = service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, peer).await) }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "client connection ended with an error");
            }
        });
    }
    drop(listener);
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
    Ok(())
}
