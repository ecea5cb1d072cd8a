//! Every scenario (`xtests::scenarios::all()`) on the Docker Compose deployment: the same
//! checks the netns and VM backends run, written once against `xtests::deployment::Deployment`.
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the assertion

use xtests::deployment::Deployment;
use xtests::docker::compose_ready;
use xtests::docker::deployment::ComposeDeployment;
use xtests::scenarios::{all, run_one, Outcome};

#[test]
fn every_scenario_passes_on_docker_compose() {
    if !compose_ready("the scenarios on Docker Compose") {
        return;
    }
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
            Outcome::Failed(why) => failed.push(format!("{}: {why}", s.name)),
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
