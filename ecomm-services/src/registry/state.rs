//! The registry's state: services → instances with TTL leases, a change index, and a watch
//! channel that wakes long-pollers whenever any service's set changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::name::{validate_instance_id, validate_service};
use super::wire::{
    InstanceView, LeaseView, RegisterRequest, ServiceList, ServiceSummary, ServiceView,
    MAX_TTL_SECONDS,
};
use super::RegistryError;
use crate::http::{Counter, Gauge, Metrics};

/// Shared registry state; all methods are short critical sections, never held across awaits.
pub struct Registry {
    state: Mutex<State>,
    changes: watch::Sender<u64>,
    leases_active: Gauge,
    registrations: Counter,
    expirations: Counter,
    deregistrations: Counter,
}

#[derive(Default)]
struct State {
    index: u64,
    services: HashMap<String, Service>,
}

#[derive(Default)]
struct Service {
    index: u64,
    instances: BTreeMap<String, Lease>,
}

struct Lease {
    request: RegisterRequest,
    expires_at: Instant,
}

impl Lease {
    fn live(&self, now: Instant) -> bool {
        self.expires_at > now
    }
}

/// Whether a registration created the instance or updated/refreshed an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// A new live instance appeared (HTTP 201).
    Created,
    /// An existing live instance was refreshed or updated (HTTP 200).
    Updated,
}

impl Registry {
    /// An empty registry whose counters live in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            state: Mutex::new(State::default()),
            changes: watch::channel(0).0,
            leases_active: metrics.gauge("registry_leases_active", "Live instance leases.", &[]),
            registrations: metrics.counter(
                "registry_registrations_total",
                "Register calls that created or changed an instance.",
                &[],
            ),
            expirations: metrics.counter(
                "registry_expirations_total",
                "Leases removed by the sweeper because they were not renewed.",
                &[],
            ),
            deregistrations: metrics.counter(
                "registry_deregistrations_total",
                "Instances removed by DELETE.",
                &[],
            ),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers (or refreshes) `service/id`; idempotent: repeating it only extends the lease.
    pub fn register(
        &self,
        service: &str,
        id: &str,
        request: RegisterRequest,
    ) -> Result<(Registered, LeaseView), RegistryError> {
        validate_service(service)?;
        validate_instance_id(id)?;
        if request.ttl_seconds == 0 || request.ttl_seconds > MAX_TTL_SECONDS {
            return Err(RegistryError::InvalidTtl(request.ttl_seconds));
        }
        if request.port == 0 {
            return Err(RegistryError::InvalidPort);
        }
        let now = Instant::now();
        let ttl = request.ttl_seconds;
        let expires_at = now + Duration::from_secs(ttl);
        let mut state = self.lock();
        let next_index = state.index + 1;
        let entry = state.services.entry(service.to_owned()).or_default();
        let (outcome, changed) = match entry.instances.get_mut(id) {
            Some(lease) if lease.live(now) => {
                let changed = lease.request != request;
                lease.request = request;
                lease.expires_at = expires_at;
                (Registered::Updated, changed)
            }
            _ => {
                entry.instances.insert(
                    id.to_owned(),
                    Lease {
                        request,
                        expires_at,
                    },
                );
                (Registered::Created, true)
            }
        };
        if changed {
            entry.index = next_index;
        }
        let index = entry.index;
        if changed {
            state.index = next_index;
            self.registrations.inc();
            self.publish(&state, now);
        }
        Ok((
            outcome,
            LeaseView {
                service: service.to_owned(),
                id: id.to_owned(),
                ttl_seconds: ttl,
                index,
            },
        ))
    }

    /// Extends a live lease by its TTL; an expired or unknown lease is an error (re-register).
    pub fn renew(&self, service: &str, id: &str) -> Result<LeaseView, RegistryError> {
        let now = Instant::now();
        let mut state = self.lock();
        let unknown = || RegistryError::UnknownInstance {
            service: service.to_owned(),
            id: id.to_owned(),
        };
        let entry = state.services.get_mut(service).ok_or_else(unknown)?;
        let index = entry.index;
        let lease = entry
            .instances
            .get_mut(id)
            .filter(|lease| lease.live(now))
            .ok_or_else(unknown)?;
        lease.expires_at = now + Duration::from_secs(lease.request.ttl_seconds);
        Ok(LeaseView {
            service: service.to_owned(),
            id: id.to_owned(),
            ttl_seconds: lease.request.ttl_seconds,
            index,
        })
    }

