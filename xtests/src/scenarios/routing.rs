//! Routing through the whole stack: reads through the gateway reach every declared product
//! instance round-robin, the first read of a page misses the cache and the second hits it;
//! an order posted through the gateway lands as a row in the order service's database.

use std::time::Duration;

use serde_json::Value;

use super::shop::{self, X_CACHE};
use super::{eventually, shape, Needs, Scenario};
use crate::deployment::Deployment;

/// The scenarios of this group.
pub const ALL: [Scenario; 2] = [
    Scenario {
        name:
            "routing::reads_round_robin_over_every_product_instance_and_the_second_is_a_cache_hit",
        needs: Needs {
            host_faults: false,
            partitions: false,
        },
        run: reads_round_robin_and_hit_the_cache,
    },
    Scenario {
        name: "routing::an_order_posted_through_the_gateway_is_a_row_in_postgresql",
        needs: Needs {
            host_faults: false,
            partitions: false,
        },
        run: an_order_is_a_row_in_postgresql,
    },
];

/// Reads per product instance after the first two.
const READS_PER_INSTANCE: usize = 10;

/// Page sizes this scenario may read (one nobody read before is a guaranteed miss).
const PAGE_SIZES: std::ops::RangeInclusive<u32> = 5..=19;

fn reads_round_robin_and_hit_the_cache(d: &dyn Deployment) -> Result<(), String> {
    let t = d.topology();
    let products = shape::instances(t, "product")?;
    let lease = d.registry_lease() * 3 + Duration::from_secs(2);
    let want = shop::sorted(products.clone());
    check!(
        eventually(lease, Duration::from_millis(200), || shop::registered(
            d, "product"
        )
        .is_ok_and(|r| r == want)),
        "the registry resolves every declared product instance {want:?}: {:?}",
        shop::registered(d, "product")
    );
    let before = shop::served_by(d, &products, "/api/products")?;
    let mut reads = 0usize;

    // A page no earlier read cached: its first read is a miss.
    let mut first = None;
    for size in PAGE_SIZES {
        let path = format!("/api/products?page=1&size={size}");
        let r = shop::get(d, &path)?;
        reads += 1;
        check!(r.status == 200, "GET {path}: {} {}", r.status, r.text());
        if r.header(X_CACHE) == Some("miss") {
            first = Some((path, r));
            break;
        }
    }
    let Some((path, first)) = first else {
        return Err(format!(
            "every page size of {PAGE_SIZES:?} was already cached: no first read missed"
        ));
    };
    let items = shop::json_of(&first, &path)?["items"].clone();
    check!(
        items.as_array().is_some_and(|a| !a.is_empty()),
        "the catalogue is seeded: {}",
        first.text()
    );

    let second = shop::get(d, &path)?;
    reads += 1;
    check!(second.status == 200, "second GET {path}: {}", second.status);
    check!(
        second.header(X_CACHE) == Some("hit"),
        "the second read comes from the cache: x-cache {:?}",
        second.header(X_CACHE)
    );
    check!(
        shop::json_of(&second, &path)?["items"] == items,
        "the cached page equals the first: {} vs {}",
        second.text(),
        first.text()
    );

    for _ in 0..READS_PER_INSTANCE * products.len() {
        let r = shop::get(d, &path)?;
        reads += 1;
        check!(r.status == 200, "GET {path}: {} {}", r.status, r.text());
    }
    let after = shop::served_by(d, &products, "/api/products")?;
    let delta: Vec<u64> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let spread: Vec<String> = products
        .iter()
        .zip(&delta)
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    check!(
        delta.iter().all(|&n| n > 0),
        "round-robin reaches every product instance: {}",
        spread.join(", ")
    );
    check!(
        delta.iter().sum::<u64>() == reads as u64,
        "every one of the {reads} reads was served once: {}",
        spread.join(", ")
    );
    Ok(())
}

fn an_order_is_a_row_in_postgresql(d: &dyn Deployment) -> Result<(), String> {
    let t = d.topology();
    let database = shape::database(t, "order")?;
    let product = shop::first_product_id(d)?;
    let customer = format!("routing-{}@example.com", d.run_id());
    let key = format!("routing-{}", d.run_id());

    let created = d
        .send(&shop::order_request(&key, &customer, product, 2))
        .map_err(|e| format!("POST the order: {e}"))?;
    check!(
        created.status == 201,
        "the order is created: {} {}",
        created.status,
        created.text()
    );
    let order = shop::json_of(&created, "the created order")?;
    let id = order["id"]
        .as_str()
        .ok_or_else(|| format!("the order has no id: {order}"))?
        .to_string();
    check!(
        created.header("location") == Some(format!("/api/orders/{id}").as_str()),
        "Location names the order: {:?}",
        created.header("location")
    );
    check!(order["status"] == "placed", "status placed: {order}");

    let rows = d
        .sql(
            &database,
            &format!("SELECT customer FROM orders WHERE id = '{id}'"),
        )
        .map_err(|e| format!("query {database}: {e}"))?;
    check!(
        rows == customer,
        "order {id} is a row of {database} in PostgreSQL: {rows:?}"
    );

    let fetched = shop::get(d, &format!("/api/orders/{id}"))?;
    check!(fetched.status == 200, "GET the order: {}", fetched.status);
    let fetched = shop::json_of(&fetched, "the fetched order")?;
    check!(
        fetched["total_cents"] == order["total_cents"] && fetched["total_cents"] != Value::Null,
        "the fetched order is the created one: {fetched} vs {order}"
    );
    Ok(())
}
