//! The product service's Redis cache-aside against real Redis and PostgreSQL: miss then hit,
//! invalidation on write, negative caching, and reads that survive Redis dying and recover
//! when it returns.

use std::time::{Duration, Instant};

use ecomm_services::fixtures::{or_skip, Postgres, ProductInstance, Redis};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// GETs `url`, returning (status, X-Cache, JSON body).
async fn get(url: &str) -> (u16, String, Value) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, cache, response.json().await.unwrap())
}

fn stack() -> Option<(Postgres, Redis)> {
    Some((or_skip(Postgres::start())?, or_skip(Redis::start())?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_misses_then_hits_and_an_update_invalidates_it() {
    let Some((pg, redis)) = stack() else { return };
    let product = ProductInstance::start(&pg, Some(&redis)).await.unwrap();
    let url = product.url("/api/products/1");

    let (status, cache, first) = get(&url).await;
    assert_eq!((status, cache.as_str()), (200, "miss"));
    assert_eq!(first["sku"], "KB-001");
    let (status, cache, second) = get(&url).await;
    assert_eq!((status, cache.as_str()), (200, "hit"));
    assert_eq!(first, second, "a hit serves the same product");

    let mut changed = first.clone();
    changed["price_cents"] = json!(3999);
    let put = client().put(&url).json(&changed).send().await.unwrap();
    assert_eq!(put.status(), 200);

    let (status, cache, after) = get(&url).await;
    assert_eq!(
        (status, cache.as_str()),
        (200, "miss"),
        "the write deleted the entry"
    );
    assert_eq!(after["price_cents"], 3999);
    let (_, cache, again) = get(&url).await;
    assert_eq!(cache, "hit");
    assert_eq!(again["price_cents"], 3999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_are_cached_and_a_create_moves_them_to_a_new_generation() {
    let Some((pg, redis)) = stack() else { return };
    let product = ProductInstance::start(&pg, Some(&redis)).await.unwrap();
    let url = product.url("/api/products?page=2&size=10");

    let (status, cache, page) = get(&url).await;
    assert_eq!((status, cache.as_str()), (200, "miss"));
    assert_eq!(page["page"], 2);
    assert_eq!(page["size"], 10);
    assert_eq!(page["total"], 40, "the sample catalogue was seeded");
    assert_eq!(page["items"].as_array().unwrap().len(), 10);
    assert_eq!(page["items"][0]["id"], 11);
    let (_, cache, _) = get(&url).await;
    assert_eq!(cache, "hit");

    let created = client()
        .post(product.url("/api/products"))
        .json(&json!({"sku": "NEW-1", "name": "New thing", "price_cents": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let (_, cache, page) = get(&url).await;
    assert_eq!(cache, "miss", "a write invalidates every list page");
    assert_eq!(page["total"], 41);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_product_is_cached_as_missing_until_it_is_created() {
    let Some((pg, redis)) = stack() else { return };
    let product = ProductInstance::start(&pg, Some(&redis)).await.unwrap();
    let url = product.url("/api/products/41");

    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(response.headers()["x-cache"], "miss");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:ecomm:problem:not-found");
    let (status, cache, _) = get(&url).await;
    assert_eq!(
        (status, cache.as_str()),
        (404, "hit"),
        "404s are cached (negative caching)"
    );

    let created = client()
        .post(product.url("/api/products"))
        .json(&json!({"sku": "NEW-41", "name": "Forty-one", "price_cents": 4100}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], "/api/products/41");
    let (status, _, body) = get(&url).await;
    assert_eq!(status, 200, "creating the product drops its cached 404");
    assert_eq!(body["sku"], "NEW-41");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_redis_dying_and_hits_resume_after_it_returns() {
    let Some((pg, mut redis)) = stack() else {
        return;
    };
    let product = ProductInstance::start(&pg, Some(&redis)).await.unwrap();
    let item = product.url("/api/products/3");
    let list = product.url("/api/products");
    get(&item).await;
    assert_eq!(get(&item).await.1, "hit");

    redis.kill();
    for _ in 0..20 {
        let (status, cache, body) = get(&item).await;
        assert_eq!(
            (status, cache.as_str()),
            (200, "miss"),
            "served from PostgreSQL"
        );
        assert_eq!(body["sku"], "KB-003");
        let (status, _, page) = get(&list).await;
        assert_eq!(status, 200);
        assert_eq!(page["total"], 40);
    }
    let ready = client().get(product.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "Redis down is degraded, not unready");
    let mut changed = get(&item).await.2;
    changed["stock"] = json!(99);
    let put = client().put(&item).json(&changed).send().await.unwrap();
    assert_eq!(put.status(), 200, "writes work without Redis");

    redis.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut hit = None;
    while Instant::now() < deadline {
        let (status, cache, body) = get(&item).await;
        assert_eq!(status, 200);
        if cache == "hit" {
            hit = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hit = hit.expect("hits resume after Redis returns");
    assert_eq!(hit["stock"], 99, "the hit carries the latest write");
    let metrics = client()
        .get(product.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors_line = metrics
        .lines()
        .find(|l| l.contains("cache_errors_total") && !l.starts_with('#'))
        .unwrap_or_default();
    assert!(
        !errors_line.ends_with(" 0") && !errors_line.is_empty(),
        "the outage is visible in /metrics: {errors_line:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_configured_every_read_is_a_miss() {
    let Some(pg) = or_skip(Postgres::start()) else {
        return;
    };
    let product = ProductInstance::start(&pg, None).await.unwrap();
    for _ in 0..3 {
        let (status, cache, _) = get(&product.url("/api/products/1")).await;
        assert_eq!((status, cache.as_str()), (200, "miss"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_redis_does_not_stall_reads() {
    let Some((pg, redis)) = stack() else { return };
    let product = ProductInstance::start(&pg, Some(&redis)).await.unwrap();
    let item = product.url("/api/products/4");
    get(&item).await;
    assert_eq!(get(&item).await.1, "hit");

    redis.freeze();
    for _ in 0..10 {
        let (status, cache, body) = get(&item).await;
        assert_eq!(
            (status, cache.as_str()),
            (200, "miss"),
            "Redis timed out; PostgreSQL answered"
        );
        assert_eq!(body["sku"], "MS-001");
    }
    redis.thaw();
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&item).await.1 != "hit" {
        assert!(Instant::now() < deadline, "hits resume after Redis thaws");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
