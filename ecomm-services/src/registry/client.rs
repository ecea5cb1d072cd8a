//! Self-registration for product, order and gateway: register on start, renew every third
//! of the TTL (re-registering if the registry forgot us), deregister when draining.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::task::JoinHandle;

use super::name::{to_dns_label, validate_instance_id, validate_service};
use super::wire::RegisterRequest;
use crate::http::Shutdown;

/// Registration flags, flattened into every service's args.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RegistrationArgs {
    /// Registry base URL (e.g. http://172.21.0.10:8500); when set, the service registers
    /// itself, heartbeats, and deregisters on drain. Unset: no registration.
    #[arg(long, env = "ECOMM_REGISTRY_URL")]
    pub registry_url: Option<String>,
    /// Bearer token for registry writes.
    #[arg(long, env = "ECOMM_REGISTRY_TOKEN", hide_env_values = true)]
    pub registry_token: Option<String>,
    /// Address to advertise (default: the listen address, or if that is 0.0.0.0 the local
    /// address the kernel would use to reach the registry).
    #[arg(long, env = "ECOMM_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<IpAddr>,
    /// Port to advertise (default: the bound listen port).
    #[arg(long, env = "ECOMM_ADVERTISE_PORT")]
    pub advertise_port: Option<u16>,
    /// Instance id, a DNS label (default: `<service>-<address>-<port>` with `-` separators).
    #[arg(long, env = "ECOMM_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Lease length in seconds (default 10); renewed every third of it.
    #[arg(long, env = "ECOMM_REGISTRY_TTL_SECONDS", default_value_t = 10)]
    pub registry_ttl_seconds: u64,
}

