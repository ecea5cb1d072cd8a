//! The order API's rules against real PostgreSQL and a real product service: validation errors
//! write nothing, the cancel state machine, listing by customer, and 4xx problem+json for
//! malformed and oversize bodies.

use ecomm_services::fixtures::{or_skip, OrderInstance, Postgres, ProductInstance};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// (orders, order_items, idempotency_keys) row counts.
async fn row_counts(database_url: &str) -> (i64, i64, i64) {
    let (db, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items),
                    (SELECT count(*) FROM idempotency_keys)",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

async fn post_raw(
    order: &OrderInstance,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String, Value) {
    let response = client()
        .post(order.url("/api/orders"))
        .header("Idempotency-Key", key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

async fn place(order: &OrderInstance, key: &str, body: Value) -> Value {
    let (status, _, created) = post_raw(
        order,
        key,
        "application/json",
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_orders_write_nothing_and_say_why() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let product = ProductInstance::start(&pg, None).await.unwrap();
    let order = OrderInstance::start(&pg, &product).await.unwrap();
    place(
        &order,
        "baseline",
        json!({"customer": "dan@example.com", "items": [{"product_id": 1, "quantity": 1}]}),
    )
    .await;
    let before = row_counts(&order.database_url).await;

    let too_many: Vec<Value> = (1..=51)
        .map(|id| json!({"product_id": id, "quantity": 1}))
        .collect();
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (br#"{"customer":"dan@example.com","items":[{"product_id":999,"quantity":1}]}"#.to_vec(), "application/json", 422, "product_id 999"),
        (br#"{"customer":"dan@example.com","items":[{"product_id":1,"quantity":0}]}"#.to_vec(), "application/json", 422, "quantity 0"),
        (br#"{"customer":"dan@example.com","items":[{"product_id":1,"quantity":1001}]}"#.to_vec(), "application/json", 422, "quantity 1001"),
        (br#"{"customer":"dan@example.com","items":[]}"#.to_vec(), "application/json", 422, "0 lines"),
        (serde_json::to_vec(&json!({"customer": "dan@example.com", "items": too_many})).unwrap(), "application/json", 422, "51 lines"),
        (br#"{"customer":"not-an-email","items":[{"product_id":1,"quantity":1}]}"#.to_vec(), "application/json", 422, "not-an-email"),
        (br#"{"customer":"dan@example.com","items":[{"product_id":1,"quantity":1,"unit_price_cents":1}]}"#.to_vec(), "application/json", 422, "unit_price_cents"),
        (br#"{"customer":"dan@example.com","items":[{"product_id":1,"quantity":"2"}]}"#.to_vec(), "application/json", 422, ""),
        (br#"{"customer": "dan@example.com", "items": ["#.to_vec(), "application/json", 400, ""),
        (b"customer=dan".to_vec(), "application/x-www-form-urlencoded", 415, ""),
        (vec![b' '; 70_000], "application/json", 413, ""),
    ];
    for (i, (body, content_type, expected_status, expected_detail)) in cases.into_iter().enumerate()
    {
        let (status, got_type, problem) =
            post_raw(&order, &format!("bad-{i}"), content_type, body).await;
        assert_eq!(status, expected_status, "case {i}: {problem}");
        assert_eq!(got_type, "application/problem+json", "case {i}");
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:ecomm:problem:"),
            "case {i}"
        );
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(expected_detail),
            "case {i}: {detail:?} should mention {expected_detail:?}"
        );
    }
    assert_eq!(
        row_counts(&order.database_url).await,
        before,
        "no rejected request wrote a row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_can_be_cancelled_once() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let product = ProductInstance::start(&pg, None).await.unwrap();
    let order = OrderInstance::start(&pg, &product).await.unwrap();
    let created = place(
        &order,
        "k",
        json!({"customer": "erin@example.com", "items": [{"product_id": 4, "quantity": 3}]}),
    )
    .await;
    let cancel_url = order.url(&format!(
        "/api/orders/{}/cancel",
        created["id"].as_str().unwrap()
    ));

    let first = client().post(&cancel_url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let cancelled: Value = first.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["total_cents"], created["total_cents"]);

    let second = client().post(&cancel_url).send().await.unwrap();
    assert_eq!(second.status(), 409);
    assert_eq!(second.headers()["content-type"], "application/problem+json");
    let problem: Value = second.json().await.unwrap();
    assert_eq!(problem["type"], "urn:ecomm:problem:invalid-transition");

    let missing = client()
        .post(order.url("/api/orders/00000000-0000-4000-8000-000000000000/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let not_a_uuid = client()
        .get(order.url("/api/orders/42"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_uuid.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_listed_per_customer_newest_first() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let product = ProductInstance::start(&pg, None).await.unwrap();
    let order = OrderInstance::start(&pg, &product).await.unwrap();
    for (i, customer) in ["fay@example.com", "gus@example.com", "fay@example.com"]
        .iter()
        .enumerate()
    {
        place(
            &order,
            &format!("list-{i}"),
            json!({"customer": customer, "items": [{"product_id": i + 1, "quantity": 1}]}),
        )
        .await;
    }
    let page: Value = client()
        .get(order.url("/api/orders?customer=fay@example.com"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 2);
    assert_eq!(page["page"], 1);
    assert_eq!(page["size"], 20);
    let items = page["items"].as_array().unwrap();
    assert!(items.iter().all(|o| o["customer"] == "fay@example.com"));
    assert_eq!(items.len(), 2);
    let bad = client()
        .get(order.url("/api/orders?size=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
