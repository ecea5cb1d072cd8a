//! Stalled clients are closed after `--client-timeout-secs`: a slowloris head that never
//! completes, and an idle keep-alive connection; a connection that keeps sending requests
//! stays open, and a request slower than the timeout upstream is not cut.

mod support;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::ecomm::Ecomm;
use support::upstream::Upstream;

/// Reads until EOF (or error); returns what arrived and how long it took.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, started.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection still open after {limit:?}"),
        }
    }
}

#[tokio::test]
async fn slowloris_and_idle_clients_are_closed_busy_ones_are_not() {
    let upstream = Upstream::start("a");
    let addr = upstream.addr.to_string();
    let (_gateway, gw) = Ecomm::gateway(&[
        "--product-upstreams",
        &addr,
        "--order-upstreams",
        &addr,
        "--client-timeout-secs",
        "2",
    ]);

    // A head that never completes.
    let mut slow = TcpStream::connect(gw).await.unwrap();
    slow.write_all(b"GET /api/products HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // An idle keep-alive connection after one answered request.
    let mut idle = TcpStream::connect(gw).await.unwrap();
    idle.write_all(b"GET /api/products/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // A busy connection: a request every 500 ms for 5 s, well past the timeout.
    let busy = tokio::spawn(async move {
        let mut stream = TcpStream::connect(gw).await.unwrap();
        let mut buf = vec![0u8; 8192];
        for _ in 0..10 {
            stream
                .write_all(b"GET /api/products/1 HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let n = stream.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "busy connection cut");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    let (got, took) = read_to_close(&mut slow, Duration::from_secs(10)).await;
    assert!(
        took >= Duration::from_millis(1500),
        "closed too early: {took:?}"
    );
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let (_, took) = read_to_close(&mut idle, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(10));
    busy.await.unwrap();

    // An upstream slower than the client timeout: the request is in flight, not stalled.
    upstream
        .seen
        .slow_ms
        .store(3500, std::sync::atomic::Ordering::SeqCst);
    let mut waiting = TcpStream::connect(gw).await.unwrap();
    waiting
        .write_all(b"GET /api/products/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, took) = read_to_close(&mut waiting, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}
