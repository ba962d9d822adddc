//! Counters the engine keeps, in fixed memory.

use core::fmt;

use crate::strategy::Strategy;
use crate::time::Instant;
use crate::wire::DecodeError;

/// Switches kept in [`Stats::switches`]; older ones are dropped (and still counted).
pub const SWITCH_HISTORY: usize = 32;

/// Why a received message was rejected, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum RejectReason {
    /// Longer than `max_message_bytes`.
    TooLarge,
    /// Not UTF-8.
    InvalidUtf8,
    /// Not JSON, or nesting too deep.
    Malformed,
    /// JSON, but not an object.
    NotAnObject,
    /// A required field missing.
    MissingField,
    /// A field of the wrong type.
    WrongType,
    /// An unknown `action`.
    UnknownAction,
    /// An unknown `strategy`.
    UnknownStrategy,
    /// More keys than `max_message_keys`.
    TooManyKeys,
    /// A message kind on the other kind's channel, or an unknown channel.
    WrongChannel,
    /// A key outside this instance's namespace (counted per key).
    ForeignKey,
    /// A decision from an older lease term than the controller we know.
    StaleTerm,
    /// A decision carrying the current term from an instance that does not
    /// hold the lease: spoofed, or from a confused instance.
    NotTheController,
    /// A decision without a term while an elected controller holds the lease
    /// (see `accept_termless_decisions`).
    NoTerm,
    /// A decision with a newer term, or from a controller not heard from,
    /// that the store did not confirm: the store named another holder, or
    /// none, when asked after the decision arrived (forged, or replaced by a
    /// later one before the store answered).
    UnconfirmedTerm,
    /// Messages are signed (`message_key`) and this one carries no tag.
    Unsigned,
    /// Messages are signed and this one's tag matches no configured key.
    BadSignature,
}

impl RejectReason {
    /// Number of reasons.
    pub const COUNT: usize = 17;
    /// Every reason, in counter order.
    pub const ALL: [RejectReason; Self::COUNT] = [
        RejectReason::TooLarge,
        RejectReason::InvalidUtf8,
        RejectReason::Malformed,
        RejectReason::NotAnObject,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::UnknownAction,
        RejectReason::UnknownStrategy,
        RejectReason::TooManyKeys,
        RejectReason::WrongChannel,
        RejectReason::ForeignKey,
        RejectReason::StaleTerm,
        RejectReason::NotTheController,
        RejectReason::NoTerm,
        RejectReason::UnconfirmedTerm,
        RejectReason::Unsigned,
        RejectReason::BadSignature,
    ];

    /// A short snake_case name, for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::Malformed => "malformed",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::UnknownAction => "unknown_action",
            RejectReason::UnknownStrategy => "unknown_strategy",
            RejectReason::TooManyKeys => "too_many_keys",
            RejectReason::WrongChannel => "wrong_channel",
            RejectReason::ForeignKey => "foreign_key",
            RejectReason::StaleTerm => "stale_term",
            RejectReason::NotTheController => "not_the_controller",
            RejectReason::NoTerm => "no_term",
            RejectReason::UnconfirmedTerm => "unconfirmed_term",
            RejectReason::Unsigned => "unsigned",
            RejectReason::BadSignature => "bad_signature",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<DecodeError> for RejectReason {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::TooLarge { .. } => RejectReason::TooLarge,
            DecodeError::InvalidUtf8 => RejectReason::InvalidUtf8,
            DecodeError::Syntax { .. } | DecodeError::TooDeep => RejectReason::Malformed,
            DecodeError::NotAnObject => RejectReason::NotAnObject,
            DecodeError::MissingField(_) => RejectReason::MissingField,
            DecodeError::WrongType(_) => RejectReason::WrongType,
            DecodeError::UnknownAction => RejectReason::UnknownAction,
            DecodeError::UnknownStrategy => RejectReason::UnknownStrategy,
            DecodeError::TooManyKeys { .. } => RejectReason::TooManyKeys,
        }
    }
}

/// Rejected messages, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RejectCounts([u64; RejectReason::COUNT]);

