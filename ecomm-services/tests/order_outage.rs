//! PostgreSQL going away makes the order service answer 503 problem+json (bounded waits, no
//! hang), and it recovers when PostgreSQL returns.

use std::time::Duration;

use ecomm_services::fixtures::{or_skip, OrderInstance, Postgres, ProductInstance};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    // A hang would fail the test through this timeout instead of blocking it.
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_gives_503_problems_and_recovery_follows() {
    let Some(mut pg) = or_skip(Postgres::start()) else {
        return;
    };
    let product = ProductInstance::start(&pg, None).await.unwrap();
    let order = OrderInstance::start_with(
        &pg,
        &product.url(""),
        &[
            "--db-connect-timeout-ms",
            "500",
            "--db-statement-timeout-ms",
            "1000",
        ],
    )
    .await
    .unwrap();
    let body = json!({"customer": "hal@example.com", "items": [{"product_id": 1, "quantity": 1}]});
    let created: Value = client()
        .post(order.url("/api/orders"))
        .header("Idempotency-Key", "before")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_url = order.url(&format!("/api/orders/{}", created["id"].as_str().unwrap()));

    pg.stop().unwrap();
    for response in [
        client().get(&order_url).send().await.unwrap(),
        client()
            .post(order.url("/api/orders"))
            .header("Idempotency-Key", "during")
            .json(&body)
            .send()
            .await
            .unwrap(),
        client().get(order.url("/readyz")).send().await.unwrap(),
    ] {
        assert_eq!(response.status(), 503);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "urn:ecomm:problem:unavailable");
    }
    let live = client().get(order.url("/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200, "the process itself stays live");

    pg.restart().unwrap();
    let fetched = client().get(&order_url).send().await.unwrap();
    assert_eq!(
        fetched.status(),
        200,
        "the pool reconnects after PostgreSQL returns"
    );
    let fetched: Value = fetched.json().await.unwrap();
    assert_eq!(fetched["id"], created["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hanging_gives_503_within_the_operation_deadline_not_a_hang() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let product = ProductInstance::start(&pg, None).await.unwrap();
    let order = OrderInstance::start_with(
        &pg,
        &product.url(""),
        &[
            "--db-connect-timeout-ms",
            "500",
            "--db-statement-timeout-ms",
            "1000",
        ],
    )
    .await
    .unwrap();
    let list = order.url("/api/orders?customer=ike@example.com");
    assert_eq!(client().get(&list).send().await.unwrap().status(), 200);

    pg.freeze();
    let response = client().get(&list).send().await.unwrap();
    assert_eq!(
        response.status(),
        503,
        "a hung PostgreSQL is cut off by the deadline"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let posted = client()
        .post(order.url("/api/orders"))
        .header("Idempotency-Key", "frozen")
        .json(&json!({"customer": "ike@example.com", "items": [{"product_id": 1, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 503);

    pg.thaw();
    let mut status = 0;
    for _ in 0..100 {
        status = client().get(&list).send().await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 200,
        "service recovers once PostgreSQL answers again"
    );
}
