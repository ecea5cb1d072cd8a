//! No leaks: a lab torn down — normally, or by a panicking test — leaves no namespace, link,
//! nftables table or process of its run on the machine.
#![allow(clippy::unwrap_used)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use xtests::Lab;

#[test]
fn a_lab_dropped_by_a_panicking_test_leaves_nothing_behind() {
    if !xtests::privileged("the leak test") {
        return;
    }
    let lab = Lab::start().unwrap();
    let footprint = lab.footprint();
    assert!(
        footprint.ns_inodes.len() >= 9,
        "fabric, router and seven nodes: {footprint:?}"
    );
    assert!(
        footprint.pids.len() >= 7,
        "seven components run: {footprint:?}"
    );
    assert!(
        !footprint.leftovers().is_empty(),
        "while up, the run is visible to the check"
    );

    let outcome = catch_unwind(AssertUnwindSafe(move || {
        let _lab = lab;
        panic!("a test fails with the lab up");
    }));
    assert!(outcome.is_err());

    assert_eq!(footprint.leftovers(), Vec::<String>::new());
}

#[test]
fn a_network_only_lab_leaves_nothing_behind() {
    if !xtests::privileged("the leak test") {
        return;
    }
    let lab = Lab::builder().network_only().start().unwrap();
    assert!(lab.ns("router").is_ok() && lab.ns("fabric").is_ok());
    assert_eq!(lab.shutdown(), Vec::<String>::new());
}
