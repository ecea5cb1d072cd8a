//! The Compose deployment (`xtests::docker::deployment::ComposeDeployment`), every operation of
//! the `Deployment` trait once: a read through the gateway (miss, then hit), Redis stopped and
//! started (the cache header follows), SQL in the declared database, allowed and denied TCP
//! probes of the tier policy (through the router container), a listener, metrics, the
//! registry's view, a product instance killed and started again — and nothing left after drop.
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the assertion

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use xtests::deployment::Deployment;
use xtests::docker::compose_ready;
use xtests::docker::deployment::ComposeDeployment;
use xtests::docker::run::leftovers;
use xtests::ns::TcpOutcome;

/// Retries `f` until it returns `Some`, for at most `seconds` (no timing is asserted: the
/// bound only keeps a broken stack from hanging the test).
fn eventually<T>(seconds: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn listen_addr(d: &ComposeDeployment, service: &str, node: &str) -> SocketAddr {
    d.topology().service(service).unwrap().listen(node).unwrap()
}

#[test]
fn the_compose_deployment_does_every_trait_operation_and_leaves_nothing() {
    if !compose_ready("the compose deployment") {
        return;
    }
    let d = ComposeDeployment::start(&xtests::topology_file::shared_file()).unwrap();
    let t = d.topology().clone();
    assert!(
        d.gateway().ip().is_loopback(),
        "published on {}",
        d.gateway()
    );
    let products: Vec<String> = t
        .service("product")
        .unwrap()
        .instances
        .iter()
        .map(|i| i.node.clone())
        .collect();
    let first = products[0].clone();

    // One container per declared node (and the router).
    for n in &t.nodes {
        d.container(&n.name).unwrap();
    }

    // HTTP through the gateway: a miss, then a hit.
    let a = d.get("/api/products/2").unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json().unwrap()["sku"], "KB-002");
    assert_eq!(a.header("x-cache"), Some("miss"));
    assert_eq!(
        d.get("/api/products/2").unwrap().header("x-cache"),
        Some("hit")
    );

    // Redis stopped: reads still answer, from the database; started: hits again.
    d.stop("redis").unwrap();
    let r = d.get("/api/products/2").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-cache"), Some("miss"));
    d.start("redis").unwrap();
    let hit = eventually(30, || {
        (d.get("/api/products/3").ok()?.header("x-cache") == Some("hit")).then_some(())
    });
    assert!(hit.is_some(), "no cache hit after redis started again");

    // SQL in the declared database.
    let db = &t.service("product").unwrap().data["database"];
    assert_eq!(
        d.sql(db, "SELECT sku FROM products WHERE id = 2").unwrap(),
        "KB-002"
    );

    // The tier policy through the router: product → redis allowed, order → redis denied,
    // frontend → registry on a port the policy does not open denied, same tier allowed.
    let order = t.service("order").unwrap().instances[0].node.clone();
    let redis = listen_addr(&d, "redis", "redis");
    let short = Duration::from_secs(2);
    assert_eq!(
        d.tcp_probe(&first, redis, short).unwrap(),
        TcpOutcome::Reachable
    );
    assert_eq!(
        d.tcp_probe(&order, redis, short).unwrap(),
        TcpOutcome::TimedOut
    );
    let registry = listen_addr(&d, "registry", "registry");
    let _open = d.listen("registry", 9999).unwrap();
    let odd = SocketAddr::new(registry.ip(), 9999);
    assert_eq!(
        d.tcp_probe("gateway", odd, short).unwrap(),
        TcpOutcome::TimedOut
    );
    assert_eq!(
        d.tcp_probe(&first, odd, short).unwrap(),
        TcpOutcome::Reachable
    );
    assert_eq!(
        d.tcp_probe("gateway", registry, short).unwrap(),
        TcpOutcome::Reachable
    );
    // Nothing of the database tier is reachable from the frontend.
    let pg = listen_addr(&d, "postgres", "postgres");
    assert_eq!(
        d.tcp_probe("gateway", pg, short).unwrap(),
        TcpOutcome::TimedOut
    );

    // The registry resolves every declared product instance; each serves metrics.
    let mut want = products.clone();
    want.sort();
    let all = eventually(30, || {
        let ids = d.registry_instances("product").ok()?;
        (ids == want).then_some(ids)
    });
    assert_eq!(all, Some(want.clone()));
    for p in &products {
        assert!(d.metrics(p).unwrap().contains("http_requests_total"), "{p}");
    }

    // Kill a product instance: it leaves the registry; started again, it is back and serves.
    d.kill(&first).unwrap();
    let gone = eventually(30, || {
        let ids = d.registry_instances("product").ok()?;
        (!ids.contains(&first)).then_some(())
    });
    assert!(gone.is_some(), "{first} still registered after kill");
    let served = eventually(30, || {
        (d.get("/api/products/4").ok()?.status == 200).then_some(())
    });
    assert!(served.is_some(), "no answer with {first} down");
    d.start(&first).unwrap();
    let back = eventually(30, || {
        (d.registry_instances("product").ok()? == want).then_some(())
    });
    assert!(back.is_some(), "{first} did not register again");
    assert_eq!(
        d.tcp_probe(&first, redis, short).unwrap(),
        TcpOutcome::Reachable,
        "a restarted node is wired again"
    );

    let project = d.project().to_string();
    let run = d.run_id().to_string();
    drop(d);
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(leftovers(&run)).unwrap(), Vec::<String>::new());
    assert_eq!(
        rt.block_on(leftovers(&project)).unwrap(),
        Vec::<String>::new()
    );
}
