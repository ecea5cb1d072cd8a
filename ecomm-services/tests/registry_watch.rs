//! Long-poll watch: a blocked `GET ?index=N&wait=30s` wakes as soon as the set changes.

mod support;

use support::ecomm::Ecomm;
use support::{client, ids, register, resolve};

#[tokio::test]
async fn a_long_poll_wakes_when_an_instance_registers() {
    let (_registry, http, _dns) = Ecomm::registry(&[]);
    assert_eq!(
        register(http, "product", "product-1", "127.0.0.1", 8001, 60)
            .await
            .status(),
        201
    );
    let before = resolve(http, "product").await;
    let index = before["index"].as_u64().unwrap();

    let watcher = tokio::spawn(async move {
        let response = client()
            .get(format!(
                "http://{http}/v1/services/product?index={index}&wait=30s"
            ))
            .send()
            .await
            .unwrap();
        let header_index: u64 = response.headers()["x-registry-index"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        (header_index, body)
    });
    // Give the watcher time to block, then change the set.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !watcher.is_finished(),
        "the watch must block while nothing changes"
    );
    assert_eq!(
        register(http, "product", "product-2", "127.0.0.1", 8002, 60)
            .await
            .status(),
        201
    );

    let (header_index, body) = watcher.await.unwrap();
    assert!(header_index > index);
    assert_eq!(body["index"].as_u64().unwrap(), header_index);
    assert_eq!(ids(&body), vec!["product-1", "product-2"]);
}

#[tokio::test]
async fn a_long_poll_on_an_unchanged_set_returns_the_same_index_when_the_wait_ends() {
    let (_registry, http, _dns) = Ecomm::registry(&[]);
    assert_eq!(
        register(http, "product", "product-1", "127.0.0.1", 8001, 60)
            .await
            .status(),
        201
    );
    let index = resolve(http, "product").await["index"].as_u64().unwrap();

    let body: serde_json::Value = client()
        .get(format!(
            "http://{http}/v1/services/product?index={index}&wait=300ms"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["index"].as_u64().unwrap(), index);
    assert_eq!(ids(&body), vec!["product-1"]);
}

#[tokio::test]
async fn a_bad_wait_is_a_400_problem() {
    let (_registry, http, _dns) = Ecomm::registry(&[]);
    let response = client()
        .get(format!(
            "http://{http}/v1/services/product?index=1&wait=forever"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}
