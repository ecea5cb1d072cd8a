//! Run ids: a short random tag carried by every object a run creates (namespace names,
//! link aliases, state files), so cleanup removes exactly what that run made.

use std::fmt;
use std::io::Read;

use crate::error::{Error, Result};

/// Prefix of the ifalias netns-kit writes on every link it creates.
pub const ALIAS_PREFIX: &str = "netns-kit:";

/// A run id: 8 lowercase hex digits (32 random bits).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// A fresh random run id (from /dev/urandom).
    pub fn new() -> Result<RunId> {
        let mut b = [0u8; 4];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b))
            .map_err(|e| Error::io("read", "/dev/urandom", e))?;
        Ok(RunId(b.iter().map(|x| format!("{x:02x}")).collect()))
    }

    /// Parse a run id (8 lowercase hex digits).
    pub fn parse(s: &str) -> Result<RunId> {
        if s.len() == 8
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(RunId(s.to_string()))
        } else {
            Err(Error::Invalid {
                kind: "run id",
                value: s.to_string(),
                expected: "8 lowercase hex digits",
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ifalias marking a link as this run's: `netns-kit:<id>`.
    pub fn alias(&self) -> String {
        format!("{ALIAS_PREFIX}{}", self.0)
    }

    /// The run id in an ifalias written by netns-kit, if it is one.
    pub fn from_alias(alias: &str) -> Option<RunId> {
        alias
            .strip_prefix(ALIAS_PREFIX)
            .and_then(|s| RunId::parse(s).ok())
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RunId {
    type Error = Error;
    fn try_from(s: String) -> Result<RunId> {
        RunId::parse(&s)
    }
}

impl From<RunId> for String {
    fn from(r: RunId) -> String {
        r.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_parse_and_round_trip_through_the_alias() {
        let id = RunId::new().unwrap();
        assert_eq!(RunId::parse(id.as_str()).unwrap(), id);
        assert_eq!(RunId::from_alias(&id.alias()), Some(id));
    }

    #[test]
    fn look_alike_aliases_are_not_ours() {
        assert_eq!(RunId::from_alias("netns-kit:XYZ"), None);
        assert_eq!(RunId::from_alias("other:0123abcd"), None);
        assert!(RunId::parse("0123abcd0").is_err());
    }
}
