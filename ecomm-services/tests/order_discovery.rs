//! The real `ecomm product` binary registers itself with a real registry, the order service
//! finds it there (no --product-url) and prices orders through it, and a drained product
//! deregisters so orders then get a 503 instead of a hang.

mod support;

use ecomm_services::fixtures::{or_skip, OrderInstance, Postgres};
use serde_json::{json, Value};
use support::ecomm::Ecomm;
use support::{client, eventually, resolve, TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_find_the_product_service_through_the_registry() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let (_registry, registry_http, _dns) = Ecomm::registry(&[]);
    let registry_url = format!("http://{registry_http}");
    let product_db = pg.url("catalogue_via_registry");
    let mut product = Ecomm::start(&[
        "product",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &product_db,
        "--redis-url",
        "",
        "--registry-url",
        &registry_url,
        "--registry-token",
        TOKEN,
        "--instance-id",
        "product-1",
    ]);
    let product_addr = product.logged_addr("listening");
    eventually("the product instance is registered", || async {
        support::ids(&resolve(registry_http, "product").await) == ["product-1"]
    })
    .await;
    let view = resolve(registry_http, "product").await;
    assert_eq!(view["instances"][0]["port"], product_addr.port());

    let order = OrderInstance::start_with(
        &pg,
        "",
        &[
            "--registry-url",
            &registry_url,
            "--registry-token",
            TOKEN,
            "--product-timeout-ms",
            "1000",
        ],
    )
    .await
    .unwrap();
    let body = json!({"customer": "ivy@example.com", "items": [{"product_id": 2, "quantity": 1}]});
    // The order service's registry watch may not have delivered the instance yet.
    let created = post_until(&order, "via-registry", &body, 201).await;
    assert_eq!(created["items"][0]["unit_price_cents"], 6999);

    product.terminate();
    assert!(
        product.wait_exit(),
        "the product service drains and exits cleanly"
    );
    eventually("the drained product deregistered", || async {
        support::ids(&resolve(registry_http, "product").await).is_empty()
    })
    .await;
    let other = json!({"customer": "ivy@example.com", "items": [{"product_id": 3, "quantity": 1}]});
    let problem = post_until(&order, "no-product", &other, 503).await;
    assert_eq!(problem["type"], "urn:ecomm:problem:unavailable");
}

/// POSTs the order (same key each time) until the status is `want` (15 s at most); returns
/// the JSON body of that response.
async fn post_until(order: &OrderInstance, key: &str, body: &Value, want: u16) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let response = client()
            .post(order.url("/api/orders"))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        if status == want {
            return json;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {status} instead of {want}: {json}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
