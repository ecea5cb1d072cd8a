//! Every scenario (`xtests::scenarios::all()`) on the Docker Compose deployment: the same
//! checks the netns and VM backends run, written once against `xtests::deployment::Deployment`;
//! and the declared tier subnets kept to one deployment at a time (`xtests::docker::tiers`).
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the assertion

use std::time::Duration;

use xtests::deployment::Deployment;
use xtests::docker::compose_ready;
use xtests::docker::deployment::ComposeDeployment;
use xtests::docker::run::leftovers;
use xtests::docker::tiers;
use xtests::scenarios::{all, run_one, Outcome};

/// The two Docker tests of this binary, one at a time: the second makes a Docker network
/// on a declared subnet on purpose, which (rightly) refuses any deployment started meanwhile.
static DOCKER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    DOCKER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn every_scenario_passes_on_docker_compose() {
    if !compose_ready("the scenarios on Docker Compose") {
        return;
    }
    let _serial = one_at_a_time();
    let d = ComposeDeployment::start(&xtests::topology_file::shared_file()).unwrap();
    // The deployment serves before any scenario runs (also the check while none exist yet).
    assert_eq!(d.get("/api/products/1").unwrap().status, 200);
    let mut failed = Vec::new();
    let mut passed = 0;
    for s in all() {
        let (outcome, took) = run_one(&s, &d);
        eprintln!("{:<70} {:?} ({:.1} s)", s.name, outcome, took.as_secs_f64());
        match outcome {
            Outcome::Passed => passed += 1,
            Outcome::Failed(why) => {
                // What the gateway saw (health checks, ejections, upstream errors) says why.
                for node in ["gateway", "registry"] {
                    if let Some(tail) = d.log_tail(node, 40) {
                        eprintln!("--- {node}, last 40 lines ---\n{tail}");
                    }
                }
                failed.push(format!("{}: {why}", s.name))
            }
            Outcome::NotApplicable(_) => {}
        }
    }
    eprintln!("docker: {passed} passed, {} failed", failed.len());
    assert!(
        failed.is_empty(),
        "failed on docker:\n{}",
        failed.join("\n")
    );
}

/// The `ecomm.run` labels of every container, network and volume on the daemon.
fn run_labels() -> std::collections::BTreeSet<String> {
    let mut labels = std::collections::BTreeSet::new();
    for kind in ["container", "network", "volume"] {
        let mut args = vec![kind, "ls", "-q"];
        if kind == "container" {
            args = vec!["ps", "-aq"];
        }
        let out = std::process::Command::new("docker")
            .args(&args)
            .output()
            .unwrap();
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let out = std::process::Command::new("docker")
                .args([
                    "inspect",
                    "-f",
                    "{{index .Config.Labels \"ecomm.run\"}}{{index .Labels \"ecomm.run\"}}",
                    id,
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).replace("<no value>", "");
            if !text.trim().is_empty() {
                labels.insert(format!("{kind} {}", text.trim()));
            }
        }
    }
    labels
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_second_deployment_waits_for_the_tier_subnets_and_an_overlap_is_refused_before_anything_exists()
{
    if !compose_ready("two Compose deployments on the declared tiers") {
        return;
    }
    let _serial = one_at_a_time();
    let file = xtests::topology_file::shared_file();
    // Another process's deployment (another `cargo test`) may hold the tiers: the first waits
    // for it, with a progress line naming the holder.
    let first = ComposeDeployment::start(&file).unwrap();
    let run = first.run_id().to_string();
    let before = run_labels();

    // A second one while the first runs: refused once its wait is over, naming the holder
    // and the subnets, and nothing of it exists.
    let second = ComposeDeployment::start_waiting(&file, Duration::ZERO)
        .err()
        .expect("a second deployment on the same tiers is refused")
        .to_string();
    eprintln!("refused as expected: {second}");
    assert!(
        second.contains(first.project()),
        "names the holder: {second}"
    );
    for (_, subnet) in tiers::subnets(first.topology()) {
        assert!(
            second.contains(&subnet.to_string()),
            "names {subnet}: {second}"
        );
    }
    assert_eq!(
        run_labels(),
        before,
        "the refused deployment created nothing"
    );
    let (name, subnet) = tiers::subnets(first.topology()).remove(1);
    drop(first);
    assert_eq!(block_on(leftovers(&run)).unwrap(), Vec::<String>::new());

    // Another Docker network on a declared subnet: refused before anything is created,
    // naming the tier, its subnet and that network.
    let squatter = format!("ecomm-squat-{}", xtests::docker::run::new_run_id());
    let made = std::process::Command::new("docker")
        .args(["network", "create", "--subnet", &subnet.to_string()])
        .args(["--label", &format!("ecomm.run={squatter}"), &squatter])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let before = run_labels();
    let refused = ComposeDeployment::start_waiting(&file, Duration::ZERO)
        .err()
        .map(|e| e.to_string());
    let after = run_labels();
    let removed = std::process::Command::new("docker")
        .args(["network", "rm", &squatter])
        .output()
        .unwrap();
    let refused = refused.expect("a deployment over another Docker network is refused");
    eprintln!("refused as expected: {refused}");
    for part in [name.as_str(), &subnet.to_string(), squatter.as_str()] {
        assert!(refused.contains(part), "names {part}: {refused}");
    }
    assert_eq!(after, before, "the refused deployment created nothing");
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert_eq!(
        block_on(leftovers(&squatter)).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn a_route_over_a_declared_tier_is_refused_naming_both() {
    if nix::unistd::geteuid().as_raw() != 0 {
        eprintln!("skipped: needs root (a namespace of its own)");
        return;
    }
    let t = netns_kit::Topology::from_path(xtests::topology_file::shared_file()).unwrap();
    let subnets = tiers::subnets(&t);
    // A namespace of the test's own (never the host's), with a route as a `just up` lab's
    // host link would install: a /16 around the first tier.
    let ns = netns_kit::Netns::new_anonymous().unwrap();
    let mut nl = ns.netlink().unwrap();
    assert!(
        tiers::check_routes(&ns, &subnets).is_ok(),
        "nothing routes the tiers yet"
    );
    netns_kit::link::bridge::bridge("squat0")
        .up()
        .create(&mut nl)
        .unwrap();
    let dev = netns_kit::link::by_name(&mut nl, "squat0")
        .unwrap()
        .unwrap()
        .index;
    let (name, subnet) = subnets[0].clone();
    let wide = ipnet::IpNet::new(subnet.network(), 16).unwrap().trunc();
    netns_kit::route::Route::to(wide.network(), wide.prefix_len())
        .dev(dev)
        .add(&mut nl)
        .unwrap();
    match tiers::check_routes(&ns, &subnets) {
        Err(tiers::TierError::RouteOverlap {
            network,
            subnet: s,
            route,
            ..
        }) => {
            assert_eq!((network.as_str(), s), (name.as_str(), subnet));
            assert!(route.starts_with(&wide.to_string()), "{route}");
        }
        other => panic!("expected RouteOverlap on {name} {subnet}, got {other:?}"),
    }
}
