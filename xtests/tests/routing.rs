//! Routing through the whole stack: reads through the gateway reach both product instances
//! round-robin and hit Redis from the second read on; an order posted through the gateway
//! lands as a row in PostgreSQL, checked with a real SQL query.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use xtests::http::Request;
use xtests::Lab;

#[test]
fn reads_spread_over_both_product_instances_and_the_second_read_is_a_cache_hit() {
    if !xtests::privileged("the routing test") {
        return;
    }
    let lab = Lab::start().unwrap();

    let first = lab.get("/api/products?page=1&size=5").unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    let items = first.json().unwrap()["items"].as_array().cloned().unwrap();
    assert!(
        !items.is_empty(),
        "the catalogue is seeded: {}",
        first.text()
    );
    assert_eq!(first.header("x-cache"), Some("miss"));

    let second = lab.get("/api/products?page=1&size=5").unwrap();
    assert_eq!(second.status, 200);
    assert_eq!(
        second.header("x-cache"),
        Some("hit"),
        "the second read comes from Redis"
    );
    assert_eq!(
        second.json().unwrap()["items"],
        first.json().unwrap()["items"]
    );

    for _ in 0..20 {
        assert_eq!(lab.get("/api/products?page=1&size=5").unwrap().status, 200);
    }
    let served_1 = lab.requests_served("product-1", "/api/products").unwrap();
    let served_2 = lab.requests_served("product-2", "/api/products").unwrap();
    assert!(
        served_1 > 0 && served_2 > 0,
        "round-robin reaches both: product-1 {served_1}, product-2 {served_2}"
    );
    assert_eq!(served_1 + served_2, 22, "every read was served once");

    assert_eq!(lab.shutdown(), Vec::<String>::new());
}

#[test]
fn an_order_posted_through_the_gateway_is_a_row_in_postgresql() {
    if !xtests::privileged("the routing test") {
        return;
    }
    let lab = Lab::start().unwrap();
    let customer = format!("alice-{}@example.com", lab.run_id());

    let created = lab
        .send(
            &Request::post_json(
                "/api/orders",
                &json!({"customer": customer, "items": [{"product_id": 1, "quantity": 2}]}),
            )
            .header("Idempotency-Key", format!("routing-{}", lab.run_id())),
        )
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    let order = created.json().unwrap();
    let id = order["id"].as_str().unwrap().to_string();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/orders/{id}").as_str())
    );
    assert_eq!(order["status"], "placed");

    let rows = lab
        .sql(
            &lab.database("order").unwrap(),
            &format!("SELECT customer FROM orders WHERE id = '{id}'"),
        )
        .unwrap();
    assert_eq!(rows, customer, "the order is in PostgreSQL");

    let fetched = lab.get(&format!("/api/orders/{id}")).unwrap();
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json().unwrap()["total_cents"], order["total_cents"]);

    assert_eq!(lab.shutdown(), Vec::<String>::new());
}
