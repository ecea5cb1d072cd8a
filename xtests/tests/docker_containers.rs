//! The stack as containers (testcontainers): every seed node in its own container on one
//! user-defined network, the gateway published on 127.0.0.1.
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the assertion

use serde_json::json;
use xtests::docker::containers::ContainerStack;
use xtests::docker::docker_ready;
use xtests::docker::http::{get, request};
use xtests::docker::run::leftovers;

/// Sum of product's `/api/products/{id}` request counters in a /metrics page.
fn product_reads(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("http_requests_total{") && l.contains("route=\"/api/products/{id}\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_in_containers_serves_caches_orders_idempotently_and_round_robins() {
    if !docker_ready("the testcontainers stack") {
        return;
    }
    let stack = ContainerStack::start().await.unwrap();
    let gw = stack.gateway;
    assert!(gw.ip().is_loopback(), "gateway published on {gw}");

    // A list page: a miss, then a hit from Redis.
    let first = get(gw, "/api/products?page=1&size=5").await.unwrap();
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("x-cache"), Some("miss"));
    assert_eq!(first.json().unwrap()["items"].as_array().unwrap().len(), 5);
    let second = get(gw, "/api/products?page=1&size=5").await.unwrap();
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-cache"), Some("hit"));
    assert_eq!(first.body, second.body);

    // An order with an Idempotency-Key: 201, and the replay returns the same order.
    let body =
        json!({"customer": "alice@example.com", "items": [{"product_id": 1, "quantity": 2}]});
    let key = format!("docker-{}", stack.run_id());
    let headers = [("Idempotency-Key", key.as_str())];
    let created = request(gw, "POST", "/api/orders", &headers, Some(&body))
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.body);
    let order = created.json().unwrap();
    assert_eq!(order["total_cents"], 2 * 4999);
    let replay = request(gw, "POST", "/api/orders", &headers, Some(&body))
        .await
        .unwrap();
    assert_eq!(replay.status, 201, "{}", replay.body);
    assert_eq!(replay.json().unwrap()["id"], order["id"]);

    // Round-robin: 20 reads through the gateway reach both product containers.
    let mut before = Vec::new();
    for name in &stack.product_names {
        let addr = stack.published(name, 8001).await.unwrap();
        before.push((
            addr,
            product_reads(&get(addr, "/metrics").await.unwrap().body),
        ));
    }
    for i in 0..20 {
        let r = get(gw, &format!("/api/products/{}", 1 + i % 3))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for (addr, was) in before {
        let now = product_reads(&get(addr, "/metrics").await.unwrap().body);
        assert!(
            now > was,
            "product at {addr} served none of the 20 reads ({was} -> {now})"
        );
    }

    let run = stack.run_id().to_string();
    drop(stack);
    assert_eq!(leftovers(&run).await.unwrap(), Vec::<String>::new());
}
