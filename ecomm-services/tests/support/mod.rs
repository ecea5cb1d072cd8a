//! Test fixtures for the registry and gateway tests: real `ecomm` processes, small real
//! axum upstreams on loopback, and a raw DNS client.
#![allow(dead_code)] // each test binary uses a different subset

pub mod dead_upstream;
pub mod dns_query;
pub mod ecomm;
pub mod raw_http;
pub mod upstream;

/// The registry token every test uses.
pub const TOKEN: &str = "test-token";

/// An HTTP client that never uses a proxy and gives up after 20 s.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Polls `check` every 50 ms until it returns true; panics naming `what` after 15 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// `PUT /v1/services/{service}/instances/{id}` with the test token.
pub async fn register(
    registry: std::net::SocketAddr,
    service: &str,
    id: &str,
    address: &str,
    port: u16,
    ttl_seconds: u64,
) -> reqwest::Response {
    client()
        .put(format!(
            "http://{registry}/v1/services/{service}/instances/{id}"
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({
            "address": address,
            "port": port,
            "ttl_seconds": ttl_seconds,
        }))
        .send()
        .await
        .unwrap()
}

/// `GET /v1/services/{service}` as JSON.
pub async fn resolve(registry: std::net::SocketAddr, service: &str) -> serde_json::Value {
    client()
        .get(format!("http://{registry}/v1/services/{service}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The instance ids in a resolve answer, sorted.
pub fn ids(view: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = view["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}
