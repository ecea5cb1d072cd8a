//! The proxy path (hyper directly, no framework): route by prefix, cap the body, pick an
//! instance round-robin, forward with per-try and total timeouts, retry only where safe,
//! and answer errors as problem+json.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use super::conn_pool::ConnPool;

use super::instance::Instance;
use super::pool::Pool;
use super::request_limits::{check_parsed, HeadGuard, Rejections, RequestLimits, Violation};
use super::upstream_conn::{ExchangeError, Exchanged, OutgoingRequest};
use crate::http::{request_id_from, Counter, Metrics, Problem, RouteStats, REQUEST_ID};

/// Body of every gateway response: an upstream's (buffered whole), or generated here.
pub type GatewayBody = Full<Bytes>;

/// The pooled keep-alive client used for active health checks.
pub type UpstreamClient = Client<HttpConnector, Full<Bytes>>;

/// The most tries a request may get (first try plus retries).
pub const MAX_TRIES_LIMIT: usize = 8;

/// Timeouts and limits of the proxy path.
#[derive(Debug, Clone, Copy)]
pub struct ProxyLimits {
    /// Per-try timeout until response headers (default 5 s).
    pub per_try: Duration,
    /// Timeout across all tries until response headers (default 15 s).
    pub total: Duration,
    /// Tries per request, first included, 1..=8 (default 3).
    pub max_tries: usize,
    /// Largest request body accepted, in bytes (default 1 MiB).
    pub max_body_bytes: usize,
    /// Largest upstream response body buffered, in bytes; larger gets 502 (default 16 MiB).
    pub max_response_bytes: usize,
    /// Bounds of the request head (431/414 beyond them).
    pub request: RequestLimits,
}

/// One routed prefix and the pool behind it (cheap to clone: shared handles).
#[derive(Clone)]
pub struct Route {
    /// Path prefix, e.g. `/api/products` (matches itself, `prefix/…` and `prefix?…`).
    pub prefix: &'static str,
    /// The instances serving it.
    pub pool: Arc<Pool>,
    stats: Arc<RouteStats>,
    retries: Counter,
}

impl Route {
    /// A route for `prefix` served by `pool`.
    pub fn new(prefix: &'static str, pool: Arc<Pool>, metrics: &Metrics) -> Self {
        Self {
            prefix,
            stats: metrics.route(prefix),
            retries: metrics.counter(
                "gateway_retries_total",
                "Retries (tries after the first) per upstream.",
                &[("upstream", pool.name.as_str())],
            ),
            pool,
        }
    }

