//! Parsing one subcommand's flags outside the `ecomm` binary (tests, embedding).

use std::ffi::OsString;

/// Parses `flags` as if given on the command line after `ecomm <name>`: defaults and
/// environment fallbacks apply exactly as they do for the binary.
pub fn parse<A, I, T>(name: &'static str, flags: I) -> Result<A, clap::Error>
where
    A: clap::Args + clap::FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let command = A::augment_args(clap::Command::new(name));
    let argv = std::iter::once(OsString::from(name)).chain(flags.into_iter().map(Into::into));
    let matches = command.try_get_matches_from(argv)?;
    A::from_arg_matches(&matches)
}
