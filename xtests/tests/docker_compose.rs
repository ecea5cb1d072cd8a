//! The Compose file: the stack comes up healthy, answers through 127.0.0.1, scales product by
//! DNS, and `down -v` leaves nothing of the project behind.
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the assertion

use xtests::docker::compose::ComposeProject;
use xtests::docker::docker_ready;
use xtests::docker::http::get;
use xtests::docker::run::leftovers;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_up_serves_through_the_gateway_and_down_leaves_nothing() {
    if !docker_ready("the compose stack") {
        return;
    }
    let project = ComposeProject::up().await.unwrap();
    project.wait_healthy(240).await.unwrap();
    let gw = project.gateway().await.unwrap();
    assert!(gw.ip().is_loopback(), "gateway published on {gw}");

    let first = get(gw, "/api/products/2").await.unwrap();
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json().unwrap()["sku"], "KB-002");
    assert_eq!(first.header("x-cache"), Some("miss"));
    assert_eq!(
        get(gw, "/api/products/2").await.unwrap().header("x-cache"),
        Some("hit")
    );

    // Tier isolation: the gateway has no leg on the database network.
    let nets = project
        .compose(
            &["exec", "-T", "gateway", "busybox", "ip", "-4", "-o", "addr"],
            30,
        )
        .await
        .unwrap();
    let gateway = netns_kit::topology::Topology::from_path(xtests::topology_file::shared_file())
        .unwrap()
        .node("gateway")
        .unwrap()
        .interfaces[0]
        .address
        .to_string();
    assert!(nets.contains(&gateway), "{nets}");
    assert!(nets.contains("172.21.0."), "{nets}");
    assert!(
        !nets.contains("172.22.0."),
        "gateway reaches the database tier: {nets}"
    );

    let name = project.project.clone();
    project.down().await.unwrap();
    assert_eq!(leftovers(&name).await.unwrap(), Vec::<String>::new());
}
