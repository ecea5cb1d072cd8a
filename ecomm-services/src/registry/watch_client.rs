//! Long-poll watch of one service: keeps a cached set of live addresses, updated when the
//! registry's index moves; the cached set survives registry outages.

use std::net::SocketAddr;
use std::time::Duration;

use super::api::REGISTRY_INDEX;
use super::wire::ServiceView;
use crate::http::Shutdown;

/// Long-poll length asked of the registry.
pub const WATCH_WAIT: Duration = Duration::from_secs(30);

/// Watches `service` at `base_url` until `shutdown`, calling `on_change` with the live
/// addresses whenever they change (and once at start).
pub async fn watch_service<F>(base_url: String, service: String, on_change: F, shutdown: Shutdown)
where
    F: Fn(Vec<SocketAddr>) + Send + 'static,
{
    let client = match reqwest::Client::builder()
        .timeout(WATCH_WAIT + Duration::from_secs(10))
        .no_proxy()
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the registry watch client");
            return;
        }
    };
    let url = format!("{}/v1/services/{service}", base_url.trim_end_matches('/'));
    let mut index = 0u64;
    let mut first = true;
    let mut backoff = Duration::from_millis(250);
    loop {
        let request = client.get(format!(
            "{url}?index={index}&wait={}s",
            WATCH_WAIT.as_secs()
        ));
        let outcome = tokio::select! {
            outcome = fetch(request) => outcome,
            () = shutdown.wait() => return,
        };
        match outcome {
            Ok((new_index, view)) => {
                backoff = Duration::from_millis(250);
                if new_index < index {
                    // The registry restarted; its index starts over.
                    index = 0;
                    continue;
                }
                if first || new_index != index {
                    first = false;
                    let addrs = view
                        .instances
                        .iter()
                        .map(|i| SocketAddr::new(i.address, i.port))
                        .collect();
                    on_change(addrs);
                }
                index = new_index;
            }
            Err(error) => {
                tracing::warn!(%error, %service, ?backoff, "registry watch failed; keeping the cached set");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.wait() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn fetch(request: reqwest::RequestBuilder) -> Result<(u64, ServiceView), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("registry answered {}", response.status()));
    }
    let header_index = response
        .headers()
        .get(&REGISTRY_INDEX)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let view: ServiceView = response.json().await.map_err(|e| e.to_string())?;
    Ok((header_index.unwrap_or(view.index), view))
}
