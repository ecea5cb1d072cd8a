//! The JSON Schema of the topology file, generated from the spec types ([`super::spec`]) so it
//! can never disagree with what the parser accepts (feature `schema`, on with `cli`).
//!
//! `netns-kit schema` prints it; the committed copy is `netns-kit/schema/topology.schema.json`
//! (tests/schema.rs checks the two are equal and that every fixture validates). Editors that
//! read a `#:schema ./path/to/topology.schema.json` first line (taplo, Even Better TOML)
//! validate and complete a topology file as it is typed.
//!
//! The schema checks shape (keys, types, enums, ranges); what it cannot express (references
//! between names, overlapping subnets, address allocation) is [`super::Topology::from_str`]'s.

use super::spec::TopologySpec;

/// Where the committed schema lives, relative to the netns-kit crate.
pub const SCHEMA_PATH: &str = "schema/topology.schema.json";

/// The topology file's JSON Schema (draft 2020-12) as a JSON value.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(TopologySpec);
    schema.insert(
        "title".to_string(),
        serde_json::Value::String("netns-kit topology file".to_string()),
    );
    schema.to_value()
}

/// The schema as pretty-printed JSON text ending in a newline: exactly the committed file.
pub fn json_schema_text() -> String {
    // A `serde_json::Value` always serializes.
    let mut text = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    text.push('\n');
    text
}
