//! Property: no request body — arbitrary JSON, near-miss shapes, raw bytes — makes
//! `POST /api/orders` or `POST /api/products` answer 5xx, and only a 201 writes a row.
//! Runs against real PostgreSQL and real product/order services.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use ecomm_services::fixtures::{or_skip, OrderInstance, Postgres, ProductInstance};
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

const CASES: u32 = 150;

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN/inf", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            hash_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn number_or_junk(range: std::ops::Range<i64>) -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => range.prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => arbitrary_json(),
    ]
}

/// Objects shaped like an order, with values around and beyond the valid ranges.
fn order_shaped() -> impl Strategy<Value = Value> {
    let customer = prop_oneof![
        4 => "[a-z]{1,8}@[a-z]{1,8}\\.(com|org|io)".prop_map(Value::from),
        1 => ".{0,40}".prop_map(Value::from),
        1 => arbitrary_json(),
    ];
    let item = (
        number_or_junk(-1..45),
        number_or_junk(-1..1_002),
        proptest::option::weighted(0.1, arbitrary_json()),
    )
        .prop_map(|(product_id, quantity, extra)| {
            let mut line = json!({"product_id": product_id, "quantity": quantity});
            if let Some(extra) = extra {
                line["unit_price_cents"] = extra;
            }
            line
        })
        .boxed();
    let items = prop_oneof![
        4 => vec(item.clone(), 1..4).prop_map(Value::Array),
        1 => vec(item, 0..55).prop_map(Value::Array),
        1 => arbitrary_json(),
    ];
    (customer, items).prop_map(|(customer, items)| json!({"customer": customer, "items": items}))
}

/// Objects shaped like a product, with values around and beyond the valid ranges.
fn product_shaped() -> impl Strategy<Value = Value> {
    let text = |plausible: &'static str, wild: &'static str| {
        prop_oneof![
            4 => plausible.prop_map(Value::from),
            1 => wild.prop_map(Value::from),
            1 => arbitrary_json(),
        ]
    };
    (
        prop_oneof![
            4 => "[A-Z][A-Z0-9-]{0,12}".prop_map(Value::from),
            1 => "[A-Z0-9a-z -]{0,40}".prop_map(Value::from),
            1 => arbitrary_json(),
        ],
        text("[A-Za-z][A-Za-z0-9 ]{0,40}", ".{0,220}"),
        proptest::option::of(text("[A-Za-z0-9 ,.]{0,50}", ".{0,2100}")),
        number_or_junk(-5..200_000_000),
        proptest::option::of(prop_oneof![
            4 => "[A-Z]{3}".prop_map(Value::from),
            1 => "[A-Za-z]{0,4}".prop_map(Value::from),
            1 => arbitrary_json(),
        ]),
        proptest::option::of(number_or_junk(-5..2_000_000)),
    )
        .prop_map(|(sku, name, description, price, currency, stock)| {
            let mut p = json!({"sku": sku, "name": name, "price_cents": price});
            if let Some(d) = description {
                p["description"] = d;
            }
            if let Some(c) = currency {
                p["currency"] = c;
            }
            if let Some(s) = stock {
                p["stock"] = s;
            }
            p
        })
}

/// A body: serialised JSON of either strategy, or raw bytes.
fn body(shaped: BoxedStrategy<Value>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => shaped.prop_map(|v| serde_json::to_vec(&v).unwrap()),
        2 => arbitrary_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => vec(any::<u8>(), 0..200),
    ]
}

async fn count(database_url: &str, sql: &str) -> i64 {
    let (db, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.query_one(sql, &[]).await.unwrap().get(0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn arbitrary_bodies_to_post_orders_never_5xx_and_only_201_writes() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let rt = runtime();
    let (product, order) = rt.block_on(async {
        let product = ProductInstance::start(&pg, None).await.unwrap();
        let order = OrderInstance::start(&pg, &product).await.unwrap();
        (product, order)
    });
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let counts = "SELECT (SELECT count(*) FROM orders) + (SELECT count(*) FROM idempotency_keys)";
    let seen = RefCell::new(BTreeMap::new());
    let expected = Cell::new(rt.block_on(count(&order.database_url, counts)));
    let keys = AtomicU64::new(0);
    let strategy = (body(order_shaped().boxed()), proptest::bool::weighted(0.85));
    runner()
        .run(&strategy, |(body, with_key)| {
            let mut request = http
                .post(order.url("/api/orders"))
                .header("content-type", "application/json")
                .body(body.clone());
            if with_key {
                let key = format!("prop-{}", keys.fetch_add(1, Ordering::Relaxed));
                request = request.header("Idempotency-Key", key);
            }
            let (status, content_type) = rt.block_on(async {
                let response = request.send().await.unwrap();
                let ct = response
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned());
                (response.status().as_u16(), ct.unwrap_or_default())
            });
            *seen.borrow_mut().entry(status).or_insert(0u32) += 1;
            let text = String::from_utf8_lossy(&body);
            prop_assert!(status < 500, "{status} for {text}");
            if status == 201 {
                expected.set(expected.get() + 2);
            } else {
                prop_assert_eq!(
                    content_type.as_str(),
                    "application/problem+json",
                    "{} for {}",
                    status,
                    text
                );
            }
            let now = rt.block_on(count(&order.database_url, counts));
            prop_assert_eq!(
                now,
                expected.get(),
                "rows changed by a {} for {}",
                status,
                text
            );
            Ok(())
        })
        .unwrap();
    eprintln!("statuses seen: {:?}", seen.borrow());
    drop((order, product));
}

#[test]
fn arbitrary_bodies_to_post_products_never_5xx_and_only_201_writes() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let rt = runtime();
    let product = rt.block_on(ProductInstance::start(&pg, None)).unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let counts = "SELECT count(*) FROM products";
    let seen = RefCell::new(BTreeMap::new());
    let expected = Cell::new(rt.block_on(count(&product.database_url, counts)));
    runner()
        .run(&body(product_shaped().boxed()), |body| {
            let (status, content_type) = rt.block_on(async {
                let response = http
                    .post(product.url("/api/products"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let ct = response
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned());
                (response.status().as_u16(), ct.unwrap_or_default())
            });
            *seen.borrow_mut().entry(status).or_insert(0u32) += 1;
            let text = String::from_utf8_lossy(&body);
            prop_assert!(status < 500, "{status} for {text}");
            if status == 201 {
                expected.set(expected.get() + 1);
            } else {
                prop_assert_eq!(
                    content_type.as_str(),
                    "application/problem+json",
                    "{} for {}",
                    status,
                    text
                );
            }
            let now = rt.block_on(count(&product.database_url, counts));
            prop_assert_eq!(
                now,
                expected.get(),
                "rows changed by a {} for {}",
                status,
                text
            );
            Ok(())
        })
        .unwrap();
    eprintln!("statuses seen: {:?}", seen.borrow());
    drop(product);
}
