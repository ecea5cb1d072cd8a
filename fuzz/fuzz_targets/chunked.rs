//! The gateway's chunked decoder: any bytes and any cap either need more, fail with a typed
//! error, or give a body within the cap taken from within the buffer.
#![no_main]

use ecomm_services::gateway::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first eight bytes are the cap (any usize, up to usize::MAX), the rest the wire.
    if data.len() < 8 {
        return;
    }
    let (cap, wire) = data.split_at(8);
    let mut cap_bytes = [0u8; 8];
    cap_bytes.copy_from_slice(cap);
    let max = u64::from_le_bytes(cap_bytes) as usize;
    if let Ok(Some((body, consumed))) = fuzzing::chunked(wire, max) {
        assert!(body.len() <= max);
        assert!(consumed <= wire.len());
        assert!(body.len() <= consumed);
    }
});
