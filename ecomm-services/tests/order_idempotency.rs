//! Idempotent order creation against real PostgreSQL and a real product service: a replay
//! returns the original response, a reused key with another body is a 422, no key is a 400,
//! and ten concurrent duplicates create exactly one order.

use ecomm_services::fixtures::{or_skip, OrderInstance, Postgres, ProductInstance};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn count(database_url: &str, table: &str) -> i64 {
    let (db, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

async fn post_order(base: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = client().post(format!("{base}/api/orders")).json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_returns_the_original_response_and_another_body_is_rejected() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let product = ProductInstance::start(&pg, None).await.unwrap();
    let order = OrderInstance::start(&pg, &product).await.unwrap();
    let base = order.url("");
    let body =
        json!({"customer": "alice@example.com", "items": [{"product_id": 1, "quantity": 2}]});

    let first = post_order(&base, Some("key-1"), &body).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replay").is_none());
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    let first_body = first.text().await.unwrap();
    let created: Value = serde_json::from_str(&first_body).unwrap();
    assert_eq!(
        location,
        format!("/api/orders/{}", created["id"].as_str().unwrap())
    );
    assert_eq!(created["status"], "placed");
    assert_eq!(created["customer"], "alice@example.com");
    assert_eq!(
        created["items"][0]["unit_price_cents"], 4999,
        "price from the catalogue"
    );
    assert_eq!(created["total_cents"], 9998);

    // Same key, same content in another JSON layout: the original response, byte for byte.
    let same =
        json!({"items": [{"quantity": 2, "product_id": 1}], "customer": "alice@example.com"});
    let replay = post_order(&base, Some("key-1"), &same).await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replay"], "true");
    assert_eq!(replay.headers()["location"].to_str().unwrap(), location);
    assert_eq!(replay.text().await.unwrap(), first_body);

    let other =
        json!({"customer": "alice@example.com", "items": [{"product_id": 1, "quantity": 3}]});
    let conflict = post_order(&base, Some("key-1"), &other).await;
    assert_eq!(conflict.status(), 422);
    assert_eq!(
        conflict.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = conflict.json().await.unwrap();
    assert_eq!(problem["type"], "urn:ecomm:problem:idempotency-key-reused");

    assert_eq!(count(&order.database_url, "orders").await, 1);
    assert_eq!(count(&order.database_url, "idempotency_keys").await, 1);

    let fetched: Value = client()
        .get(order.url(&location))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, created, "GET shows the stored order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_without_a_key_is_a_400_and_writes_nothing() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let product = ProductInstance::start(&pg, None).await.unwrap();
    let order = OrderInstance::start(&pg, &product).await.unwrap();
    let body = json!({"customer": "bob@example.com", "items": [{"product_id": 2, "quantity": 1}]});

    let response = post_order(&order.url(""), None, &body).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    let blank = post_order(&order.url(""), Some(" "), &body).await;
    assert_eq!(blank.status(), 400);
    assert_eq!(count(&order.database_url, "orders").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_duplicates_create_exactly_one_order() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let product = ProductInstance::start(&pg, None).await.unwrap();
    let order = OrderInstance::start(&pg, &product).await.unwrap();
    let base = order.url("");
    let body = json!({"customer": "carol@example.com",
                      "items": [{"product_id": 5, "quantity": 1}, {"product_id": 7, "quantity": 3}]});

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (base, body, barrier) = (base.clone(), body.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let response = post_order(&base, Some("same-key"), &body).await;
            let status = response.status().as_u16();
            let replayed = response.headers().contains_key("idempotent-replay");
            (status, replayed, response.text().await.unwrap())
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert!(
        results.iter().all(|(status, _, _)| *status == 201),
        "{results:?}"
    );
    let first_body = &results[0].2;
    assert!(
        results.iter().all(|(_, _, body)| body == first_body),
        "every caller sees one order"
    );
    assert_eq!(
        results.iter().filter(|(_, replayed, _)| !replayed).count(),
        1
    );
    assert_eq!(count(&order.database_url, "orders").await, 1);
    assert_eq!(count(&order.database_url, "order_items").await, 2);
    assert_eq!(count(&order.database_url, "idempotency_keys").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_forgotten_and_its_order_kept() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let product = ProductInstance::start(&pg, None).await.unwrap();
    let order = OrderInstance::start_with(
        &pg,
        &product.url(""),
        &[
            "--idempotency-key-ttl-secs",
            "1",
            "--idempotency-sweep-secs",
            "1",
        ],
    )
    .await
    .unwrap();
    let base = order.url("");
    let body = json!({"customer": "dave@example.com", "items": [{"product_id": 3, "quantity": 1}]});
    let first = post_order(&base, Some("short-lived"), &body).await;
    assert_eq!(first.status(), 201);
    let first_id = first.json::<Value>().await.unwrap()["id"].clone();

    // The sweeper runs every second and deletes keys older than one second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count(&order.database_url, "idempotency_keys").await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the key was not expired within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        count(&order.database_url, "orders").await,
        1,
        "the order stays"
    );

    // The same key with another body is now a new request, not a 422.
    let other =
        json!({"customer": "dave@example.com", "items": [{"product_id": 3, "quantity": 2}]});
    let second = post_order(&base, Some("short-lived"), &other).await;
    assert_eq!(second.status(), 201);
    assert!(second.headers().get("idempotent-replay").is_none());
    assert_ne!(second.json::<Value>().await.unwrap()["id"], first_id);
    assert_eq!(count(&order.database_url, "orders").await, 2);

    let metrics = client()
        .get(order.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("idempotency_keys_expired_total") && l.ends_with(" 1")),
        "{metrics}"
    );
}
