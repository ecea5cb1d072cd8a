//! Registry leases: registration is idempotent, renewals keep an instance, an unrenewed
//! lease expires and the sweeper removes it.

mod support;

use support::ecomm::Ecomm;
use support::{client, eventually, ids, register, resolve, TOKEN};

#[tokio::test]
async fn registering_twice_is_idempotent() {
    let (_registry, http, _dns) = Ecomm::registry(&[]);

    let first = register(http, "product", "product-1", "127.0.0.1", 8001, 30).await;
    assert_eq!(first.status(), 201);
    let index_after_first = resolve(http, "product").await["index"].as_u64().unwrap();

    let second = register(http, "product", "product-1", "127.0.0.1", 8001, 30).await;
    assert_eq!(second.status(), 200);

    let view = resolve(http, "product").await;
    assert_eq!(ids(&view), vec!["product-1"]);
    assert_eq!(
        view["index"].as_u64().unwrap(),
        index_after_first,
        "a repeat is not a change"
    );
}

#[tokio::test]
async fn an_unrenewed_lease_expires_and_leaves_the_view() {
    let (_registry, http, _dns) = Ecomm::registry(&[]);
    assert_eq!(
        register(http, "product", "short-lived", "127.0.0.1", 8001, 1)
            .await
            .status(),
        201
    );
    assert_eq!(
        register(http, "product", "long-lived", "127.0.0.1", 8002, 60)
            .await
            .status(),
        201
    );
    assert_eq!(
        ids(&resolve(http, "product").await),
        vec!["long-lived", "short-lived"]
    );

    eventually("the 1 s lease to expire", || async {
        ids(&resolve(http, "product").await) == vec!["long-lived"]
    })
    .await;

    let renew = client()
        .put(format!(
            "http://{http}/v1/services/product/instances/short-lived/renew"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        renew.status(),
        404,
        "an expired lease cannot be renewed, only re-registered"
    );
    assert_eq!(renew.headers()["content-type"], "application/problem+json");

    // The sweeper removes it for good: counted as an expiration, no longer an active lease.
    eventually("the sweeper to count the expiration", || async {
        let metrics = client()
            .get(format!("http://{http}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics.contains("registry_expirations_total 1")
            && metrics.contains("registry_leases_active 1")
    })
    .await;
}

#[tokio::test]
async fn renewing_keeps_an_instance_past_its_ttl() {
    let (_registry, http, _dns) = Ecomm::registry(&[]);
    assert_eq!(
        register(http, "order", "order-1", "127.0.0.1", 8002, 1)
            .await
            .status(),
        201
    );
    let renew_url = format!("http://{http}/v1/services/order/instances/order-1/renew");

    // Renew every 300 ms for three TTLs; the instance never leaves.
    for _ in 0..10 {
        let renewed = client()
            .put(&renew_url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(renewed.status(), 200);
        assert_eq!(ids(&resolve(http, "order").await), vec!["order-1"]);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    let deleted = client()
        .delete(format!("http://{http}/v1/services/order/instances/order-1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(ids(&resolve(http, "order").await).is_empty());
}
