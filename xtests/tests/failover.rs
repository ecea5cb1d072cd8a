//! Failover: under continuous reads through the gateway, product-1 is SIGKILLed. No request
//! fails; the registry drops the dead instance when its lease runs out; restarted, it
//! registers again and takes traffic, without the gateway being touched.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xtests::lab::REGISTRY_TTL_SECONDS;
use xtests::Lab;

/// Polls `cond` every 100 ms until it holds or `limit` passes; true if it held.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

#[test]
fn killing_a_product_instance_under_load_fails_no_request() {
    if !xtests::privileged("the failover test") {
        return;
    }
    let mut lab = Lab::start().unwrap();
    assert_eq!(
        lab.registry_instances("product").unwrap(),
        ["product-1", "product-2"]
    );

    let stop = AtomicBool::new(false);
    let (ok, failures) = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let (mut ok, mut failures) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match lab.get("/api/products?page=1&size=5") {
                    Ok(r) if r.status == 200 => ok += 1,
                    Ok(r) => failures.push(format!("{}: {}", r.status, r.text())),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            (ok, failures)
        });
        std::thread::sleep(Duration::from_secs(1));
        lab.crash("product-1").unwrap(); // SIGKILL while requests are in flight
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        load.join().unwrap()
    });
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        ok as usize + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 10, "the load ran ({ok} requests)");

    let lease = Duration::from_secs(REGISTRY_TTL_SECONDS * 3 + 2);
    assert!(
        eventually(lease, || lab.registry_instances("product").unwrap()
            == ["product-2"]),
        "the registry drops product-1 once its lease expires: {:?}",
        lab.registry_instances("product").unwrap()
    );

    lab.start_component("product-1").unwrap();
    assert!(eventually(lease, || lab
        .registry_instances("product")
        .unwrap()
        == ["product-1", "product-2"]));
    assert!(
        eventually(Duration::from_secs(15), || {
            lab.get("/api/products?page=1&size=5").unwrap().status == 200
                && lab.requests_served("product-1", "/api/products").unwrap() > 0
        }),
        "the restarted product-1 takes traffic again"
    );

    assert_eq!(lab.shutdown(), Vec::<String>::new());
}
