//! Failover: under continuous reads and orders through the gateway, the first product
//! instance is killed (SIGKILL, requests in flight). After the backend's ejection bound no
//! request fails; every acknowledged order is stored exactly once; the registry drops the
//! dead instance when its lease runs out; restarted, it registers again and takes traffic,
//! without the gateway being touched.

use std::time::{Duration, Instant};

use super::{eventually, load, shape, shop, Needs, Scenario};
use crate::deployment::Deployment;

/// The scenarios of this group.
pub const ALL: [Scenario; 1] = [Scenario {
    name: "failover::killing_a_product_instance_under_load_fails_no_request_after_the_bound",
    needs: Needs {
        host_faults: false,
        partitions: false,
    },
    run: killing_a_product_instance_under_load,
}];

/// Load before the fault.
const BEFORE_FAULT: Duration = Duration::from_secs(1);

/// Load after the ejection bound, in which every request must succeed.
const AFTER_BOUND: Duration = Duration::from_secs(3);

fn killing_a_product_instance_under_load(d: &dyn Deployment) -> Result<(), String> {
    let t = d.topology();
    let products = shape::instances(t, "product")?;
    check!(
        products.len() > 1,
        "failover needs two product instances; the declaration has {products:?}"
    );
    let victim = products[0].clone();
    let result = kill_under_load(d, &products, &victim);
    // Whatever happened, the instance runs again afterwards.
    d.start(&victim)
        .map_err(|e| format!("restart {victim}: {e}"))?;
    result?;
    rejoins(d, &products, &victim)
}

/// The fault and what must hold until the restart.
fn kill_under_load(d: &dyn Deployment, products: &[String], victim: &str) -> Result<(), String> {
    let t = d.topology();
    let database = shape::database(t, "order")?;
    let lease = d.registry_lease() * 3 + Duration::from_secs(2);
    let all = shop::sorted(products.to_vec());
    check!(
        eventually(lease, Duration::from_millis(200), || shop::registered(
            d, "product"
        )
        .is_ok_and(|r| r == all)),
        "before the fault the registry resolves every product instance {all:?}: {:?}",
        shop::registered(d, "product")
    );
    let product = shop::first_product_id(d)?;
    let bound = d.ejection_bound();

    let (fault, report) = load::during(d, "failover", product, || {
        std::thread::sleep(BEFORE_FAULT);
        let at = Instant::now();
        let killed = d.kill(victim);
        std::thread::sleep(bound + AFTER_BOUND);
        killed.map(|()| at)
    });
    let fault = fault.map_err(|e| format!("kill {victim}: {e}"))?;
    report.judge(d, &database, fault + bound, &format!("kill {victim}"))?;

    let rest = shop::sorted(products.iter().filter(|p| *p != victim).cloned().collect());
    check!(
        eventually(lease, Duration::from_millis(200), || shop::registered(
            d, "product"
        )
        .is_ok_and(|r| r == rest)),
        "the registry drops {victim} once its lease expires: {:?}",
        shop::registered(d, "product")
    );
    Ok(())
}

/// After the restart: registered again, and it serves reads through the gateway.
fn rejoins(d: &dyn Deployment, products: &[String], victim: &str) -> Result<(), String> {
    let lease = d.registry_lease() * 3 + Duration::from_secs(2);
    let all = shop::sorted(products.to_vec());
    check!(
        eventually(lease, Duration::from_millis(200), || shop::registered(
            d, "product"
        )
        .is_ok_and(|r| r == all)),
        "the restarted {victim} registers again: {:?}",
        shop::registered(d, "product")
    );
    let before = shop::served(d, victim, "/api/products")?;
    check!(
        eventually(Duration::from_secs(20), Duration::from_millis(100), || {
            d.get(load::READ_PATH).is_ok_and(|r| r.status == 200)
                && shop::served(d, victim, "/api/products").is_ok_and(|n| n > before)
        }),
        "the restarted {victim} takes traffic again"
    );
    Ok(())
}