/// Why registration could not be set up or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The registry URL does not parse or has no host.
    #[error("invalid registry URL {url:?}: expected http://host:port ({reason})")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No token given although a registry URL was.
    #[error("--registry-token / ECOMM_REGISTRY_TOKEN is required with --registry-url {0}")]
    MissingToken(String),
    /// Service name or instance id is not a DNS label.
    #[error(transparent)]
    Invalid(#[from] super::RegistryError),
    /// Could not work out which address to advertise.
    #[error("cannot determine the address to advertise towards {registry}: {source}; pass --advertise-address")]
    NoAdvertiseAddress {
        /// The registry address.
        registry: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The HTTP call failed.
    #[error("registry call {what} failed: {source}")]
    Transport {
        /// Which call.
        what: &'static str,
        /// The error.
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status.
    #[error("registry call {what} answered {status}")]
    Status {
        /// Which call.
        what: &'static str,
        /// The status.
        status: u16,
    },
}

/// One instance's registration with a registry.
#[derive(Clone, Debug)]
pub struct Registration {
    client: reqwest::Client,
    instance_url: String,
    token: String,
    body: RegisterRequest,
    /// Service name registered under.
    pub service: String,
    /// Instance id registered as.
    pub id: String,
}

/// Outcome of a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Renewed {
    Ok,
    Forgotten,
}

impl Registration {
    /// Builds the registration for `service` listening on `bound`; `None` without a registry URL.
    pub fn from_args(
        args: &RegistrationArgs,
        service: &str,
        bound: SocketAddr,
    ) -> Result<Option<Self>, RegistrationError> {
        let Some(url) = args.registry_url.as_deref() else {
            return Ok(None);
        };
        validate_service(service)?;
        let token = args
            .registry_token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistrationError::MissingToken(url.to_owned()))?;
        let base = parse_base(url)?;
        let address = match args.advertise_address {
            Some(address) => address,
            None if !bound.ip().is_unspecified() => bound.ip(),
            None => route_source(&base)?,
        };
        let port = args.advertise_port.unwrap_or(bound.port());
        let id = match &args.instance_id {
            Some(id) => id.clone(),
            None => to_dns_label(&format!("{service}-{address}-{port}")),
        };
        validate_instance_id(&id)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .no_proxy()
            .build()
            .map_err(|source| RegistrationError::Transport {
                what: "client setup",
                source,
            })?;
        Ok(Some(Self {
            client,
            instance_url: format!(
                "{}/v1/services/{service}/instances/{id}",
                base.as_str().trim_end_matches('/')
            ),
            token,
            body: RegisterRequest {
                address,
                port,
                tags: Vec::new(),
                meta: Default::default(),
                ttl_seconds: args.registry_ttl_seconds.max(1),
            },
            service: service.to_owned(),
            id,
        }))
    }

    /// The address and port advertised.
    pub fn advertised(&self) -> SocketAddr {
        SocketAddr::new(self.body.address, self.body.port)
    }

    /// Registers (idempotent).
    pub async fn register(&self) -> Result<(), RegistrationError> {
        let response = self
            .client
            .put(&self.instance_url)
            .bearer_auth(&self.token)
            .json(&self.body)
            .send()
            .await
            .map_err(|source| RegistrationError::Transport {
                what: "register",
                source,
            })?;
        expect_success("register", response.status())
    }

    async fn renew(&self) -> Result<Renewed, RegistrationError> {
        let response = self
            .client
            .put(format!("{}/renew", self.instance_url))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| RegistrationError::Transport {
                what: "renew",
                source,
            })?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(Renewed::Forgotten);
        }
        expect_success("renew", response.status()).map(|()| Renewed::Ok)
    }

    /// Deregisters; an instance the registry no longer knows counts as done.
    pub async fn deregister(&self) -> Result<(), RegistrationError> {
        let response = self
            .client
            .delete(&self.instance_url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| RegistrationError::Transport {
                what: "deregister",
                source,
            })?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        expect_success("deregister", response.status())
    }

    /// Registers, heartbeats until `shutdown`, then deregisters; await the handle after the
    /// server has drained to be sure the deregistration was sent.
    pub fn spawn(self, shutdown: Shutdown) -> JoinHandle<()> {
        tokio::spawn(async move {
            let period = Duration::from_millis(self.body.ttl_seconds * 1000 / 3)
                .max(Duration::from_millis(200));
            let mut registered = false;
            loop {
                let step = if registered {
                    self.renew().await.map(|renewed| {
                        if renewed == Renewed::Forgotten {
                            tracing::warn!(service = %self.service, id = %self.id, "registry forgot this instance; registering again");
                            registered = false;
                        }
                    })
                } else {
                    self.register().await.map(|()| {
                        tracing::info!(service = %self.service, id = %self.id, advertised = %self.advertised(), "registered");
                        registered = true;
                    })
                };
                if let Err(error) = step {
                    tracing::warn!(%error, "registry heartbeat failed; retrying");
                }
                let delay = if registered {
                    period
                } else {
                    Duration::from_secs(1)
                };
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.wait() => break,
                }
            }
            match self.deregister().await {
                Ok(()) => tracing::info!(service = %self.service, id = %self.id, "deregistered"),
                Err(error) => {
                    tracing::warn!(%error, "deregistration failed; the lease will expire")
                }
            }
        })
    }
}

fn expect_success(what: &'static str, status: StatusCode) -> Result<(), RegistrationError> {
    if status.is_success() {
        Ok(())
    } else {
        Err(RegistrationError::Status {
            what,
            status: status.as_u16(),
        })
    }
}

/// Parses a registry base URL (http only).
pub fn parse_base(url: &str) -> Result<reqwest::Url, RegistrationError> {
    let invalid = |reason: String| RegistrationError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if parsed.scheme() != "http" {
        return Err(invalid(format!("scheme {:?} is not http", parsed.scheme())));
    }
    if parsed.host_str().is_none() {
        return Err(invalid("no host".to_owned()));
    }
    Ok(parsed)
}

/// The local address the kernel would use to reach the registry (a connected UDP socket
/// sends nothing; it only asks the routing table).
fn route_source(base: &reqwest::Url) -> Result<IpAddr, RegistrationError> {
    let host = base.host_str().unwrap_or_default();
    let port = base.port_or_known_default().unwrap_or(80);
    let registry = format!("{host}:{port}");
    let fail = |source| RegistrationError::NoAdvertiseAddress {
        registry: registry.clone(),
        source,
    };
    let target = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| fail(std::io::Error::other("no address")))?;
    let bind: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(bind).map_err(fail)?;
    socket.connect(target).map_err(fail)?;
    Ok(socket.local_addr().map_err(fail)?.ip())
}
