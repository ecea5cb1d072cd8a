//! Failover: an instance dying under load costs no client a failed response.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::client;
use support::ecomm::Ecomm;
use support::upstream::Upstream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_instance_under_continuous_gets_fails_no_request() {
    let mut upstreams: Vec<Upstream> = ["a", "b", "c"].iter().map(|n| Upstream::start(n)).collect();
    let list = upstreams
        .iter()
        .map(|u| u.addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let (_gateway, gw) = Ecomm::gateway(&[
        "--product-upstreams",
        &list,
        "--order-upstreams",
        &list,
        "--health-interval-ms",
        "200",
    ]);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for worker in 0..8 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let client = client();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                match client
                    .get(format!("http://{gw}/api/products/{worker}-{i}"))
                    .send()
                    .await
                {
                    Ok(response) if response.status() == 200 => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(response) => {
                        let status = response.status();
                        let body = response.text().await.unwrap_or_default();
                        failed.lock().unwrap().push(format!("{status} {body}"));
                    }
                    Err(error) => failed.lock().unwrap().push(error.to_string()),
                }
            }
        }));
    }

    // Traffic flows to all three, then one dies mid-stream, then traffic keeps flowing.
    support::eventually("traffic on every instance", || {
        let ready = upstreams.iter().all(|u| u.gets() > 50);
        async move { ready }
    })
    .await;
    upstreams[1].kill();
    let after_kill = ok.load(Ordering::SeqCst);
    support::eventually("500 more responses after the kill", || {
        let done = ok.load(Ordering::SeqCst) > after_kill + 500;
        async move { done }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }

    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} failed responses: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok.load(Ordering::SeqCst) > 650);
    let survivors = upstreams[0].gets() + upstreams[2].gets();
    assert!(survivors > 500, "the survivors took over");
    // The dead instance really was tried after it died: its failures were absorbed by retries.
    let metrics = client()
        .get(format!("http://{gw}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dead = upstreams[1].addr.to_string();
    let failures: u64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("gateway_upstream_failures_total")
                && l.contains(&dead)
                && l.contains("product")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(failures >= 1, "{metrics}");
}
