//! Data-store outages: without the cache reads keep answering (from PostgreSQL) and hits
//! resume when it is back; without PostgreSQL an order is refused quickly with 503
//! problem+json, and once it is back the same Idempotency-Key creates exactly one order
//! (a replay returns the original).

use std::time::Duration;

use super::shop::{self, X_CACHE};
use super::{eventually, shape, Needs, Scenario};
use crate::deployment::Deployment;

/// The scenarios of this group.
pub const ALL: [Scenario; 2] = [
    Scenario {
        name: "outages::reads_survive_a_cache_outage_and_hits_resume_after_it",
        needs: Needs {
            host_faults: false,
            partitions: false,
        },
        run: reads_survive_a_cache_outage,
    },
    Scenario {
        name:
            "outages::an_order_during_a_database_outage_gets_503_and_its_retry_creates_exactly_one",
        needs: Needs {
            host_faults: false,
            partitions: false,
        },
        run: an_order_during_a_database_outage,
    },
];

/// How long a restarted data store and its clients get to recover.
const RECOVERY: Duration = Duration::from_secs(30);

/// Reads made while the cache is down.
const READS_WITHOUT_CACHE: usize = 6;

/// The page this group reads.
const PATH: &str = "/api/products?page=1&size=3";

fn reads_survive_a_cache_outage(d: &dyn Deployment) -> Result<(), String> {
    let redis = shape::node_of(d.topology(), "redis")?;
    let r = shop::get(d, PATH)?;
    check!(r.status == 200, "GET {PATH}: {} {}", r.status, r.text());
    let r = shop::get(d, PATH)?;
    check!(
        r.header(X_CACHE) == Some("hit"),
        "a read the cache can answer is a hit before the outage: x-cache {:?}",
        r.header(X_CACHE)
    );

    d.stop(&redis).map_err(|e| format!("stop {redis}: {e}"))?;
    let during = reads_without_cache(d);
    d.start(&redis).map_err(|e| format!("start {redis}: {e}"))?;
    during?;

    check!(
        eventually(RECOVERY, Duration::from_millis(200), || shop::get(d, PATH)
            .is_ok_and(|r| r.header(X_CACHE) == Some("hit"))),
        "cache hits resume once {redis} is back"
    );
    Ok(())
}

fn reads_without_cache(d: &dyn Deployment) -> Result<(), String> {
    for _ in 0..READS_WITHOUT_CACHE {
        let r = shop::get(d, PATH)?;
        check!(
            r.status == 200,
            "reads are served from PostgreSQL while the cache is down: {} {}",
            r.status,
            r.text()
        );
        check!(
            r.header(X_CACHE) != Some("hit"),
            "nothing can come from a stopped cache: x-cache {:?}",
            r.header(X_CACHE)
        );
    }
    Ok(())
}

fn an_order_during_a_database_outage(d: &dyn Deployment) -> Result<(), String> {
    let t = d.topology();
    let postgres = shape::node_of(t, "postgres")?;
    let database = shape::database(t, "order")?;
    let product = shop::first_product_id(d)?;
    let customer = format!("outage-{}@example.com", d.run_id());
    let order = shop::order_request(&format!("outage-{}", d.run_id()), &customer, product, 1);

    d.stop(&postgres)
        .map_err(|e| format!("stop {postgres}: {e}"))?;
    let refused = refused_while_down(d, &order);
    d.start(&postgres)
        .map_err(|e| format!("start {postgres}: {e}"))?;
    refused?;

    // Retried with the same key until the order service has its database again.
    let mut created = None;
    eventually(RECOVERY, Duration::from_millis(250), || {
        match d.send(&order) {
            Ok(r) if r.status == 201 => created = Some(r),
            _ => {}
        }
        created.is_some()
    });
    let created = created.ok_or_else(|| {
        format!(
            "the retried order is created once {postgres} is back: {:?}",
            d.send(&order).map(|r| (r.status, r.text()))
        )
    })?;
    let replayed = d
        .send(&order)
        .map_err(|e| format!("replay the order: {e}"))?;
    let id = shop::json_of(&created, "the created order")?["id"].clone();
    check!(
        !id.is_null() && shop::json_of(&replayed, "the replayed order")?["id"] == id,
        "a replay returns the original {id}: {} {}",
        replayed.status,
        replayed.text()
    );
    let n = shop::orders_of(d, &database, &customer)?;
    check!(n == 1, "exactly one order exists for the key: {n}");

    // Leave it as found: reads (which use PostgreSQL behind the cache) answer again.
    check!(
        eventually(RECOVERY, Duration::from_millis(200), || shop::get(
            d,
            "/api/products?page=1&size=2"
        )
        .is_ok_and(|r| r.status == 200)),
        "reads answer again once {postgres} is back"
    );
    Ok(())
}

fn refused_while_down(d: &dyn Deployment, order: &crate::http::Request) -> Result<(), String> {
    // An error here means the order hung past its timeout instead of being refused.
    let refused = d
        .send(order)
        .map_err(|e| format!("POST an order while the database is down: {e}"))?;
    check!(
        refused.status == 503,
        "an order while the database is down is refused with 503: {} {}",
        refused.status,
        refused.text()
    );
    check!(
        refused.header("content-type") == Some("application/problem+json"),
        "the refusal is problem+json: {:?}",
        refused.header("content-type")
    );
    let problem = shop::json_of(&refused, "the refusal")?;
    check!(
        problem["status"] == 503 && problem["type"].is_string() && problem["title"].is_string(),
        "the problem names its status, type and title: {problem}"
    );
    Ok(())
}
