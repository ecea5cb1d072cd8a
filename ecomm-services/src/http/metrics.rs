//! A small Prometheus registry: requests by route and status, a latency histogram per route,
//! and named counters/gauges. Recording is lock-free (atomics); only the first use of a new
//! route or series takes a write lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue};

/// Upper bounds (seconds) of the latency histogram buckets, 0.5 ms .. 10 s.
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Statuses 100..=599 are counted individually; anything else lands in 599.
const STATUS_SLOTS: usize = 500;

/// The process-wide metrics registry of one service; cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    service: String,
    /// Per route, one or more shards (one per proxy thread avoids cross-core contention).
    routes: RwLock<BTreeMap<String, Vec<Arc<RouteStats>>>>,
    series: RwLock<BTreeMap<String, Family>>,
}

struct Family {
    help: &'static str,
    kind: Kind,
    members: BTreeMap<String, Arc<AtomicI64>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// Request counts by status and the latency histogram of one route; grab once, record often.
pub struct RouteStats {
    statuses: Box<[AtomicU64]>,
    buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl RouteStats {
    fn new() -> Self {
        Self {
            statuses: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one finished request: its status and how long it took.
    pub fn record(&self, status: u16, elapsed: Duration) {
        let slot = usize::from(status.clamp(100, 599) - 100);
        self.statuses[slot].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS_SECONDS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// A monotonically increasing counter handle.
#[derive(Clone)]
pub struct Counter(Arc<AtomicI64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0
            .fetch_add(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        u64::try_from(self.0.load(Ordering::Relaxed)).unwrap_or(0)
    }
}

/// A gauge handle: a value that goes up and down.
#[derive(Clone)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Adds `d` (may be negative).
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Metrics {
    /// An empty registry; `service` becomes the `service` label on request metrics.
    pub fn new(service: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                service: service.to_owned(),
                routes: RwLock::new(BTreeMap::new()),
                series: RwLock::new(BTreeMap::new()),
            }),
        }
    }

    /// The stats of `route` (a route template like `/api/products/{id}`), created on first use.
    pub fn route(&self, route: &str) -> Arc<RouteStats> {
        if let Some(stats) = read(&self.inner.routes).get(route).and_then(|s| s.first()) {
            return stats.clone();
        }
        let mut routes = write(&self.inner.routes);
        let shards = routes.entry(route.to_owned()).or_default();
        if shards.is_empty() {
            shards.push(Arc::new(RouteStats::new()));
        }
        shards[0].clone()
    }

    /// A new shard of `route`'s stats for one thread's exclusive recording; rendering sums
    /// all shards, so the exposition is the same as with one shared [`Metrics::route`].
    pub fn route_shard(&self, route: &str) -> Arc<RouteStats> {
        let shard = Arc::new(RouteStats::new());
        write(&self.inner.routes)
            .entry(route.to_owned())
            .or_default()
            .push(shard.clone());
        shard
    }

    /// A counter `name{labels}` (name should end in `_total`); the same series returns the same handle.
    pub fn counter(&self, name: &str, help: &'static str, labels: &[(&str, &str)]) -> Counter {
        Counter(self.series(name, help, Kind::Counter, labels))
    }

    /// A gauge `name{labels}`; the same series returns the same handle.
    pub fn gauge(&self, name: &str, help: &'static str, labels: &[(&str, &str)]) -> Gauge {
        Gauge(self.series(name, help, Kind::Gauge, labels))
    }

    fn series(
        &self,
        name: &str,
        help: &'static str,
        kind: Kind,
        labels: &[(&str, &str)],
    ) -> Arc<AtomicI64> {
        let key = render_labels(labels);
        let mut series = write(&self.inner.series);
        let family = series.entry(name.to_owned()).or_insert_with(|| Family {
            help,
            kind,
            members: BTreeMap::new(),
        });
        family.members.entry(key).or_default().clone()
    }

    /// The whole registry in Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let service = escape(&self.inner.service);
        let routes = read(&self.inner.routes);
        out.push_str("# HELP http_requests_total HTTP requests served, by route and status.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        for (route, shards) in routes.iter() {
            let route = escape(route);
            for slot in 0..STATUS_SLOTS {
                let n: u64 = shards
                    .iter()
                    .map(|s| s.statuses[slot].load(Ordering::Relaxed))
                    .sum();
                if n > 0 {
                    let status = slot + 100;
                    let _ = writeln!(
                        out,
                        "http_requests_total{{service=\"{service}\",route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        out.push_str(
            "# HELP http_request_duration_seconds Time from request to response headers.\n",
        );
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for (route, shards) in routes.iter() {
            let route = escape(route);
            let mut cumulative = 0;
            for (i, bound) in LATENCY_BUCKETS_SECONDS.iter().enumerate() {
                cumulative += shards
                    .iter()
                    .map(|s| s.buckets[i].load(Ordering::Relaxed))
                    .sum::<u64>();
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{service=\"{service}\",route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count: u64 = shards.iter().map(|s| s.count.load(Ordering::Relaxed)).sum();
            let sum = shards
                .iter()
                .map(|s| s.sum_micros.load(Ordering::Relaxed))
                .sum::<u64>() as f64
                / 1e6;
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{service=\"{service}\",route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{service=\"{service}\",route=\"{route}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{service=\"{service}\",route=\"{route}\"}} {count}"
            );
        }
        drop(routes);
        for (name, family) in read(&self.inner.series).iter() {
            let kind = match family.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in &family.members {
                let _ = writeln!(out, "{name}{labels} {}", value.load(Ordering::Relaxed));
            }
        }
        out
    }

    /// `GET /metrics` serving [`Metrics::render`] as `text/plain; version=0.0.4`.
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/metrics", get(render_handler))
            .with_state(self.clone())
    }

    /// Middleware recording every request under its matched route template (or `unmatched`).
    pub async fn record_layer(
        State(metrics): State<Metrics>,
        req: Request,
        next: Next,
    ) -> Response {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_owned());
        let started = Instant::now();
        let response = next.run(req).await;
        let route = route.as_deref().unwrap_or("unmatched");
        metrics
            .route(route)
            .record(response.status().as_u16(), started.elapsed());
        response
    }
}

async fn render_handler(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        metrics.render(),
    )
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let body: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_histogram_and_custom_series() {
        let metrics = Metrics::new("product");
        metrics
            .route("/api/products/{id}")
            .record(200, Duration::from_millis(3));
        metrics
            .counter("cache_hits_total", "Cache hits.", &[("cache", "redis")])
            .add(2);
        metrics.gauge("leases_active", "Active leases.", &[]).set(4);
        let text = metrics.render();
        assert!(text.contains(
            "http_requests_total{service=\"product\",route=\"/api/products/{id}\",status=\"200\"} 1"
        ));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"0.0025\"} 0"));
        assert!(text.contains("cache_hits_total{cache=\"redis\"} 2"));
        assert!(text.contains("leases_active 4"));
    }

    #[test]
    fn shards_of_a_route_render_as_one_series() {
        let metrics = Metrics::new("gateway");
        metrics
            .route_shard("/api/products")
            .record(200, Duration::from_millis(1));
        metrics
            .route_shard("/api/products")
            .record(200, Duration::from_millis(30));
        metrics
            .route("/api/products")
            .record(503, Duration::from_millis(1));
        let text = metrics.render();
        assert!(text.contains(
            "http_requests_total{service=\"gateway\",route=\"/api/products\",status=\"200\"} 2"
        ));
        assert!(text.contains("route=\"/api/products\",status=\"503\"} 1"));
        assert!(text.contains(
            "http_request_duration_seconds_count{service=\"gateway\",route=\"/api/products\"} 3"
        ));
        assert!(text.contains("route=\"/api/products\",le=\"0.025\"} 2"));
    }
}
