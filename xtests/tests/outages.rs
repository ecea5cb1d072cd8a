//! Data-store outages: without Redis reads keep answering (from PostgreSQL) and hits resume
//! when it is back; without PostgreSQL an order is refused quickly with 503 problem+json, and
//! once it is back the same Idempotency-Key creates exactly one order.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use xtests::component::Health;
use xtests::http::Request;
use xtests::Lab;

/// Polls `cond` every 200 ms until it holds or `limit` passes; true if it held.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    cond()
}

#[test]
fn reads_survive_a_cache_outage_and_hits_resume_after_it() {
    if !xtests::privileged("the cache outage test") {
        return;
    }
    let mut lab = Lab::start().unwrap();
    let path = "/api/products?page=1&size=3";
    assert_eq!(lab.get(path).unwrap().status, 200);
    assert_eq!(lab.get(path).unwrap().header("x-cache"), Some("hit"));

    lab.stop("redis").unwrap();
    for _ in 0..6 {
        let r = lab.get(path).unwrap();
        assert_eq!(
            r.status,
            200,
            "reads are served from PostgreSQL: {}",
            r.text()
        );
        assert_ne!(
            r.header("x-cache"),
            Some("hit"),
            "nothing can come from a stopped cache"
        );
    }

    lab.start_component("redis").unwrap();
    assert!(
        eventually(Duration::from_secs(30), || lab
            .get(path)
            .unwrap()
            .header("x-cache")
            == Some("hit")),
        "cache hits resume once Redis is back"
    );

    assert_eq!(lab.shutdown(), Vec::<String>::new());
}

#[test]
fn an_order_during_a_database_outage_gets_503_and_its_retry_creates_exactly_one_order() {
    if !xtests::privileged("the database outage test") {
        return;
    }
    let mut lab = Lab::start().unwrap();
    let customer = format!("bob-{}@example.com", lab.run_id());
    let order = Request::post_json(
        "/api/orders",
        &json!({"customer": customer, "items": [{"product_id": 1, "quantity": 1}]}),
    )
    .header("Idempotency-Key", format!("outage-{}", lab.run_id()))
    .timeout(Duration::from_secs(20));

    lab.stop("postgres").unwrap();
    let refused = lab.send(&order).unwrap(); // an error here would mean it hung past 20 s
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    let problem = refused.json().unwrap();
    assert_eq!(problem["status"], 503);
    assert!(
        problem["type"].is_string() && problem["title"].is_string(),
        "{problem}"
    );

    lab.start_component("postgres").unwrap();
    assert!(eventually(Duration::from_secs(30), || lab
        .health("order-1")
        .unwrap()
        == Health::Ready));

    let created = lab.send(&order).unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    let replayed = lab.send(&order).unwrap();
    assert_eq!(
        replayed.json().unwrap()["id"],
        created.json().unwrap()["id"],
        "a replay returns the original"
    );
    let count = lab
        .sql(
            &lab.database("order").unwrap(),
            &format!("SELECT count(*) FROM orders WHERE customer = '{customer}'"),
        )
        .unwrap();
    assert_eq!(count, "1", "exactly one order exists for the key");

    assert_eq!(lab.shutdown(), Vec::<String>::new());
}
