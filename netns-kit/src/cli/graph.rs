//! `netns-kit graph FILE --format dot|mermaid`: the topology as a picture.

use std::path::PathBuf;

use netns_kit::graph::{render, Format};
use netns_kit::topology::Topology;

use super::Outcome;

/// Output format flag.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    /// Graphviz dot: pipe into `dot -Tsvg`.
    Dot,
    /// Mermaid flowchart: paste into Markdown.
    Mermaid,
}

/// Arguments of `graph`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  netns-kit graph ecomm-services/deploy/three-tier.toml | dot -Tsvg > topology.svg
  netns-kit graph ecomm-services/deploy/three-tier.toml --format mermaid >> README.md")]
pub struct Args {
    /// The topology file (TOML).
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    pub format: FormatArg,
}

/// Validates the file and prints its picture to stdout.
pub fn run(args: Args) -> Outcome {
    let t = Topology::from_path(&args.file)?;
    let format = match args.format {
        FormatArg::Dot => Format::Dot,
        FormatArg::Mermaid => Format::Mermaid,
    };
    print!("{}", render(&t, format));
    Ok(0)
}