impl RejectCounts {
    /// Rejections for `reason`.
    pub fn get(&self, reason: RejectReason) -> u64 {
        self.0[reason as usize]
    }
    /// All rejections.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    /// `(reason, count)` for every reason.
    pub fn iter(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        RejectReason::ALL.into_iter().map(|r| (r, self.get(r)))
    }
    pub(crate) fn bump(&mut self, reason: RejectReason) {
        let c = &mut self.0[reason as usize];
        *c = c.saturating_add(1);
    }
}

/// Why the strategy changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum SwitchCause {
    /// This instance's controller decided it.
    Decided,
    /// A controller's broadcast was applied.
    Received,
    /// A command forced it.
    Forced,
}

/// One strategy switch.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SwitchRecord {
    /// When it happened (engine time).
    pub at: Instant,
    /// The strategy left.
    pub from: Strategy,
    /// The strategy entered.
    pub to: Strategy,
    /// The write rate that led to it (the controller's, for a received one), if known.
    pub write_rate: Option<f64>,
    /// Why.
    pub cause: SwitchCause,
}

/// A snapshot of the engine's counters.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Stats {
    /// Writes the driver reported acknowledged (`handle_write_acknowledged`).
    pub total_writes: u64,
    /// The strategy in force.
    pub current_strategy: Strategy,
    /// The latest fleet write rate known (writes/s): the controller's sum of
    /// its own and the reported rates, or the rate a follower's latest
    /// decision carried.
    pub write_rate: f64,
    /// This instance's own write rate at its latest tick or report (writes/s).
    pub own_write_rate: f64,
    /// Instances whose reports were in the controller's latest sum.
    pub reporting_instances: u64,
    /// Rate reports published.
    pub reports_sent: u64,
    /// Rate reports not recorded (table full, id too long).
    pub reports_dropped: u64,
    /// Whether this instance decides for the fleet now (forced to, or
    /// holding the lease).
    pub is_controller: bool,
    /// The lease term of the controller this instance follows or is
    /// (0: none known).
    pub term: u64,
    /// Times this instance won the lease.
    pub leases_won: u64,
    /// Times it lost a lease it held (the store named another holder or
    /// none, or did not confirm the lease in time) and stepped down.
    pub leases_lost: u64,
    /// Lease requests sent early to verify a term heard on the channel (at
    /// most one per `controller_interval`; see `engine::verify`).
    pub verifications: u64,
    /// Lease operations that failed (the store unreachable or slow).
    pub lease_failures: u64,
    /// Every switch ever made.
    pub total_switches: u64,
    /// The latest switches, oldest first (at most [`SWITCH_HISTORY`]).
    pub switches: heapless::Deque<SwitchRecord, SWITCH_HISTORY>,
    /// Invalidation messages handed to the driver to publish (the engine
    /// cannot know whether the publish succeeded; the `aci-cache` stats
    /// count those Redis acknowledged).
    pub invalidations_sent: u64,
    /// Keys carried by published invalidations.
    pub keys_sent: u64,
    /// Strategy decisions handed to the driver to publish.
    pub decisions_sent: u64,
    /// Messages accepted from other instances.
    pub messages_received: u64,
    /// Own messages seen and ignored.
    pub own_messages_ignored: u64,
    /// Messages rejected, by reason.
    pub rejected: RejectCounts,
    /// Times the whole near cache was dropped at the engine's request.
    pub full_drops: u64,
    /// `now` values that went backwards and were clamped.
    pub clock_regressions: u64,
    /// Batches flushed before their interval because the buffer was full.
    pub early_flushes: u64,
    /// Publishes that found the outbox full (effects were not drained); retried later.
    pub outbox_stalls: u64,
}

impl Stats {
    pub(crate) fn record_switch(&mut self, record: SwitchRecord) {
        if self.switches.is_full() {
            self.switches.pop_front();
        }
        // Cannot fail: one slot was just freed if needed.
        let _ = self.switches.push_back(record);
        self.total_switches += 1;
        self.current_strategy = record.to;
    }
}
