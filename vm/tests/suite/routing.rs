//! Routing across hosts: the gateway on vm1 spreads GETs over product instances on vm2
//! and vm3, and an order placed through it lands in PostgreSQL on vm1.

use crate::lab::Lab;

/// Sum of a product instance's served `/api/products…` requests (from its /metrics).
pub fn product_requests(lab: &Lab, node: &str) -> u64 {
    served(lab, node, "/api/products")
}

/// Sum of the requests an instance served on routes starting with `route`, from the
/// `http_requests_total` series of its /metrics on its declared port.
pub fn served(lab: &Lab, node: &str, route: &str) -> u64 {
    let metrics = lab.host_of(node).succeed(&format!(
        "{} curl -sf -m 10 http://{}/metrics",
        lab.in_node(node),
        lab.listen_of(node)
    ));
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("http_requests_total{") && l.contains(&format!("route=\"{route}"))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `curl` through the gateway from the frontend tier; returns the body.
pub fn via_gateway(lab: &Lab, args: &str) -> String {
    lab.host_of("gateway")
        .succeed(&format!("{} curl -sf -m 20 {args}", lab.in_node("gateway")))
}

/// GETs through the gateway reach both backend VMs; an order lands in PostgreSQL.
pub fn gateway_reaches_both_backend_hosts_and_orders_land_in_postgres(lab: &Lab) {
    let gw = lab.gateway_url();
    let before = (
        product_requests(lab, "product-1"),
        product_requests(lab, "product-2"),
    );
    lab.host_of("gateway").succeed(&format!(
        "{} sh -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do curl -sf -m 20 -o /dev/null {gw}/api/products/1 || exit 1; done'",
        lab.in_node("gateway")
    ));
    let after = (
        product_requests(lab, "product-1"),
        product_requests(lab, "product-2"),
    );
    assert!(
        after.0 > before.0,
        "product-1 on vm2 served nothing: {before:?} -> {after:?}"
    );
    assert!(
        after.1 > before.1,
        "product-2 on vm3 served nothing: {before:?} -> {after:?}"
    );

    let body = via_gateway(
        lab,
        &format!(
            "-X POST -H 'content-type: application/json' -H 'Idempotency-Key: routing-1' \
             -d '{{\"customer\":\"routing@example.com\",\"items\":[{{\"product_id\":1,\"quantity\":2}}]}}' {gw}/api/orders"
        ),
    );
    let order: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("order response {body:?}: {e}"));
    let id = order["id"]
        .as_str()
        .unwrap_or_else(|| panic!("order without id: {body}"));
    assert_eq!(order["status"], "placed");
    let stored = lab.sql(
        lab.database("order"),
        &format!("select count(*) from orders where id = '{id}'"),
    );
    assert_eq!(
        stored.trim(),
        "1",
        "order {id} must be in PostgreSQL on vm1 exactly once"
    );
}
