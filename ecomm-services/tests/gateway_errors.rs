//! Errors the gateway answers itself, all as problem+json: 413, 4xx for malformed input,
//! 404 for unknown routes, 503 when every instance is down, 504 on timeouts.

mod support;

use support::client;
use support::ecomm::Ecomm;
use support::raw_http::{chunked_post, send_raw};
use support::upstream::Upstream;

async fn assert_problem(response: reqwest::Response, status: u16, slug: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().contains_key("x-request-id"));
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["type"], format!("urn:ecomm:problem:{slug}"));
    assert_eq!(problem["status"], status);
}

#[tokio::test]
async fn oversize_bodies_get_413_and_never_reach_the_upstream() {
    let upstream = Upstream::start("a");
    let addr = upstream.addr.to_string();
    let (_gateway, gw) = Ecomm::gateway(&[
        "--product-upstreams",
        &addr,
        "--order-upstreams",
        &addr,
        "--max-body-bytes",
        "1024",
    ]);
    let big = format!("{{\"customer\":\"{}\"}}", "x".repeat(4096));

    let declared = client()
        .post(format!("http://{gw}/api/orders"))
        .header("content-type", "application/json")
        .header("Idempotency-Key", "k1")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_problem(declared, 413, "payload-too-large").await;

    let chunked = send_raw(gw, &chunked_post("/api/orders", big.as_bytes())).await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    assert!(chunked.contains("application/problem+json"), "{chunked}");
    assert!(
        chunked.contains("urn:ecomm:problem:payload-too-large"),
        "{chunked}"
    );
    assert_eq!(upstream.posts(), 0);
}

#[tokio::test]
async fn malformed_json_gets_a_4xx_problem_and_unknown_routes_a_404_problem() {
    let upstream = Upstream::start("a");
    let addr = upstream.addr.to_string();
    let (_gateway, gw) =
        Ecomm::gateway(&["--product-upstreams", &addr, "--order-upstreams", &addr]);

    let malformed = client()
        .post(format!("http://{gw}/api/orders"))
        .header("content-type", "application/json")
        .body("{\"customer\": ")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400, "bad-request").await;
    assert_eq!(upstream.posts(), 0);

    let unknown = client()
        .get(format!("http://{gw}/api/nothing"))
        .send()
        .await
        .unwrap();
    assert_problem(unknown, 404, "not-found").await;
    let prefix_lookalike = client()
        .get(format!("http://{gw}/api/productsx"))
        .send()
        .await
        .unwrap();
    assert_problem(prefix_lookalike, 404, "not-found").await;
}

#[tokio::test]
async fn all_instances_down_gives_503() {
    let mut a = Upstream::start("a");
    let mut b = Upstream::start("b");
    let list = format!("{},{}", a.addr, b.addr);
    let (_gateway, gw) = Ecomm::gateway(&[
        "--product-upstreams",
        &list,
        "--order-upstreams",
        &list,
        "--health-interval-ms",
        "100",
    ]);
    assert_eq!(
        client()
            .get(format!("http://{gw}/api/products/1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    a.kill();
    b.kill();
    for _ in 0..5 {
        let response = client()
            .get(format!("http://{gw}/api/products/1"))
            .send()
            .await
            .unwrap();
        assert_problem(response, 503, "unavailable").await;
    }
    // Once the active checks notice, the gateway itself reports not ready.
    support::eventually("the gateway to report not ready", || async {
        client()
            .get(format!("http://{gw}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 503
    })
    .await;
}

#[tokio::test]
async fn a_slow_upstream_gives_504() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let list = format!("{},{}", a.addr, b.addr);
    let (_gateway, gw) = Ecomm::gateway(&[
        "--product-upstreams",
        &list,
        "--order-upstreams",
        &list,
        "--try-timeout-ms",
        "200",
        "--total-timeout-ms",
        "500",
    ]);
    let response = client()
        .get(format!("http://{gw}/api/products/slow"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 504, "gateway-timeout").await;
    // The gateway still serves the fast path afterwards.
    let ok = client()
        .get(format!("http://{gw}/api/products/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
