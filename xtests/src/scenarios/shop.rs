//! What a client of the shop does through the gateway, and what the instances report: the
//! steps the scenarios are told in.

use std::time::Duration;

use serde_json::{json, Value};

use crate::deployment::Deployment;
use crate::http::{Request, Response};

/// The header the product service marks cache hits and misses with.
pub const X_CACHE: &str = "x-cache";

/// How long an order request may take through the gateway before it counts as hung.
pub const ORDER_TIMEOUT: Duration = Duration::from_secs(20);

/// GET `path` through the gateway; a transport error becomes the scenario's failure.
pub fn get(d: &dyn Deployment, path: &str) -> Result<Response, String> {
    d.get(path).map_err(|e| format!("GET {path}: {e}"))
}

/// The body of `r` as JSON, or a failure quoting it.
pub fn json_of(r: &Response, what: &str) -> Result<Value, String> {
    r.json()
        .map_err(|e| format!("{what}: not JSON ({e}): {}", r.text()))
}

/// The id of the first product of the catalogue (orders need a product that exists).
pub fn first_product_id(d: &dyn Deployment) -> Result<i64, String> {
    let r = get(d, "/api/products?page=1&size=1")?;
    if r.status != 200 {
        return Err(format!("GET the catalogue: {} {}", r.status, r.text()));
    }
    json_of(&r, "the catalogue")?["items"][0]["id"]
        .as_i64()
        .ok_or_else(|| format!("the catalogue is empty: {}", r.text()))
}

/// The request that places an order of `quantity` × `product` for `customer` under
/// Idempotency-Key `key`.
pub fn order_request(key: &str, customer: &str, product: i64, quantity: u32) -> Request {
    Request::post_json(
        "/api/orders",
        &json!({"customer": customer, "items": [{"product_id": product, "quantity": quantity}]}),
    )
    .header("Idempotency-Key", key)
    .timeout(ORDER_TIMEOUT)
}

/// Requests instance `node` has served on routes starting with `route` (its
/// `http_requests_total` series; a restarted process counts from zero).
pub fn served(d: &dyn Deployment, node: &str, route: &str) -> Result<u64, String> {
    let text = d
        .metrics(node)
        .map_err(|e| format!("metrics of {node}: {e}"))?;
    Ok(served_in(&text, route))
}

/// The sum of the `http_requests_total` samples of Prometheus `text` whose route starts with
/// `route`.
pub fn served_in(text: &str, route: &str) -> u64 {
    let label = format!("route=\"{route}");
    text.lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// [`served`] for every node of `nodes`.
pub fn served_by(d: &dyn Deployment, nodes: &[String], route: &str) -> Result<Vec<u64>, String> {
    nodes.iter().map(|n| served(d, n, route)).collect()
}

/// How many orders of `customer` the order database holds.
pub fn orders_of(d: &dyn Deployment, database: &str, customer: &str) -> Result<u64, String> {
    let out = d
        .sql(
            database,
            &format!(
                "SELECT count(*) FROM orders WHERE customer = '{}'",
                customer.replace('\'', "''")
            ),
        )
        .map_err(|e| format!("count the orders of {customer}: {e}"))?;
    out.trim()
        .parse()
        .map_err(|_| format!("count the orders of {customer}: SQL answered {out:?}"))
}

/// The registry's instances of `service`, sorted, or the failure to ask.
pub fn registered(d: &dyn Deployment, service: &str) -> Result<Vec<String>, String> {
    d.registry_instances(service)
        .map_err(|e| format!("ask the registry for {service}: {e}"))
}

/// `names` sorted, to compare with what the registry answers.
pub fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_sums_the_series_of_a_route_prefix() {
        let text = "# TYPE http_requests_total counter\n\
            http_requests_total{method=\"GET\",route=\"/api/products\",status=\"200\"} 4\n\
            http_requests_total{method=\"GET\",route=\"/api/products/{id}\",status=\"200\"} 3\n\
            http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"} 9\n";
        assert_eq!(served_in(text, "/api/products"), 7);
        assert_eq!(served_in(text, "/api/orders"), 0);
    }
}
