//! `ecomm healthcheck URL`: GET a URL and exit 0 on 2xx, 1 otherwise — for container health
//! checks in images without curl.

use std::time::Duration;

/// Flags of `ecomm healthcheck`.
#[derive(clap::Args, Debug, Clone)]
pub struct HealthcheckArgs {
    /// URL to GET, e.g. http://127.0.0.1:8001/readyz.
    pub url: String,
    /// Give up after this many milliseconds (default 2000).
    #[arg(long, env = "ECOMM_HEALTHCHECK_TIMEOUT_MS", default_value_t = 2000)]
    pub timeout_ms: u64,
}

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// The URL could not be parsed or is not http.
    #[error("invalid URL {url:?}: expected http://host:port/path ({reason})")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// No answer (refused, timed out, reset).
    #[error("GET {url} failed: {source}")]
    Unreachable {
        /// The URL given.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The answer was not 2xx.
    #[error("GET {url} answered {status}, expected 2xx")]
    Unhealthy {
        /// The URL given.
        url: String,
        /// The status received.
        status: u16,
    },
}

/// Runs one check; `Ok(status)` only for a 2xx answer.
pub async fn check(args: &HealthcheckArgs) -> Result<u16, HealthcheckError> {
    let url = reqwest::Url::parse(&args.url).map_err(|e| HealthcheckError::InvalidUrl {
        url: args.url.clone(),
        reason: e.to_string(),
    })?;
    if url.scheme() != "http" {
        return Err(HealthcheckError::InvalidUrl {
            url: args.url.clone(),
            reason: format!("scheme {:?} is not http", url.scheme()),
        });
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .no_proxy()
        .build()
        .map_err(|source| HealthcheckError::Unreachable {
            url: args.url.clone(),
            source,
        })?;
    let response =
        client
            .get(url)
            .send()
            .await
            .map_err(|source| HealthcheckError::Unreachable {
                url: args.url.clone(),
                source,
            })?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(HealthcheckError::Unhealthy {
            url: args.url.clone(),
            status,
        })
    }
}
