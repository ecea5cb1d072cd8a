//! Failover and partition: a backend VM dies (or is cut off) under continuous load.
//! After the ejection bound no request fails, orders keep being accepted, every
//! acknowledged order is in PostgreSQL exactly once, and the instances rejoin.

use std::time::{Duration, Instant};

use crate::lab::{Lab, EJECTION_BOUND};
use crate::load::{now_ms, Load, Report};
use crate::routing::served;

/// How long the load keeps running after the fault: the 2 s ejection bound plus a 4 s
/// stretch in which every request must succeed.
const AFTER_FAULT: Duration = Duration::from_secs(6);

fn assert_guarantees(lab: &Lab, report: &Report, fault_ms: u64, what: &str) {
    let bound = fault_ms + EJECTION_BOUND.as_millis() as u64;
    let failed_gets = Report::failures_after(&report.gets, bound, 200);
    assert!(
        failed_gets.is_empty(),
        "{what}: GETs failed after the ejection bound: {failed_gets:?}"
    );
    assert!(
        report.gets.iter().filter(|a| a.at_ms > bound).count() > 0,
        "{what}: no GETs ran after the bound"
    );
    let failed_orders = Report::failures_after(&report.orders, bound, 201);
    assert!(
        failed_orders.is_empty(),
        "{what}: orders failed after the ejection bound: {failed_orders:?}"
    );
    assert!(
        report
            .orders
            .iter()
            .any(|a| a.at_ms > bound && a.status == 201),
        "{what}: no order was accepted after the bound"
    );
    let acked = report.acknowledged();
    assert!(!acked.is_empty());
    let stored = lab.sql(
        lab.database("order"),
        "select customer, count(*) from orders group by customer",
    );
    for key in &acked {
        let line = stored
            .lines()
            .find(|l| l.starts_with(&format!("{key}@example.com|")));
        assert_eq!(
            line.map(|l| l.rsplit('|').next().unwrap_or("")),
            Some("1"),
            "{what}: acknowledged order {key} must be in PostgreSQL exactly once"
        );
    }
}

/// Waits until both of vm3's instances serve gateway traffic again: product-2 GETs
/// and order-2 orders (each rejoin request is a fresh, idempotent order).
fn wait_rejoined(lab: &Lab, tag: &str) {
    let gw = lab.gateway_url();
    let (products, orders) = (
        served(lab, "product-2", "/api/products"),
        served(lab, "order-2", "/api/orders"),
    );
    let deadline = Instant::now() + lab.cluster.accel().scale(Duration::from_secs(30));
    let mut n = 0;
    while served(lab, "product-2", "/api/products") <= products
        || served(lab, "order-2", "/api/orders") <= orders
    {
        assert!(Instant::now() < deadline, "vm3's instances did not rejoin");
        // Four GETs and four fresh orders in one guest command (one round trip).
        // Failures while the gateway re-admits the instances are fine here; only
        // rejoining is judged.
        let requests: Vec<String> = (0..4)
            .map(|_| {
                n += 1;
                format!(
                    "curl -sf -m 20 -o /dev/null {gw}/api/products/1; \
                     curl -sf -m 20 -o /dev/null -X POST -H 'content-type: application/json' -H 'Idempotency-Key: rejoin-{tag}-{n}' \
                     -d '{{\"customer\":\"rejoin-{tag}-{n}@example.com\",\"items\":[{{\"product_id\":1,\"quantity\":1}}]}}' {gw}/api/orders"
                )
            })
            .collect();
        let _ = lab.host_of("gateway").execute(&format!(
            "{} sh -c '{}; true'",
            lab.in_node("gateway"),
            requests.join("; ").replace('\'', "'\\''")
        ));
    }
}

/// Kill vm3 (product-2, order-2) outright under load; restart it and its instances rejoin.
pub fn killing_a_backend_vm_loses_no_request_after_ejection(lab: &Lab) {
    let load = Load::start(lab, "failover");
    std::thread::sleep(Duration::from_secs(2));
    let fault = now_ms(lab);
    lab.vm("vm3").kill();
    std::thread::sleep(AFTER_FAULT);
    let report = load.stop();
    assert_guarantees(lab, &report, fault, "kill vm3");

    lab.cluster.phase("restart vm3 and rebuild its node", || {
        lab.vm("vm3").restart().unwrap();
        lab.build_host("vm3");
        lab.start_services("vm3");
    });
    wait_rejoined(lab, "kill");
}

/// Cut vm3 off the network under load (it keeps running); restore and it rejoins.
pub fn partitioning_a_backend_vm_loses_no_request_after_ejection(lab: &Lab) {
    let load = Load::start(lab, "partition");
    std::thread::sleep(Duration::from_secs(2));
    let fault = now_ms(lab);
    lab.cluster.net().disconnect("vm3");
    std::thread::sleep(AFTER_FAULT);
    let report = load.stop();
    assert_guarantees(lab, &report, fault, "partition vm3");

    lab.cluster.net().reconnect("vm3");
    wait_rejoined(lab, "partition");
}
