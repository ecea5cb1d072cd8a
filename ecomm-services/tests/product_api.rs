//! The product API against real PostgreSQL: create/read/replace/delete, paging rules,
//! validation that writes nothing, 4xx problem+json for malformed and oversize bodies, and
//! 503 when PostgreSQL is gone (cached reads still served).

use std::time::Duration;

use ecomm_services::fixtures::{or_skip, Postgres, ProductInstance, Redis};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn product_count(database_url: &str) -> i64 {
    let (db, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.query_one("SELECT count(*) FROM products", &[])
        .await
        .unwrap()
        .get(0)
}

async fn send(request: reqwest::RequestBuilder) -> (u16, String, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_is_created_read_replaced_and_deleted() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let product = ProductInstance::start(&pg, None).await.unwrap();
    let new = json!({"sku": "CAM-9", "name": "Camera", "description": "Mirrorless",
                     "price_cents": 89900, "currency": "EUR", "stock": 3});

    let response = client()
        .post(product.url("/api/products"))
        .json(&new)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/api/products/{}", created["id"]));
    for field in [
        "sku",
        "name",
        "description",
        "price_cents",
        "currency",
        "stock",
    ] {
        assert_eq!(created[field], new[field], "{field}");
    }
    let updated_at = created["updated_at"].as_str().unwrap();
    assert!(
        updated_at.ends_with('Z') && updated_at.len() == 20,
        "{updated_at}"
    );

    let (status, _, read) = send(client().get(product.url(&location))).await;
    assert_eq!((status, &read), (200, &created));

    let mut changed = new.clone();
    changed["stock"] = json!(0);
    let (status, _, replaced) = send(client().put(product.url(&location)).json(&changed)).await;
    assert_eq!(status, 200);
    assert_eq!(replaced["stock"], 0);
    assert_eq!(replaced["id"], created["id"]);

    let duplicate = json!({"sku": "KB-001", "name": "Clash", "price_cents": 1});
    let (status, kind, problem) =
        send(client().post(product.url("/api/products")).json(&duplicate)).await;
    assert_eq!((status, kind.as_str()), (409, "application/problem+json"));
    assert!(problem["detail"].as_str().unwrap().contains("KB-001"));

    let deleted = client()
        .delete(product.url(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let (status, kind, _) = send(client().get(product.url(&location))).await;
    assert_eq!((status, kind.as_str()), (404, "application/problem+json"));
    let (status, _, _) = send(client().delete(product.url(&location))).await;
    assert_eq!(status, 404);
    let (status, _, _) = send(client().put(product.url("/api/products/9999")).json(&new)).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_defaults_and_bounds() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let product = ProductInstance::start(&pg, None).await.unwrap();

    let (status, _, page) = send(client().get(product.url("/api/products"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            page["page"].as_u64(),
            page["size"].as_u64(),
            page["total"].as_u64()
        ),
        (Some(1), Some(20), Some(40))
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 20);
    let (_, _, last) = send(client().get(product.url("/api/products?page=3&size=20"))).await;
    assert_eq!(
        last["items"].as_array().unwrap().len(),
        0,
        "past the end is an empty page"
    );
    let (_, _, all) = send(client().get(product.url("/api/products?size=100"))).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 40);

    for bad in [
        "size=0", "size=101", "page=0", "page=-1", "page=abc", "size=1.5",
    ] {
        let (status, kind, problem) =
            send(client().get(product.url(&format!("/api/products?{bad}")))).await;
        assert_eq!(
            (status, kind.as_str()),
            (400, "application/problem+json"),
            "{bad}"
        );
        assert_eq!(problem["type"], "urn:ecomm:problem:bad-request", "{bad}");
    }
    let (status, _, _) = send(client().get(product.url("/api/products/abc"))).await;
    assert_eq!(status, 400);
    let (status, kind, _) = send(client().patch(product.url("/api/products/1"))).await;
    assert_eq!((status, kind.as_str()), (405, "application/problem+json"));
    let (status, kind, _) = send(client().get(product.url("/api/nothing-here"))).await;
    assert_eq!((status, kind.as_str()), (404, "application/problem+json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_malformed_and_oversize_bodies_are_4xx_problems_and_write_nothing() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let product = ProductInstance::start(&pg, None).await.unwrap();
    let before = product_count(&product.database_url).await;
    let cases: Vec<(Vec<u8>, &str, u16)> = vec![
        (
            br#"{"sku":"ok-lower","name":"x","price_cents":1}"#.to_vec(),
            "application/json",
            422,
        ),
        (
            br#"{"sku":"OK-1","name":"","price_cents":1}"#.to_vec(),
            "application/json",
            422,
        ),
        (
            br#"{"sku":"OK-1","name":"x","price_cents":-1}"#.to_vec(),
            "application/json",
            422,
        ),
        (
            br#"{"sku":"OK-1","name":"x","price_cents":1,"currency":"euro"}"#.to_vec(),
            "application/json",
            422,
        ),
        (
            br#"{"sku":"OK-1","name":"x","price_cents":1,"stock":-2}"#.to_vec(),
            "application/json",
            422,
        ),
        (
            br#"{"sku":"OK-1","name":"x"}"#.to_vec(),
            "application/json",
            422,
        ),
        (
            br#"{"sku":"OK-1","name":"x","price_cents":"cheap"}"#.to_vec(),
            "application/json",
            422,
        ),
        (br#"{"sku":"OK-1","#.to_vec(), "application/json", 400),
        (b"\xff\xfe".to_vec(), "application/json", 400),
        (b"sku=OK-1".to_vec(), "text/plain", 415),
        (vec![b'['; 70_000], "application/json", 413),
    ];
    for (i, (body, content_type, expected)) in cases.into_iter().enumerate() {
        let (status, kind, problem) = send(
            client()
                .post(product.url("/api/products"))
                .header("content-type", content_type)
                .body(body),
        )
        .await;
        assert_eq!(status, expected, "case {i}: {problem}");
        assert_eq!(kind, "application/problem+json", "case {i}");
    }
    let (status, _, _) = send(
        client()
            .put(product.url("/api/products/1"))
            .json(&json!({"sku": "KB-001", "name": "x", "price_cents": 100_000_001})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(product_count(&product.database_url).await, before);
    let (_, _, unchanged) = send(client().get(product.url("/api/products/1"))).await;
    assert_eq!(
        unchanged["price_cents"], 4999,
        "the rejected PUT changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_gone_gives_503_except_for_what_the_cache_holds() {
    let Some(mut pg) = or_skip(Postgres::start()) else {
        return;
    };
    let Some(redis) = or_skip(Redis::start()) else {
        return;
    };
    let product = ProductInstance::start_with(
        &pg,
        Some(&redis),
        &[
            "--db-connect-timeout-ms",
            "500",
            "--db-statement-timeout-ms",
            "1000",
        ],
    )
    .await
    .unwrap();
    let cached = product.url("/api/products/2");
    send(client().get(&cached)).await;

    pg.stop().unwrap();
    let response = client().get(&cached).send().await.unwrap();
    assert_eq!(response.status(), 200, "a cached product is still served");
    assert_eq!(response.headers()["x-cache"], "hit");
    let (status, kind, problem) = send(client().get(product.url("/api/products/3"))).await;
    assert_eq!((status, kind.as_str()), (503, "application/problem+json"));
    assert_eq!(problem["type"], "urn:ecomm:problem:unavailable");
    let (status, _, _) = send(
        client()
            .post(product.url("/api/products"))
            .json(&json!({"sku": "X-1", "name": "x", "price_cents": 1})),
    )
    .await;
    assert_eq!(status, 503);
    let (status, _, _) = send(client().get(product.url("/readyz"))).await;
    assert_eq!(status, 503, "not ready without PostgreSQL");

    pg.restart().unwrap();
    let (status, _, body) = send(client().get(product.url("/api/products/3"))).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_starting_together_on_an_empty_server_share_one_catalogue() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let url = pg.url("shared_catalogue");
    let (a, b) = tokio::join!(
        ProductInstance::start_on(&url, None, &[]),
        ProductInstance::start_on(&url, None, &[]),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(product_count(&url).await, 40, "seeded once, not twice");
    let (_, _, from_a) = send(client().get(a.url("/api/products/7"))).await;
    let (_, _, from_b) = send(client().get(b.url("/api/products/7"))).await;
    assert_eq!(from_a, from_b);
    assert_eq!(from_a["sku"], "MN-001", "ids follow the sample's order");
    let (_, _, last) = send(client().get(a.url("/api/products/40"))).await;
    assert_eq!(last["sku"], "LT-002");
}