    fn matches(&self, path: &str) -> bool {
        match path.strip_prefix(self.prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// Why the last try failed.
enum Failure {
    NoInstance,
    Connect,
    Timeout,
    Transport(String),
}

/// The gateway's request handler; each proxy thread has its own (own upstream connection
/// pool), all sharing routes, instance pools and metrics.
#[derive(Clone)]
pub struct Proxy {
    routes: Vec<Route>,
    conns: Arc<ConnPool>,
    limits: ProxyLimits,
    metrics: Metrics,
    local: Arc<RouteStats>,
    guard: Arc<HeadGuard>,
}

impl Proxy {
    /// A proxy over `routes` forwarding over connections from `conns`.
    pub fn new(routes: Vec<Route>, conns: ConnPool, limits: ProxyLimits, metrics: Metrics) -> Self {
        let guard = Arc::new(HeadGuard {
            limits: limits.request,
            max_body_bytes: limits.max_body_bytes,
            rejections: Rejections::new(&metrics),
        });
        Self {
            routes,
            conns: Arc::new(conns),
            limits,
            local: metrics.route("local"),
            metrics,
            guard,
        }
    }

    /// The same proxy for another proxy thread: its own connection pool and its own shards
    /// of the request metrics (no counter shared between cores on the hot path).
    pub fn with_conn_pool(&self, conns: ConnPool) -> Self {
        let routes = self
            .routes
            .iter()
            .map(|route| Route {
                stats: self.metrics.route_shard(route.prefix),
                ..route.clone()
            })
            .collect();
        Self {
            routes,
            conns: Arc::new(conns),
            local: self.metrics.route_shard("local"),
            ..self.clone()
        }
    }

    /// Whether every route has at least one instance able to take traffic.
    pub fn ready(&self) -> Result<(), String> {
        match self.routes.iter().find(|r| !r.pool.has_selectable()) {
            Some(route) => Err(format!("no healthy {} instance", route.pool.name)),
            None => Ok(()),
        }
    }

    /// The request limits and their counters, for the client streams that check heads.
    pub fn head_guard(&self) -> Arc<HeadGuard> {
        self.guard.clone()
    }

    /// The refusal of a parsed request whose head breaks a request limit (for heads the
    /// client stream could not check as they arrived), counted; None when it keeps them.
    pub fn refuse_head<B>(&self, req: &Request<B>) -> Option<Response<GatewayBody>> {
        let violation = check_parsed(req, &self.guard.limits)?;
        self.guard.rejections.count(violation);
        let mut response =
            problem(&violation.problem(&self.guard.limits, self.limits.max_body_bytes));
        self.local
            .record(response.status().as_u16(), Duration::ZERO);
        response
            .headers_mut()
            .insert(REQUEST_ID.clone(), request_id_from(req.headers()));
        Some(response)
    }

    /// Handles one client request from `peer`.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<GatewayBody> {
        let started = Instant::now();
        let id = request_id_from(req.headers());
        let route = self.routes.iter().find(|r| r.matches(req.uri().path()));
        let (mut response, stats) = match route {
            Some(route) => (
                self.forward(route, req, peer, &id, started).await,
                &route.stats,
            ),
            None => (self.local(req.method(), req.uri().path()), &self.local),
        };
        stats.record(response.status().as_u16(), started.elapsed());
        response.headers_mut().insert(REQUEST_ID.clone(), id);
        response
    }

    fn local(&self, method: &Method, path: &str) -> Response<GatewayBody> {
        if method != Method::GET && method != Method::HEAD {
            return problem(&Problem::not_found(format!("no route for {method} {path}")));
        }
        match path {
            "/livez" => json(StatusCode::OK, r#"{"status":"live"}"#.into()),
            "/readyz" => match self.ready() {
                Ok(()) => json(StatusCode::OK, r#"{"status":"ready"}"#.into()),
                Err(reason) => problem(&Problem::unavailable(format!("not ready: {reason}"))),
            },
            "/metrics" => {
                let mut response = Response::new(Full::new(Bytes::from(self.metrics.render())));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            _ => problem(&Problem::not_found(format!(
                "no route for {path}; the gateway serves /api/products and /api/orders"
            ))),
        }
    }

    async fn forward(
        &self,
        route: &Route,
        req: Request<Incoming>,
        peer: SocketAddr,
        id: &HeaderValue,
        started: Instant,
    ) -> Response<GatewayBody> {
        let (parts, body) = req.into_parts();
        let body = match read_body(&parts.headers, body, self.limits.max_body_bytes).await {
            Ok(body) => body,
            Err(p) => {
                if p.status == StatusCode::PAYLOAD_TOO_LARGE {
                    self.guard.rejections.count(Violation::BodyTooLarge);
                }
                return problem(&p);
            }
        };
        let retry_after_send =
            is_idempotent(&parts.method) || parts.headers.contains_key("idempotency-key");
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let deadline = started + self.limits.total;
        let mut tried = [SocketAddr::from(([0, 0, 0, 0], 0)); MAX_TRIES_LIMIT];
        let mut failure = Failure::NoInstance;
        let tries = self.limits.max_tries.clamp(1, MAX_TRIES_LIMIT);
        let request = UpstreamRequest {
            outgoing: OutgoingRequest {
                method: &parts.method,
                path: &path_and_query,
                headers: &parts.headers,
                body: &body,
                client: peer.ip(),
                request_id: id,
            },
            redo_stale: retry_after_send,
        };
        for attempt in 0..tries {
            // The first try reuses the clock reading taken when the request arrived.
            let now = if attempt == 0 {
                started
            } else {
                Instant::now()
            };
            let Some(instance) = route.pool.pick_at(&tried[..attempt], now) else {
                break;
            };
            tried[attempt] = instance.addr;
            let remaining = deadline.saturating_duration_since(now);
            if remaining.is_zero() {
                failure = Failure::Timeout;
                break;
            }
            if attempt > 0 {
                route.retries.inc();
            }
            instance.requests.inc();
            let per_try = self.limits.per_try.min(remaining);
            // The deadline from the clock reading at hand (no second read for the timer).
            let try_deadline = tokio::time::Instant::from_std(now + per_try);
            match tokio::time::timeout_at(try_deadline, self.try_once(&instance, &request, now))
                .await
            {
                Ok(Ok(response)) => {
                    if matches!(response.status().as_u16(), 502..=504) {
                        route.pool.record_failure(&instance);
                    } else {
                        instance.record_success();
                    }
                    // Hop-by-hop headers were left out when the response was read.
                    let (head, body) = response.into_parts();
                    return Response::from_parts(head, Full::new(body));
                }
                Ok(Err(error)) => {
                    route.pool.record_failure(&instance);
                    let request_id = id.to_str().unwrap_or("-");
                    if error.is_connect() {
                        tracing::debug!(request_id, instance = %instance.addr, %error, "connect failed; trying another instance");
                        failure = Failure::Connect;
                        continue;
                    }
                    tracing::warn!(request_id, instance = %instance.addr, %error, "upstream try failed");
                    failure = Failure::Transport(error.to_string());
                }
                Err(_) => {
                    route.pool.record_failure(&instance);
                    tracing::warn!(request_id = id.to_str().unwrap_or("-"), instance = %instance.addr, ?per_try, "upstream try timed out");
                    failure = Failure::Timeout;
                }
            }
            if !retry_after_send {
                break;
            }
        }
        let name = &route.pool.name;
        problem(&match failure {
            Failure::NoInstance => Problem::unavailable(format!("no healthy {name} instance")),
            Failure::Connect => {
                Problem::unavailable(format!("no {name} instance accepted a connection"))
            }
            Failure::Timeout => Problem::gateway_timeout(format!("{name} did not answer in time")),
            Failure::Transport(error) => {
                Problem::bad_gateway(format!("{name} failed to answer: {error}"))
            }
        })
    }

    /// One try on `instance` over a pooled connection (a new one when none is idle). A
    /// pooled connection that turns out closed before any response byte (the upstream
    /// dropped it while idle) is replaced by a new one once, when the request may be re-sent;
    /// if that one closes unanswered too, the instance counts as refusing connections.
    async fn try_once(
        &self,
        instance: &Instance,
        request: &UpstreamRequest<'_>,
        now: Instant,
    ) -> Result<Response<Bytes>, ExchangeError> {
        let (mut conn, reused) = self.conns.checkout(instance.addr, now).await?;
        let mut result = request
            .send(&mut conn, instance, self.limits.max_response_bytes)
            .await;
        if reused
            && request.redo_stale
            && result.as_ref().is_err_and(ExchangeError::nothing_received)
        {
            conn = self.conns.connect(instance.addr).await?;
            result = request
                .send(&mut conn, instance, self.limits.max_response_bytes)
                .await;
            if result.as_ref().is_err_and(ExchangeError::nothing_received) {
                // Old and new connection both closed unanswered: the instance is going away.
                return Err(ExchangeError::ClosedOnArrival {
                    addr: instance.addr,
                });
            }
        }
        let exchanged = result?;
        if exchanged.reusable {
            self.conns.checkin(conn, now);
        }
        Ok(exchanged.response)
    }
}

/// GET, HEAD, OPTIONS, TRACE, PUT and DELETE may be repeated safely (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Reads the whole body (retries need it again), refusing more than `cap` bytes with 413.
async fn read_body(
    headers: &http::HeaderMap,
    body: Incoming,
    cap: usize,
) -> Result<Bytes, Problem> {
    let too_large = || Problem::payload_too_large(cap as u64);
    match headers.get(header::CONTENT_LENGTH) {
        Some(value) => {
            let length: u64 = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| Problem::bad_request("Content-Length is not a number"))?;
            if length > cap as u64 {
                return Err(too_large());
            }
            if length == 0 {
                return Ok(Bytes::new());
            }
        }
        None if !headers.contains_key(header::TRANSFER_ENCODING) => return Ok(Bytes::new()),
        None => {}
    }
    match Limited::new(body, cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(error) => Err(Problem::bad_request(format!(
            "could not read the request body: {error}"
        ))),
    }
}

/// The parts of a client request sent to an upstream, the same for every try.
struct UpstreamRequest<'a> {
    outgoing: OutgoingRequest<'a>,
    /// Whether a request lost on a stale pooled connection may be re-sent.
    redo_stale: bool,
}

impl UpstreamRequest<'_> {
    async fn send(
        &self,
        conn: &mut super::upstream_conn::UpstreamConn,
        instance: &Instance,
        max_response: usize,
    ) -> Result<Exchanged, ExchangeError> {
        conn.exchange(&self.outgoing, &instance.authority, max_response)
            .await
    }
}

fn problem(problem: &Problem) -> Response<GatewayBody> {
    problem.to_response()
}

fn json(status: StatusCode, body: Bytes) -> Response<GatewayBody> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
