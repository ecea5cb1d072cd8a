//! Host faults (backends with several hosts: the VM cluster): a backend host dies, or is cut
//! off the underlay, under continuous reads and orders. After the ejection bound no request
//! fails and orders keep being accepted; every acknowledged order is stored exactly once;
//! restarted (or reconnected), the host's instances serve traffic again.
//!
//! The host is the one the declaration's placement makes expendable
//! ([`shape::expendable_host`]): it carries product instances, not the router, and no
//! service's only instance.

use std::time::{Duration, Instant};

use super::{eventually, load, shape, shop, Needs, Scenario};
use crate::deployment::{DeployError, Deployment};

/// The scenarios of this group.
pub const ALL: [Scenario; 2] = [
    Scenario {
        name: "host::killing_a_backend_host_loses_no_request_after_the_bound",
        needs: Needs {
            host_faults: true,
            partitions: false,
        },
        run: killing_a_backend_host,
    },
    Scenario {
        name: "host::partitioning_a_backend_host_loses_no_request_after_the_bound",
        needs: Needs {
            host_faults: false,
            partitions: true,
        },
        run: partitioning_a_backend_host,
    },
];

/// Load before the fault.
const BEFORE_FAULT: Duration = Duration::from_secs(2);

/// Load after the ejection bound, in which every request must succeed.
const AFTER_BOUND: Duration = Duration::from_secs(4);

/// How long the host's instances get to serve again once it is back.
const REJOIN: Duration = Duration::from_secs(90);

fn killing_a_backend_host(d: &dyn Deployment) -> Result<(), String> {
    fault_and_recover(
        d,
        "kill",
        |d: &dyn Deployment, h: &str| d.kill_host(h),
        |d: &dyn Deployment, h: &str| d.restart_host(h),
    )
}

fn partitioning_a_backend_host(d: &dyn Deployment) -> Result<(), String> {
    fault_and_recover(
        d,
        "partition",
        |d: &dyn Deployment, h: &str| d.partition_host(h),
        |d: &dyn Deployment, h: &str| d.heal_host(h),
    )
}

type HostOp = fn(&dyn Deployment, &str) -> Result<(), DeployError>;

fn fault_and_recover(
    d: &dyn Deployment,
    tag: &str,
    fault: HostOp,
    recover: HostOp,
) -> Result<(), String> {
    let t = d.topology();
    let host = shape::expendable_host(t, "product").ok_or_else(|| {
        "the placement has no backend host whose loss every service survives".to_string()
    })?;
    let database = shape::database(t, "order")?;
    let product = shop::first_product_id(d)?;
    let bound = d.ejection_bound();

    let (at, report) = load::during(d, tag, product, || {
        std::thread::sleep(BEFORE_FAULT);
        let at = Instant::now();
        let done = fault(d, &host);
        std::thread::sleep(bound + AFTER_BOUND);
        done.map(|()| at)
    });
    let judged = match at {
        Ok(at) => report.judge(d, &database, at + bound, &format!("{tag} {host}")),
        Err(e) => Err(format!("{tag} {host}: {e}")),
    };
    // Whatever happened, the host is back afterwards.
    recover(d, &host).map_err(|e| format!("bring {host} back after the {tag}: {e}"))?;
    judged?;
    rejoined(d, &host, tag, product)
}

/// Waits until every product and order instance on `host` serves gateway traffic again:
/// reads for the products, fresh orders (each its own key) for the orders.
fn rejoined(d: &dyn Deployment, host: &str, tag: &str, product: i64) -> Result<(), String> {
    let t = d.topology();
    let mut watched = Vec::new();
    for (service, route) in [("product", "/api/products"), ("order", "/api/orders")] {
        for node in shape::instances_on(t, host, service) {
            watched.push((node, route));
        }
    }
    // The counters of restarted processes start again; take them once they answer.
    let mut baseline = Vec::new();
    for (node, route) in &watched {
        let mut n = None;
        eventually(REJOIN, Duration::from_millis(500), || {
            n = shop::served(d, node, route).ok();
            n.is_some()
        });
        baseline.push(n.ok_or_else(|| format!("{node} on {host} never answers /metrics again"))?);
    }
    let mut k = 0u32;
    let back = eventually(REJOIN, Duration::from_millis(200), || {
        for _ in 0..4 {
            k += 1;
            let key = format!("rejoin-{tag}-{}-{k}", d.run_id());
            // Failures while the gateway re-admits the instances are fine here.
            let _ = d.get(load::READ_PATH);
            let _ = d.send(&shop::order_request(
                &key,
                &load::customer(&key),
                product,
                1,
            ));
        }
        watched
            .iter()
            .zip(&baseline)
            .all(|((node, route), b)| shop::served(d, node, route).is_ok_and(|n| n > *b))
    });
    check!(
        back,
        "the instances on {host} serve traffic again: {:?}",
        watched
            .iter()
            .map(|(n, r)| (n, shop::served(d, n, r)))
            .collect::<Vec<_>>()
    );
    Ok(())
}
