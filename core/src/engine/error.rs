//! Outcomes of the engine's inputs.

use core::fmt;

use crate::stats::RejectReason;
use crate::wire::DecodeError;

/// A write the engine refused. Nothing was counted or queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The engine is stopped.
    Stopped,
    /// The key is too long for an invalidation to name it within `max_message_bytes`.
    KeyTooLong {
        /// The key's length in bytes.
        len: usize,
    },
    /// Effects were not drained and the outbox has no room: drain, then retry.
    Backpressure,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Stopped => f.write_str("the cache is stopped"),
            WriteError::KeyTooLong { len } => write!(
                f,
                "key of {len} bytes is too long to fit in an invalidation message"
            ),
            WriteError::Backpressure => {
                f.write_str("engine effects were not drained; the outbox is full")
            }
        }
    }
}

impl core::error::Error for WriteError {}

/// What the engine did with an accepted message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handled {
    /// Our own message, echoed back by the server: ignored.
    OwnMessage,
    /// An invalidation: `keys` keys queued for dropping, `foreign` outside our namespace ignored.
    Invalidation {
        /// Keys to drop.
        keys: usize,
        /// Keys ignored for being outside the namespace.
        foreign: usize,
    },
    /// A decision, applied (the strategy may have been unchanged).
    DecisionApplied,
    /// A decision not applied: we are the controller, or the strategy is pinned.
    DecisionIgnored,
    /// A decision whose term and sender the store has not confirmed: held
    /// while this instance asks the store who holds the lease, then applied
    /// or rejected (counted as [`RejectReason::UnconfirmedTerm`]).
    DecisionVerifying,
    /// Another instance's write rate: recorded for the fleet's sum when we
    /// are the controller (`false` when we are not, or the table is full).
    RateReport {
        /// Whether it went into the fleet's sum.
        recorded: bool,
    },
}

/// A message the engine rejected, and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The counter it went to.
    pub reason: RejectReason,
    /// The decoding fault, when the payload could not be read.
    pub error: Option<DecodeError>,
    /// Whether the whole near cache was dropped because of it.
    pub dropped_all: bool,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(e) => write!(f, "message rejected ({}): {e}", self.reason)?,
            None => write!(f, "message rejected ({})", self.reason)?,
        }
        if self.dropped_all {
            f.write_str("; near cache dropped")?;
        }
        Ok(())
    }
}

impl core::error::Error for Rejection {}
