//! Discovery backends: the registry watch (instances appear and leave as they register and
//! deregister), and DNS names re-resolved periodically.

mod support;

use support::ecomm::Ecomm;
use support::upstream::Upstream;
use support::{client, eventually, register};

#[tokio::test]
async fn the_gateway_follows_the_registry() {
    let (_registry, registry, _dns) = Ecomm::registry(&[]);
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let order = Upstream::start("order");
    let registry_url = format!("http://{registry}");
    let (_gateway, gw) = Ecomm::gateway(&[
        "--registry-url",
        &registry_url,
        "--registry-token",
        support::TOKEN,
    ]);

    // Nothing registered yet: 503.
    let none = client()
        .get(format!("http://{gw}/api/products/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 503);

    assert_eq!(
        register(registry, "product", "a", "127.0.0.1", a.addr.port(), 60)
            .await
            .status(),
        201
    );
    assert_eq!(
        register(
            registry,
            "order",
            "order-1",
            "127.0.0.1",
            order.addr.port(),
            60
        )
        .await
        .status(),
        201
    );
    eventually("product a to be routed", || async {
        client()
            .get(format!("http://{gw}/api/products/1"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;

    assert_eq!(
        register(registry, "product", "b", "127.0.0.1", b.addr.port(), 60)
            .await
            .status(),
        201
    );
    eventually("product b to receive traffic", || async {
        client()
            .get(format!("http://{gw}/api/products/1"))
            .send()
            .await
            .unwrap();
        b.gets() > 0
    })
    .await;

    // Deregister a: traffic goes to b only.
    let deleted = client()
        .delete(format!("http://{registry}/v1/services/product/instances/a"))
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    eventually("a to leave the rotation", || async {
        let before = a.gets();
        for _ in 0..4 {
            client()
                .get(format!("http://{gw}/api/products/1"))
                .send()
                .await
                .unwrap();
        }
        a.gets() == before
    })
    .await;

    // The gateway registered itself too.
    let gateways = support::resolve(registry, "gateway").await;
    assert_eq!(gateways["instances"][0]["port"], gw.port());
}

#[tokio::test]
async fn dns_names_are_resolved_to_instances() {
    let a = Upstream::start("a");
    let name = format!("localhost:{}", a.addr.port());
    let (_gateway, gw) = Ecomm::gateway(&["--product-dns", &name, "--order-dns", &name]);
    let response = client()
        .get(format!("http://{gw}/api/products/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["instance"], "a");
}

#[tokio::test]
async fn a_dns_name_without_port_is_rejected_at_start() {
    let mut gateway = Ecomm::start(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--product-dns",
        "tasks.product",
        "--order-upstreams",
        "127.0.0.1:1",
    ]);
    assert!(!gateway.wait_exit());
}
