//! The three invalidation strategies and the roles an instance can play.

use core::fmt;
use core::str::FromStr;

/// How writes are announced to the other instances of a fleet.
///
/// Ordered from loosest to strictest: `Ttl < Batched < Eager`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Strategy {
    /// Nothing is sent; other instances' near caches expire at `local_ttl`.
    #[default]
    Ttl,
    /// Written keys are buffered and sent in one message per `batch_interval`.
    Batched,
    /// Every write sends one invalidation, in the same round trip as the write.
    Eager,
}

impl Strategy {
    /// All strategies, loosest first.
    pub const ALL: [Strategy; 3] = [Strategy::Ttl, Strategy::Batched, Strategy::Eager];

    /// The wire name: `"ttl"`, `"batched"` or `"eager"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::Ttl => "ttl",
            Strategy::Batched => "batched",
            Strategy::Eager => "eager",
        }
    }

    /// Parses a wire name the way the original does: surrounding ASCII
    /// whitespace is ignored and case does not matter.
    pub fn parse(name: &str) -> Option<Strategy> {
        let name = name.trim_matches(|c: char| c.is_ascii_whitespace());
        Strategy::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }

    /// A small index (0, 1, 2), loosest first; handy for per-strategy tables.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given was not `ttl`, `batched` or `eager`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownStrategy;

impl fmt::Display for UnknownStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown strategy: expected \"ttl\", \"batched\" or \"eager\"")
    }
}

impl core::error::Error for UnknownStrategy {}

impl FromStr for Strategy {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::parse(s).ok_or(UnknownStrategy)
    }
}

/// Which part an instance plays in choosing the fleet's strategy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum Role {
    /// Takes part in electing the fleet's controller through a lease in Redis
    /// (the default): the instance holding the lease decides, the others
    /// follow and stand ready to take over when the holder stops renewing.
    #[default]
    Auto,
    /// Always decides, every `controller_interval`, and broadcasts the
    /// decision without a term (the original's `is_controller=True`).
    Controller,
    /// Applies the decisions it receives, never decides, never takes the
    /// lease (the original's `is_controller=False`).
    Follower,
}

impl Role {
    /// `"auto"`, `"controller"` or `"follower"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Auto => "auto",
            Role::Controller => "controller",
            Role::Follower => "follower",
        }
    }
}

/// The name given was not `auto`, `controller` or `follower`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownRole;

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown role: expected \"auto\", \"controller\" or \"follower\"")
    }
}

impl core::error::Error for UnknownRole {}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Role::Auto, Role::Controller, Role::Follower]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or(UnknownRole)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_lenient_like_the_original() {
        assert_eq!(Strategy::parse("eager"), Some(Strategy::Eager));
        assert_eq!(Strategy::parse(" Batched\n"), Some(Strategy::Batched));
        assert_eq!(Strategy::parse("TTL"), Some(Strategy::Ttl));
        assert_eq!(Strategy::parse("lazy"), None);
        assert_eq!(Strategy::parse(""), None);
        assert!(Strategy::Ttl < Strategy::Batched && Strategy::Batched < Strategy::Eager);
    }
}
