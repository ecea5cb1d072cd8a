//! Retries only where safe: a POST without Idempotency-Key is never sent twice; with a key,
//! or for a GET, the gateway retries on another instance.

mod support;

use support::client;
use support::dead_upstream::DeadUpstream;
use support::ecomm::Ecomm;
use support::upstream::Upstream;

fn order() -> serde_json::Value {
    serde_json::json!({"customer": "alice@example.com", "items": [{"product_id": 1, "quantity": 2}]})
}

#[tokio::test]
async fn a_post_without_idempotency_key_is_not_retried_after_the_upstream_accepted_it() {
    let dead = DeadUpstream::start().await;
    let healthy = Upstream::start("healthy");
    let list = format!("{},{}", dead.addr, healthy.addr);
    let (_gateway, gw) = Ecomm::gateway(&[
        "--product-upstreams",
        &list,
        "--order-upstreams",
        &list,
        "--health-interval-ms",
        "0",
        "--eject-after",
        "1000",
    ]);

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = client()
            .post(format!("http://{gw}/api/orders"))
            .json(&order())
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 502 {
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
    }
    statuses.sort();
    // Round-robin alternates: two reach the dead instance and fail, none is re-sent.
    assert_eq!(statuses, vec![201, 201, 502, 502]);
    assert_eq!(dead.requests(), 2);
    assert_eq!(
        healthy.posts(),
        2,
        "no failed POST was retried on the healthy instance"
    );
}

#[tokio::test]
async fn a_post_with_idempotency_key_and_a_get_are_retried_on_another_instance() {
    let dead = DeadUpstream::start().await;
    let healthy = Upstream::start("healthy");
    let list = format!("{},{}", dead.addr, healthy.addr);
    let (_gateway, gw) = Ecomm::gateway(&[
        "--product-upstreams",
        &list,
        "--order-upstreams",
        &list,
        "--health-interval-ms",
        "0",
        "--eject-after",
        "1000",
    ]);

    for i in 0..4 {
        let response = client()
            .post(format!("http://{gw}/api/orders"))
            .header("Idempotency-Key", format!("key-{i}"))
            .json(&order())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let get = client()
            .get(format!("http://{gw}/api/products/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 200);
    }
    assert_eq!(healthy.posts(), 4);
    assert_eq!(healthy.gets(), 4);
    assert!(
        dead.requests() >= 2,
        "some tries did reach the dead instance first"
    );
}
