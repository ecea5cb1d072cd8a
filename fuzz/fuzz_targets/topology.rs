//! The topology parser and validator of netns-kit: any text either fails with a typed error
//! or yields a topology whose TOML form parses back into the same topology.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netns_kit::topology::Topology;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(topology) = Topology::from_str(text) {
        let again = Topology::from_str(&topology.to_toml())
            .expect("a validated topology's TOML form is valid");
        assert_eq!(again, topology, "TOML round trip changed the topology");
    }
});
