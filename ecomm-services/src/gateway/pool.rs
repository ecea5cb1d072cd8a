//! An upstream pool: the current instance list (swapped atomically on discovery changes),
//! lock-free round-robin over selectable instances, and passive ejection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::instance::{ms_at, now_ms, Instance};
use super::outlier::EjectionPolicy;
use crate::http::{Counter, Metrics};
use std::time::Instant;

/// The instances behind one route (e.g. every product instance).
pub struct Pool {
    /// Upstream name (`product`, `order`), used in logs and metric labels.
    pub name: String,
    instances: ArcSwap<Vec<Arc<Instance>>>,
    next: AtomicUsize,
    policy: EjectionPolicy,
    metrics: Metrics,
    ejections: Counter,
}

impl Pool {
    /// An empty pool; discovery fills it with [`Pool::set_addresses`].
    pub fn new(name: &str, policy: EjectionPolicy, metrics: &Metrics) -> Self {
        Self {
            name: name.to_owned(),
            instances: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
            policy,
            metrics: metrics.clone(),
            ejections: metrics.counter(
                "gateway_ejections_total",
                "Instances ejected after consecutive failures.",
                &[("upstream", name)],
            ),
        }
    }

    /// The current instances.
    pub fn instances(&self) -> Arc<Vec<Arc<Instance>>> {
        self.instances.load_full()
    }

    /// Replaces the instance set, keeping the health state of addresses already known.
    pub fn set_addresses(&self, mut addrs: Vec<SocketAddr>) {
        addrs.sort();
        addrs.dedup();
        let current = self.instances.load();
        let unchanged =
            current.len() == addrs.len() && current.iter().zip(&addrs).all(|(i, a)| i.addr == *a);
        if unchanged {
            return;
        }
        let next: Vec<Arc<Instance>> = addrs
            .iter()
            .map(|addr| {
                current
                    .iter()
                    .find(|i| i.addr == *addr)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(self.new_instance(*addr)))
            })
            .collect();
        tracing::info!(upstream = %self.name, instances = ?addrs, "upstream set changed");
        self.instances.store(Arc::new(next));
    }

    fn new_instance(&self, addr: SocketAddr) -> Instance {
        let label = addr.to_string();
        let labels = [
            ("upstream", self.name.as_str()),
            ("instance", label.as_str()),
        ];
        Instance::new(
            addr,
            self.metrics.counter(
                "gateway_upstream_requests_total",
                "Tries sent to each upstream instance.",
                &labels,
            ),
            self.metrics.counter(
                "gateway_upstream_failures_total",
                "Failed tries (transport error, timeout, 502/503/504) per upstream instance.",
                &labels,
            ),
        )
    }

    /// The next selectable instance in round-robin order, skipping those in `tried`.
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<Arc<Instance>> {
        self.pick_at(tried, Instant::now())
    }

    /// [`Pool::pick`] with the clock already read (`now`).
    pub fn pick_at(&self, tried: &[SocketAddr], now: Instant) -> Option<Arc<Instance>> {
        let list = self.instances.load();
        let n = list.len();
        if n == 0 {
            return None;
        }
        let now = ms_at(now);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &list[(start + i) % n])
            .find(|inst| inst.selectable(now) && !tried.contains(&inst.addr))
            .cloned()
    }

    /// Whether any instance can take traffic now.
    pub fn has_selectable(&self) -> bool {
        let now = now_ms();
        self.instances.load().iter().any(|i| i.selectable(now))
    }

    /// Records a failed try on `instance`, ejecting it when the policy says so.
    pub fn record_failure(&self, instance: &Instance) {
        let failures = instance.record_failure();
        if failures < self.policy.consecutive_failures {
            return;
        }
        let now = now_ms();
        if instance.is_ejected(now) {
            return;
        }
        let list = self.instances.load();
        let ejected = list.iter().filter(|i| i.is_ejected(now)).count();
        if !self.policy.may_eject(ejected, list.len()) {
            return;
        }
        let backoff = self.policy.backoff(instance.next_ejection());
        let until = now + u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX / 2);
        let n = instance.eject(until);
        self.ejections.inc();
        tracing::warn!(upstream = %self.name, instance = %instance.addr, ejection = n, ?backoff, "instance ejected");
    }
}
