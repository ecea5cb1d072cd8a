//! Writes need the bearer token; a rejected write changes nothing.

mod support;

use support::ecomm::Ecomm;
use support::{client, ids, resolve};

#[tokio::test]
async fn writes_without_the_right_token_are_401_problems_and_write_nothing() {
    let (_registry, http, _dns) = Ecomm::registry(&[]);
    let url = format!("http://{http}/v1/services/product/instances/intruder");
    let body = serde_json::json!({"address": "127.0.0.1", "port": 8001});

    let without = client().put(&url).json(&body).send().await.unwrap();
    let wrong = client()
        .put(&url)
        .bearer_auth("not-the-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    let delete = client().delete(&url).send().await.unwrap();

    for response in [without, wrong, delete] {
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "urn:ecomm:problem:unauthorized");
    }
    assert!(ids(&resolve(http, "product").await).is_empty());
}

#[tokio::test]
async fn invalid_registrations_are_rejected_with_problems() {
    let (_registry, http, _dns) = Ecomm::registry(&[]);
    let put = |name: &str, id: &str, body: serde_json::Value| {
        let url = format!("http://{http}/v1/services/{name}/instances/{id}");
        async move {
            client()
                .put(url)
                .bearer_auth(support::TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let bad_name = put(
        "Bad_Name",
        "x",
        serde_json::json!({"address": "127.0.0.1", "port": 1}),
    )
    .await;
    let bad_ttl = put(
        "product",
        "p1",
        serde_json::json!({"address": "127.0.0.1", "port": 1, "ttl_seconds": 0}),
    )
    .await;
    let bad_address = put(
        "product",
        "p1",
        serde_json::json!({"address": "nope", "port": 1}),
    )
    .await;
    assert_eq!(bad_name.status(), 400);
    assert_eq!(bad_ttl.status(), 422);
    assert_eq!(bad_address.status(), 422);
    for response in [bad_name, bad_ttl, bad_address] {
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    assert!(ids(&resolve(http, "product").await).is_empty());
}
