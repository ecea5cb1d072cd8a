//! Graceful drain: SIGTERM lets an in-flight request finish, deregisters, and exits 0.

mod support;

use std::time::Duration;

use support::ecomm::Ecomm;
use support::upstream::Upstream;
use support::{client, eventually};

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_deregisters() {
    let (_registry, registry, _dns) = Ecomm::registry(&[]);
    let upstream = Upstream::start("a");
    upstream
        .seen
        .slow_ms
        .store(700, std::sync::atomic::Ordering::SeqCst);
    let addr = upstream.addr.to_string();
    let registry_url = format!("http://{registry}");
    let (mut gateway, gw) = Ecomm::gateway(&[
        "--product-upstreams",
        &addr,
        "--order-upstreams",
        &addr,
        "--registry-url",
        &registry_url,
        "--registry-token",
        support::TOKEN,
    ]);
    eventually("the gateway to register", || async {
        !support::resolve(registry, "gateway").await["instances"]
            .as_array()
            .unwrap()
            .is_empty()
    })
    .await;

    let in_flight = tokio::spawn(async move {
        client()
            .get(format!("http://{gw}/api/products/1"))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    gateway.terminate();

    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "the in-flight request completed");
    assert!(gateway.wait_exit(), "exit status 0 after draining");
    assert!(support::resolve(registry, "gateway").await["instances"]
        .as_array()
        .unwrap()
        .is_empty());
}
