//! Continuous client load through the gateway while a fault happens: one thread reading a
//! catalogue page, one placing orders (each with its own Idempotency-Key and customer,
//! retried with the same key until acknowledged). Every attempt is logged with the time it
//! ended, so a scenario can judge what happened after the fault.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::shop;
use crate::deployment::Deployment;

/// The page the read loop fetches.
pub const READ_PATH: &str = "/api/products?page=1&size=4";

/// One logged request.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// When the answer (or the failure) came.
    pub at: Instant,
    /// The order's Idempotency-Key (empty for reads).
    pub key: String,
    /// The HTTP status; 0 when no answer came.
    pub status: u16,
    /// What went wrong, when it did.
    pub error: String,
}

/// What a load run observed.
#[derive(Debug, Default)]
pub struct Report {
    /// Every read.
    pub reads: Vec<Attempt>,
    /// Every order attempt.
    pub orders: Vec<Attempt>,
}

impl Report {
    /// Attempts that ended after `t` without the status `ok`.
    pub fn failures_after(attempts: &[Attempt], t: Instant, ok: u16) -> Vec<&Attempt> {
        attempts
            .iter()
            .filter(|a| a.at > t && a.status != ok)
            .collect()
    }

    /// The keys of the acknowledged (201) orders, sorted.
    pub fn acknowledged(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .orders
            .iter()
            .filter(|a| a.status == 201)
            .map(|a| a.key.clone())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Fails unless, after `bound`: every read answered 200 and at least one ran; every
    /// order attempt was acknowledged and at least one was; and every acknowledged order is
    /// stored exactly once in `database`.
    pub fn judge(
        &self,
        d: &dyn Deployment,
        database: &str,
        bound: Instant,
        what: &str,
    ) -> Result<(), String> {
        let failed = Self::failures_after(&self.reads, bound, 200);
        check!(
            failed.is_empty(),
            "{what}: {} of {} reads failed after the ejection bound, e.g. {:?}",
            failed.len(),
            self.reads.len(),
            &failed[..failed.len().min(5)]
        );
        check!(
            self.reads.iter().any(|a| a.at > bound),
            "{what}: no read ran after the ejection bound"
        );
        let failed = Self::failures_after(&self.orders, bound, 201);
        check!(
            failed.is_empty(),
            "{what}: {} of {} order attempts failed after the ejection bound, e.g. {:?}",
            failed.len(),
            self.orders.len(),
            &failed[..failed.len().min(5)]
        );
        check!(
            self.orders.iter().any(|a| a.at > bound && a.status == 201),
            "{what}: no order was acknowledged after the ejection bound"
        );
        let acked = self.acknowledged();
        check!(!acked.is_empty(), "{what}: no order was acknowledged");
        for key in &acked {
            let n = shop::orders_of(d, database, &customer(key))?;
            check!(
                n == 1,
                "{what}: acknowledged order {key} is stored {n} times, not exactly once"
            );
        }
        Ok(())
    }
}

/// The customer of the order with key `key`.
pub fn customer(key: &str) -> String {
    format!("{key}@example.com")
}

/// Runs the load against `d` while `fault` runs on the calling thread, then stops it and
/// returns what `fault` returned with the log. Orders use keys `<tag>-<run id>-<n>`.
pub fn during<T>(
    d: &dyn Deployment,
    tag: &str,
    product: i64,
    fault: impl FnOnce() -> T,
) -> (T, Report) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reads = s.spawn(|| {
            let mut log = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (status, error) = match d.get(READ_PATH) {
                    Ok(r) if r.status == 200 => (200, String::new()),
                    Ok(r) => (r.status, r.text()),
                    Err(e) => (0, e.to_string()),
                };
                log.push(Attempt {
                    at: Instant::now(),
                    key: String::new(),
                    status,
                    error,
                });
                std::thread::sleep(Duration::from_millis(20));
            }
            log
        });
        let orders = s.spawn(|| {
            let mut log = Vec::new();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("{tag}-{}-{n}", d.run_id());
                let req = shop::order_request(&key, &customer(&key), product, 1);
                loop {
                    let (status, error) = match d.send(&req) {
                        Ok(r) if r.status == 201 => (201, String::new()),
                        Ok(r) => (r.status, r.text()),
                        Err(e) => (0, e.to_string()),
                    };
                    log.push(Attempt {
                        at: Instant::now(),
                        key: key.clone(),
                        status,
                        error,
                    });
                    if status == 201 || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            log
        });
        let out = fault();
        stop.store(true, Ordering::Relaxed);
        let report = Report {
            reads: reads.join().unwrap_or_default(),
            orders: orders.join().unwrap_or_default(),
        };
        (out, report)
    })
}