    /// Removes an instance now (graceful shutdown); unknown instances are an error.
    pub fn deregister(&self, service: &str, id: &str) -> Result<u64, RegistryError> {
        let now = Instant::now();
        let mut state = self.lock();
        let next_index = state.index + 1;
        let removed = state
            .services
            .get_mut(service)
            .and_then(|entry| entry.instances.remove(id).map(|lease| (entry, lease)));
        match removed {
            Some((entry, _lease)) => {
                entry.index = next_index;
                state.index = next_index;
                self.deregistrations.inc();
                self.publish(&state, now);
                Ok(next_index)
            }
            None => Err(RegistryError::UnknownInstance {
                service: service.to_owned(),
                id: id.to_owned(),
            }),
        }
    }

    /// Removes every lease that has ended; returns how many went.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut state = self.lock();
        let next_index = state.index + 1;
        let mut removed = 0;
        for entry in state.services.values_mut() {
            let before = entry.instances.len();
            entry.instances.retain(|_, lease| lease.live(now));
            let gone = before - entry.instances.len();
            if gone > 0 {
                entry.index = next_index;
                removed += gone;
            }
        }
        if removed > 0 {
            state.index = next_index;
            self.expirations.add(removed as u64);
            self.publish(&state, now);
        }
        removed
    }

    /// The live instances of `service` (empty, with the registry index, when unknown).
    pub fn resolve(&self, service: &str) -> ServiceView {
        let now = Instant::now();
        let state = self.lock();
        match state.services.get(service) {
            Some(entry) => ServiceView {
                service: service.to_owned(),
                index: entry.index,
                instances: entry
                    .instances
                    .iter()
                    .filter(|(_, lease)| lease.live(now))
                    .map(|(id, lease)| InstanceView {
                        id: id.clone(),
                        address: lease.request.address,
                        port: lease.request.port,
                        tags: lease.request.tags.clone(),
                        meta: lease.request.meta.clone(),
                        ttl_seconds: lease.request.ttl_seconds,
                        expires_in_ms: u64::try_from(
                            lease.expires_at.saturating_duration_since(now).as_millis(),
                        )
                        .unwrap_or(u64::MAX),
                    })
                    .collect(),
            },
            None => ServiceView {
                service: service.to_owned(),
                index: 0,
                instances: Vec::new(),
            },
        }
    }

    /// Resolves `service` once its index exceeds `after`, or when `wait` ends (long-poll).
    pub async fn watch(&self, service: &str, after: u64, wait: Duration) -> ServiceView {
        let mut changes = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let view = self.resolve(service);
            if view.index > after {
                return view;
            }
            // `changes` was subscribed before resolving, so no change can slip in between.
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return self.resolve(service),
            }
        }
    }

    /// Every known service with its live instance count.
    pub fn list(&self) -> ServiceList {
        let now = Instant::now();
        let state = self.lock();
        let mut services: Vec<ServiceSummary> = state
            .services
            .iter()
            .map(|(name, entry)| ServiceSummary {
                service: name.clone(),
                instances: entry.instances.values().filter(|l| l.live(now)).count(),
                index: entry.index,
            })
            .collect();
        services.sort_by(|a, b| a.service.cmp(&b.service));
        ServiceList {
            index: state.index,
            services,
        }
    }

    fn publish(&self, state: &State, now: Instant) {
        let live: usize = state
            .services
            .values()
            .map(|entry| entry.instances.values().filter(|l| l.live(now)).count())
            .sum();
        self.leases_active
            .set(i64::try_from(live).unwrap_or(i64::MAX));
        self.changes.send_replace(state.index);
    }
}
