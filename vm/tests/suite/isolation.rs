//! Isolation across hosts: the tier policy of vm1's router holds for nodes on other VMs
//! (their traffic reaches the router over the VXLAN overlay), checked with real TCP.

use crate::lab::Lab;

/// Frontend reaches the backend's service ports only; backend nodes on different VMs
/// reach each other freely; products reach Redis and PostgreSQL, orders PostgreSQL only;
/// the frontend reaches no database; the database tier opens nothing.
pub fn tier_policy_holds_across_hosts(lab: &Lab) {
    lab.listen(&[
        ("product-2", 8002),
        ("product-2", 9000),
        ("product-1", 9000),
        ("gateway", 9000),
    ]);

    // The nodes really are on different hosts.
    let vm1_namespaces = lab.vm("vm1").succeed("ip netns list");
    assert!(
        !vm1_namespaces.contains("lab-product-2"),
        "product-2 must not live on vm1: {vm1_namespaces}"
    );
    assert!(lab
        .vm("vm3")
        .succeed("ip netns list")
        .contains("lab-product-2"));

    let allowed = [
        // frontend (vm1) -> backend (vm3): service ports.
        ("gateway", "product-2", 8002),
        // backend (vm3) <-> backend (vm2): all, over the overlay.
        ("product-2", "product-1", 9000),
        // backend (vm2) -> database (vm1): per-service ports.
        ("product-1", "redis", 6379),
        ("product-1", "postgres", 5432),
        ("order-1", "postgres", 5432),
    ];
    let denied = [
        // frontend -> backend: nothing but the service ports.
        ("gateway", "product-2", 9000),
        // orders never touch Redis.
        ("order-1", "redis", 6379),
        // frontend -> database: nothing.
        ("gateway", "redis", 6379),
        ("gateway", "postgres", 5432),
        // database -> anywhere: nothing new.
        ("redis", "product-2", 8002),
        ("postgres", "gateway", 9000),
    ];
    let closed = lab.unreachable(&allowed);
    assert!(closed.is_empty(), "allowed paths must connect: {closed:?}");
    let open = lab.reachable(&denied);
    assert!(open.is_empty(), "denied paths must be dropped: {open:?}");
}
