//! The Swarm stack on a one-node swarm: `tasks.product` resolves to both replicas from inside
//! the gateway, requests through the gateway succeed, and removing the stack leaves nothing.
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the assertion

use xtests::docker::docker_ready;
use xtests::docker::engine::docker;
use xtests::docker::run::leftovers;
use xtests::docker::swarm::SwarmStack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swarm_stack_discovers_both_product_replicas_by_dns() {
    if !docker_ready("the swarm stack") {
        return;
    }
    let swarm_before = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .await
        .unwrap();
    // Replicas are the declared instances (swarm-stack.yml is generated from the declaration).
    let t = netns_kit::topology::Topology::from_path(xtests::topology_file::shared_file()).unwrap();
    let replicas = |s: &str| t.service(s).unwrap().instances.len();
    let stack = SwarmStack::deploy().await.unwrap();
    stack
        .wait_healthy("product", replicas("product"), 240)
        .await
        .unwrap();
    stack
        .wait_healthy("order", replicas("order"), 240)
        .await
        .unwrap();
    let gateway = stack
        .wait_healthy("gateway", 1, 240)
        .await
        .unwrap()
        .remove(0);

    let lookup = docker(&[
        "exec",
        &gateway,
        "busybox",
        "nslookup",
        "tasks.product",
        "127.0.0.11",
    ])
    .await
    .unwrap();
    let addresses: Vec<&str> = lookup
        .lines()
        .filter(|l| l.starts_with("Address:") && !l.contains("127.0.0.11"))
        .collect();
    assert_eq!(addresses.len(), 2, "tasks.product: {lookup}");

    for id in 1..=4 {
        let body = docker(&[
            "exec",
            &gateway,
            "busybox",
            "wget",
            "-qO-",
            &format!("http://127.0.0.1:3000/api/products/{id}"),
        ])
        .await
        .unwrap();
        let product: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(product["id"], id);
    }

    let name = stack.stack.clone();
    stack.remove().await.unwrap();
    assert_eq!(leftovers(&name).await.unwrap(), Vec::<String>::new());
    let swarm_after = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .await
        .unwrap();
    assert_eq!(swarm_after, swarm_before, "the swarm is left as it was");
}
