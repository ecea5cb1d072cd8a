//! The gateway's hand-written upstream HTTP/1.1 response reader (head parser, framing,
//! response building): any bytes either need more, fail with a typed error, or give a
//! response whose body respects the cap.
#![no_main]

use ecomm_services::gateway::fuzzing;
use libfuzzer_sys::fuzz_target;

/// Body cap of the target (small, so that the oversize paths are reached).
const MAX_BODY: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // The first byte picks whether the request was HEAD (no body whatever the head says).
    let Some((flags, wire)) = data.split_first() else {
        return;
    };
    if let Ok(Some(response)) = fuzzing::response(wire, flags & 1 == 1, MAX_BODY) {
        assert!(response.body().len() <= MAX_BODY);
        assert!(!response.status().is_informational());
    }
});
