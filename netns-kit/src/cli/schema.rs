//! `netns-kit schema`: the topology file's JSON Schema, for editors and CI.

use std::io::Write;

use super::{CliError, Outcome};

const EXAMPLES: &str = "\
Examples:
  netns-kit schema > topology.schema.json
  # then, as the first line of a topology file (taplo / Even Better TOML validate as you type):
  #:schema ./topology.schema.json";

/// Arguments of `schema` (none).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {}

/// Prints the schema (generated from the spec types; equal to the committed
/// netns-kit/schema/topology.schema.json).
pub fn run(_args: Args) -> Outcome {
    let text = netns_kit::topology::schema::json_schema_text();
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| CliError::Runtime(format!("write the schema to stdout: {e}")))?;
    Ok(0)
}
