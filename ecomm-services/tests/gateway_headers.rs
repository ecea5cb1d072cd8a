//! Header handling: X-Request-Id propagated or generated, X-Forwarded-For appended,
//! hop-by-hop headers stripped in both directions.

mod support;

use support::client;
use support::ecomm::Ecomm;
use support::upstream::Upstream;

#[tokio::test]
async fn request_ids_are_propagated_or_generated() {
    let upstream = Upstream::start("a");
    let addr = upstream.addr.to_string();
    let (_gateway, gw) =
        Ecomm::gateway(&["--product-upstreams", &addr, "--order-upstreams", &addr]);

    let given = client()
        .get(format!("http://{gw}/api/products/1"))
        .header("X-Request-Id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-123");
    assert_eq!(
        upstream.seen.last_headers.lock().unwrap()["x-request-id"],
        "trace-me-123"
    );

    let generated = client()
        .get(format!("http://{gw}/api/products/1"))
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id} is a UUID");
    assert_eq!(
        upstream.seen.last_headers.lock().unwrap()["x-request-id"],
        id.as_str()
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways_and_forwarded_for_is_appended() {
    let upstream = Upstream::start("a");
    let addr = upstream.addr.to_string();
    let (_gateway, gw) =
        Ecomm::gateway(&["--product-upstreams", &addr, "--order-upstreams", &addr]);

    let response = client()
        .get(format!("http://{gw}/api/products/1"))
        .header("Connection", "keep-alive, x-client-hop")
        .header("x-client-hop", "secret")
        .header("Keep-Alive", "timeout=5")
        .header("Proxy-Authorization", "Basic Zm9vOmJhcg==")
        .header("X-Forwarded-For", "203.0.113.7")
        .header("x-end-to-end", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let seen = upstream.seen.last_headers.lock().unwrap().clone();
    assert!(!seen.contains_key("x-client-hop"));
    assert!(!seen.contains_key("keep-alive"));
    assert!(!seen.contains_key("proxy-authorization"));
    assert_eq!(seen["x-end-to-end"], "kept");
    assert_eq!(seen["x-forwarded-for"], "203.0.113.7, 127.0.0.1");

    assert!(!response.headers().contains_key("x-upstream-hop"));
    assert!(!response.headers().contains_key("keep-alive"));
    assert_eq!(response.headers()["x-end-to-end"], "kept");
}
