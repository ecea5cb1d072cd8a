//! Asking the product service for current prices: a static list of base URLs, or the live
//! instances the registry reports. Tries each target at most once per lookup (round-robin
//! start, failover on connection errors and 5xx).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures_util::future::try_join_all;

use crate::http::Problem;
use crate::product::Product;

/// What one product costs, as quoted by the product service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Unit price in cents.
    pub price_cents: i64,
    /// ISO 4217 currency.
    pub currency: String,
}

/// Where product instances are.
#[derive(Clone)]
enum Targets {
    /// Fixed base URLs (`--product-url`).
    Fixed(Arc<Vec<String>>),
    /// Addresses kept current by a registry watch.
    Watched(Arc<RwLock<Vec<SocketAddr>>>),
}

/// Why a single lookup failed.
#[derive(Debug)]
enum LookupError {
    /// Try the next target.
    Retryable(String),
    /// The product service answered something we cannot use.
    Fatal(String),
}

/// HTTP client for the product service.
#[derive(Clone)]
pub struct ProductClient {
    http: reqwest::Client,
    targets: Targets,
    next: Arc<AtomicUsize>,
}

impl ProductClient {
    /// A client over fixed base URLs (e.g. `http://172.21.0.21:8001`, or the gateway), each
    /// request bounded by `timeout`.
    pub fn fixed(base_urls: Vec<String>, timeout: Duration) -> Result<Self, reqwest::Error> {
        let urls = base_urls
            .into_iter()
            .map(|u| u.trim_end_matches('/').to_owned())
            .collect();
        Self::build(Targets::Fixed(Arc::new(urls)), timeout)
    }

    /// A client over addresses a registry watch keeps in `live`.
    pub fn watched(
        live: Arc<RwLock<Vec<SocketAddr>>>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        Self::build(Targets::Watched(live), timeout)
    }

    fn build(targets: Targets, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .pool_max_idle_per_host(32)
            .build()?;
        Ok(Self {
            http,
            targets,
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn base_urls(&self) -> Vec<String> {
        match &self.targets {
            Targets::Fixed(urls) => urls.as_ref().clone(),
            Targets::Watched(live) => live
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|addr| format!("http://{addr}"))
                .collect(),
        }
    }

    /// Current quotes for `ids`: 422 naming the first unknown id, 503 when no product instance
    /// answers.
    pub async fn quotes(&self, ids: &[i64]) -> Result<HashMap<i64, Quote>, Problem> {
        let lookups = ids.iter().map(|&id| async move {
            match self.quote(id).await? {
                Some(quote) => Ok((id, quote)),
                None => Err(Problem::validation(format!(
                    "product_id {id}: no such product in the catalogue"
                ))),
            }
        });
        Ok(try_join_all(lookups).await?.into_iter().collect())
    }

    /// The quote for one product; `None` when the catalogue does not have it.
    pub async fn quote(&self, id: i64) -> Result<Option<Quote>, Problem> {
        let urls = self.base_urls();
        if urls.is_empty() {
            return Err(Problem::unavailable(
                "no product service instance is known (registry has none registered)",
            ));
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        for offset in 0..urls.len() {
            let base = &urls[(start + offset) % urls.len()];
            match self.fetch(base, id).await {
                Ok(quote) => return Ok(quote),
                Err(LookupError::Retryable(why)) => {
                    tracing::warn!(%base, product_id = id, %why, "product lookup failed; trying the next instance");
                    last = why;
                }
                Err(LookupError::Fatal(why)) => {
                    return Err(Problem::bad_gateway(format!(
                        "product service at {base}: {why}"
                    )))
                }
            }
        }
        Err(Problem::unavailable(format!(
            "the product service is unavailable: {last}"
        )))
    }

    async fn fetch(&self, base: &str, id: i64) -> Result<Option<Quote>, LookupError> {
        let response = self
            .http
            .get(format!("{base}/api/products/{id}"))
            .send()
            .await
            .map_err(|e| LookupError::Retryable(e.to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status.is_server_error() {
            return Err(LookupError::Retryable(format!("answered {status}")));
        }
        if !status.is_success() {
            return Err(LookupError::Fatal(format!("answered {status}")));
        }
        let product: Product = response
            .json()
            .await
            .map_err(|e| LookupError::Fatal(format!("unreadable product {id}: {e}")))?;
        Ok(Some(Quote {
            price_cents: product.price_cents,
            currency: product.currency,
        }))
    }
}
