//! Shared by the validation tests that break one thing in a base topology file: parse and
//! expect an error, and the base with one piece replaced.

use netns_kit::topology::{Topology, TopologyError};

/// The error `text` fails with; panics (showing the text) if it parses.
pub fn err(text: &str) -> TopologyError {
    match Topology::from_str(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// `base` with the first `from` replaced by `to`; panics if `base` has no `from`.
pub fn replaced(base: &str, from: &str, to: &str) -> String {
    assert!(base.contains(from), "BASE lacks {from:?}");
    base.replacen(from, to, 1)
}
