//! What the engine asks its driver to do.

use core::fmt;

use crate::stats::SwitchRecord;

/// Something the driver must do, drained with [`Engine::poll_effect`](crate::Engine::poll_effect).
///
/// Effects borrow the engine's buffers: handle each one before the next call.
#[must_use = "an effect is a request the driver must carry out"]
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Effect<'a> {
    /// Publish `payload` on `channel`. A publish drained right after
    /// `handle_write` belongs with that write: send it in the same round trip
    /// (pipeline `SET` then `PUBLISH`).
    Publish(Publish<'a>),
    /// The strategy changed; tell the `on_switch` callbacks.
    Switched(SwitchRecord),
    /// Drop these stored keys from the near cache (another instance wrote them).
    Invalidate(InvalidatedKeys<'a>),
    /// Drop the whole near cache.
    InvalidateAll(DropReason),
    /// Drop the near-cache entries of one invalidation bucket: every key
    /// `k` with [`Config::bucket_of`](crate::Config::bucket_of)`(k) ==
    /// bucket` (its channel was lost; see [`crate::naming`]).
    InvalidateBucket(BucketDrop),
    /// Run a lease operation against the shared store, then report the
    /// answer with [`Engine::handle_lease`](crate::Engine::handle_lease)
    /// (except for [`LeaseOp::Release`](super::LeaseOp::Release)).
    Lease(super::LeaseRequest<'a>),
}

/// The near-cache entries of one bucket must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BucketDrop {
    /// The bucket, in `0..buckets`.
    pub bucket: u16,
    /// How many buckets the configuration has.
    pub buckets: u16,
    /// Why.
    pub reason: DropReason,
}

/// A message to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish<'a> {
    /// The channel name.
    pub channel: &'a str,
    /// The JSON payload, as the original writes it.
    pub payload: &'a [u8],
    /// What the payload is.
    pub kind: MessageKind,
}

/// The kind of a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageKind {
    /// An invalidation carrying `keys` keys.
    Invalidation {
        /// Number of keys in the message.
        keys: usize,
    },
    /// A controller's decision.
    StrategyUpdate,
    /// A follower's report of its write rate.
    RateReport,
}

/// Why the whole near cache must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The strategy tightened from `ttl`: entries filled while nobody sent
    /// invalidations are dropped, so every entry left obeys the new bound.
    Tightened,
    /// An invalidation arrived that could not be read whole (too large, too
    /// many keys): we cannot tell which keys it named.
    UnreadableInvalidation,
    /// The subscription was lost: invalidations may have been missed.
    SubscriptionLost,
    /// The driver did not drain effects and an invalidation could not be queued.
    Overflow,
}

impl DropReason {
    /// A short snake_case name, for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Tightened => "tightened",
            DropReason::UnreadableInvalidation => "unreadable_invalidation",
            DropReason::SubscriptionLost => "subscription_lost",
            DropReason::Overflow => "overflow",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stored keys named by a received invalidation, decoded (escapes resolved).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InvalidatedKeys<'a> {
    /// Length-prefixed keys: `[u16 little-endian length][bytes]`, repeated.
    packed: &'a [u8],
    len: usize,
}

impl<'a> InvalidatedKeys<'a> {
    pub(crate) fn new(packed: &'a [u8], len: usize) -> Self {
        InvalidatedKeys { packed, len }
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The keys, in the order the message listed them.
    pub fn iter(&self) -> InvalidatedKeysIter<'a> {
        InvalidatedKeysIter { rest: self.packed }
    }
}

impl fmt::Debug for InvalidatedKeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for InvalidatedKeys<'a> {
    type Item = &'a str;
    type IntoIter = InvalidatedKeysIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`InvalidatedKeys`].
#[derive(Clone, Debug)]
pub struct InvalidatedKeysIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for InvalidatedKeysIter<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let (len, rest) = self.rest.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_le_bytes(*len));
        let key = rest.get(..len)?;
        self.rest = &rest[len..];
        // Packed from decoded `char`s, so always UTF-8.
        core::str::from_utf8(key).ok()
    }
}
