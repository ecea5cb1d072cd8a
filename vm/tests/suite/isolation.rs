//! Isolation across hosts: the tier policy of vm1's router holds for nodes on other VMs
//! (their traffic reaches the router over the VXLAN overlay), checked with real TCP.

use crate::lab::{address, Lab};

/// Frontend reaches the backend's service ports only; backend nodes on different VMs
/// reach each other freely; products reach Redis and PostgreSQL, orders PostgreSQL only;
/// the frontend reaches no database; the database tier opens nothing.
pub fn tier_policy_holds_across_hosts(lab: &Lab) {
    lab.listen("product-2", 8002);
    lab.listen("product-2", 9000);
    lab.listen("product-1", 9000);
    lab.listen("gateway", 9000);

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

    // frontend (vm1) -> backend (vm3): service ports only.
    assert!(
        lab.can_connect("gateway", address("product-2"), 8002),
        "gateway -> product-2:8002 must be allowed"
    );
    assert!(
        lab.all_blocked("gateway", &[(address("product-2"), 9000)]),
        "gateway -> product-2:9000 must be dropped"
    );

    // backend (vm3) <-> backend (vm2): all, over the overlay.
    assert!(
        lab.can_connect("product-2", address("product-1"), 9000),
        "product-2 -> product-1 across hosts"
    );

    // backend (vm2) -> database (vm1): per-service ports.
    assert!(
        lab.can_connect("product-1", address("redis"), 6379),
        "product-1 -> redis"
    );
    assert!(
        lab.can_connect("product-1", address("postgres"), 5432),
        "product-1 -> postgres"
    );
    assert!(
        lab.can_connect("order-1", address("postgres"), 5432),
        "order-1 -> postgres"
    );
    assert!(
        lab.all_blocked("order-1", &[(address("redis"), 6379)]),
        "order-1 -> redis must be dropped"
    );

    // frontend -> database: nothing.
    assert!(
        lab.all_blocked(
            "gateway",
            &[(address("redis"), 6379), (address("postgres"), 5432)]
        ),
        "gateway -> redis/postgres must be dropped"
    );

    // database -> anywhere: nothing new.
    assert!(
        lab.all_blocked("redis", &[(address("product-2"), 8002)]),
        "redis -> product-2 must be dropped"
    );
    assert!(
        lab.all_blocked("postgres", &[(address("gateway"), 9000)]),
        "postgres -> gateway must be dropped"
    );
}
