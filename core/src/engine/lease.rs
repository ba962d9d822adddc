//! The controller election: with [`Role::Auto`] the instances of a namespace
//! elect one controller through a lease in the shared store (Redis).
//!
//! - A candidate asks for the lease every `controller_interval` (the first
//!   time at `start`). The store grants it when nobody holds it, under a new
//!   **term** — a counter the store increments on every grant and never lets
//!   fall below the highest term the candidate has seen.
//! - The holder renews every interval. It counts its lease as valid until
//!   `sent + lease_ttl`, where `sent` is when it *sent* the request: the store
//!   started the lease's clock later than that, so the holder always gives up
//!   before anyone else can be granted the lease. When a renewal is refused,
//!   or not confirmed by then, it steps down.
//! - A dead holder stops renewing: its lease expires after `lease_ttl` (1.5
//!   intervals) and the next candidate's request (at most an interval later)
//!   wins it — a takeover within 2.5 intervals plus a round trip. A holder
//!   that stops releases the lease, so another takes over within an interval.
//! - Decisions carry the term. A follower keeps the controller it believes
//!   in (term and id, **from the store's answers only**) and rejects,
//!   counted, a decision from an older term ([`RejectReason::StaleTerm`]),
//!   one carrying the current term from another instance
//!   ([`RejectReason::NotTheController`]), and one without a term while that
//!   controller is alive ([`RejectReason::NoTerm`], unless
//!   `accept_termless_decisions`).
//! - **A newer term is verified, not believed.** Anyone who can publish on
//!   the channel can write any term, so a decision whose term and source the
//!   store has not confirmed is held while the instance asks the store who
//!   holds the lease: a [`Role::Auto`] instance sends early the lease
//!   request it sends every interval anyway, a forced follower sends
//!   [`LeaseOp::Query`]; at most one such request per `controller_interval`,
//!   and only an answer to a request sent after the decision was heard
//!   counts. The decision is applied if the store names its sender under
//!   its term, and rejected
//!   ([`RejectReason::UnconfirmedTerm`]) otherwise. Nobody steps down on a
//!   heard term: only the store's answers depose a holder. A term heard on
//!   the channel never raises the floor a candidate asks the store for.
//! - A controller not heard from for `lease_ttl + controller_interval` is
//!   forgotten, so a store that lost its counter (restarted empty) cannot
//!   lock followers out: its new, lower terms are verified like any other.
//! - Terms are `1..=`[`MAX_TERM`] everywhere: in messages,
//!   in the stores' scripts, and in the answers the engine accepts.
//!
//! The engine does no I/O: it asks for lease operations with
//! [`Effect::Lease`](super::Effect::Lease) and is told the outcome with
//! [`Engine::handle_lease`].

use super::error::{Handled, Rejection};
use super::verify::Verification;
use super::{Engine, Timer, INSTANCE_ID_MAX_BYTES};
use crate::stats::RejectReason;
use crate::strategy::Role;
use crate::time::{Duration, Instant};
use crate::wire::{JsonStr, StrategyUpdate, MAX_TERM};

/// A lease operation for the driver to run against the shared store.
///
/// The lease is one key ([`Config::lease_key`](crate::Config::lease_key))
/// whose value is `"{term}:{holder}"`, with a term counter at the same key
/// plus `":term"`. Each operation must be atomic in the store (a Lua script
/// in Redis; see `aci-transports`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseOp {
    /// If nobody holds the lease: increment the term counter, raise it above
    /// `min_term` if it is not, and take the lease under that term for `ttl`
    /// (`SET key "{term}:{holder}" NX PX ttl`). If `holder` already holds it:
    /// extend it. Answer who holds it afterwards. A counter outside
    /// `0..MAX_TERM` (written by hand, or by an older version that believed
    /// forged terms) is repaired: the grant is then `min_term + 1`.
    Acquire {
        /// The highest term the store has confirmed to this instance (below
        /// [`MAX_TERM`]): the new term must exceed it.
        min_term: u64,
    },
    /// If `holder` holds the lease in `term`: extend it by `ttl`. Answer who
    /// holds it (or that nobody does).
    Renew {
        /// The term held.
        term: u64,
    },
    /// If `holder` holds the lease in `term`: delete it. The engine ignores
    /// the answer.
    Release {
        /// The term held.
        term: u64,
    },
    /// Change nothing; answer who holds the lease (or that nobody does).
    /// A forced follower asks this to verify a term it heard.
    Query,
}

/// A lease operation and what it applies to, from [`Effect::Lease`](super::Effect::Lease).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRequest<'a> {
    /// The lease's key.
    pub key: &'a str,
    /// This instance's id: the holder to write or compare.
    pub holder: &'a str,
    /// What to do.
    pub op: LeaseOp,
    /// The lease's lifetime from the store's receipt of the request.
    pub ttl: Duration,
}

/// What the store answered to a [`LeaseRequest`], for [`Engine::handle_lease`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseReply<'a> {
    /// After the operation the lease is held by `holder` in `term` (this
    /// instance or another).
    Held {
        /// The holder's term.
        term: u64,
        /// The holder's instance id.
        holder: &'a str,
    },
    /// Nobody holds the lease.
    Vacant,
    /// The operation failed or timed out: its outcome is unknown.
    Failed,
    /// The store has no leases. The instance then acts as a controller
    /// without a term, like the original (every such instance decides).
    Unsupported,
}

/// This instance's lease, while it holds one.
#[derive(Clone, Copy, Debug)]
struct Held {
    term: u64,
    /// Until when the lease is surely ours: request sent + ttl.
    until: Instant,
}

/// The controller this instance believes in.
#[derive(Clone, Debug)]
struct Leader {
    term: u64,
    id: heapless::String<INSTANCE_ID_MAX_BYTES>,
    /// When it was last confirmed (a lease reply or one of its decisions).
    seen: Instant,
}

/// The election's state, in fixed memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Election {
    held: Option<Held>,
    /// The controller the store named last (refreshed by its decisions).
    leader: Option<Leader>,
    /// The highest term the store has answered with: the floor for the next
    /// grant. Terms heard on the channel never raise it.
    highest_term: u64,
    /// The request in flight and when it was sent.
    pending: Option<(LeaseOp, Instant)>,
    /// The store answered [`LeaseReply::Unsupported`].
    pub(crate) unsupported: bool,
    /// A decision waiting for the store to confirm its term.
    pub(crate) verification: Verification,
}

impl Election {
    /// The term we hold, if any.
    pub(crate) fn held_term(&self) -> Option<u64> {
        self.held.map(|h| h.term)
    }

    /// Notes the store's word that `id` holds the lease in `term`, at `now`.
    /// False (nothing noted) for a term out of range or an id too long.
    fn confirm(&mut self, term: u64, id: &str, now: Instant) -> bool {
        let mut name = heapless::String::new();
        if !(1..=MAX_TERM).contains(&term) || name.push_str(id).is_err() {
            return false;
        }
        self.highest_term = self.highest_term.max(term);
        self.leader = Some(Leader {
            term,
            id: name,
            seen: now,
        });
        true
    }

    /// Whether the store last named `source` as the holder in `term`.
    pub(crate) fn confirmed(&self, term: u64, source: JsonStr<'_>) -> bool {
        self.leader
            .as_ref()
            .is_some_and(|l| l.term == term && source.eq_str(&l.id))
    }

    /// Whether a decision with this term and source may be applied now
    /// (`Ok(true)`), must wait for the store to confirm it (`Ok(false)`), or
    /// is rejected. `alive_for`: how long a controller is believed alive
    /// without being heard from.
    fn judge(
        &mut self,
        term: Option<u64>,
        source: Option<JsonStr<'_>>,
        now: Instant,
        alive_for: Duration,
        accept_termless: bool,
    ) -> Result<bool, RejectReason> {
        // The controller believed alive: its term, and whether it sent this.
        let alive = self
            .leader
            .as_ref()
            .filter(|l| now.saturating_duration_since(l.seen) <= alive_for)
            .map(|l| (l.term, source.is_some_and(|s| s.eq_str(&l.id))));
        let Some(term) = term else {
            return match alive {
                Some(_) if !accept_termless => Err(RejectReason::NoTerm),
                _ => Ok(true),
            };
        };
        let Some(source) = source else {
            return Err(RejectReason::NotTheController);
        };
        if self.confirmed(term, source) {
            if let Some(l) = self.leader.as_mut() {
                l.seen = now;
            }
            return Ok(true);
        }
        match alive {
            Some((current, _)) if term < current => Err(RejectReason::StaleTerm),
            Some((current, _)) if term == current => Err(RejectReason::NotTheController),
            // A newer term, or nobody alive: perhaps a new controller was
            // elected, perhaps a forgery. Only the store can tell.
            _ => Ok(false),
        }
    }
}

impl Engine {
    /// Whether this instance decides for the fleet now: forced to
    /// ([`Role::Controller`]), or elected (holding the lease), or in
    /// [`Role::Auto`] over a store without leases.
    pub fn is_controller(&self) -> bool {
        match self.role {
            Role::Controller => true,
            Role::Auto => self.election.held.is_some() || self.election.unsupported,
            _ => false,
        }
    }

    /// The term of the lease this instance holds, if it holds it.
    pub fn lease_term(&self) -> Option<u64> {
        self.election.held_term()
    }

    /// The controller this instance believes in, `(term, instance id)`, if
    /// it has heard of one.
    pub fn known_controller(&self) -> Option<(u64, &str)> {
        self.election
            .leader
            .as_ref()
            .map(|l| (l.term, l.id.as_str()))
    }

    /// Reports the store's answer to the latest [`Effect::Lease`](super::Effect::Lease)
    /// request. An answer nobody asked for is ignored. Drain effects
    /// afterwards: a won lease makes a decision at once, and a decision
    /// waiting for this answer is applied.
    pub fn handle_lease(&mut self, now: Instant, reply: LeaseReply<'_>) {
        let now = self.observe(now);
        let Some((op, sent)) = self.election.pending.take() else {
            return;
        };
        if matches!(op, LeaseOp::Release { .. }) || !self.running {
            return;
        }
        match reply {
            LeaseReply::Unsupported => {
                self.election.unsupported = true;
                self.timers.stop(Timer::Lease);
                self.arm_timers(now);
            }
            LeaseReply::Failed => self.stats.lease_failures += 1,
            LeaseReply::Vacant => {
                if self.election.held.is_some() {
                    // Our lease expired in the store: ask again at once.
                    self.step_down(now);
                    self.timers.set(Timer::Lease, now);
                }
            }
            LeaseReply::Held { term, holder } => {
                if !self.election.confirm(term, holder, now) {
                    self.stats.lease_failures += 1;
                    return;
                }
                self.stats.term = term;
                let ours = holder == self.instance_id.as_str();
                if ours && !matches!(op, LeaseOp::Query) {
                    self.hold(now, term, sent + self.config.lease_ttl());
                } else if self.election.held.is_some_and(|h| !ours || h.term != term) {
                    self.step_down(now);
                }
            }
        }
        self.settle_verification(now, sent, reply);
    }

    /// Keeps (or takes) the lease of `term` until `until`.
    fn hold(&mut self, now: Instant, term: u64, until: Instant) {
        let was_held = self.election.held_term() == Some(term);
        self.election.held = Some(Held { term, until });
        self.timers.set(Timer::LeaseExpiry, until);
        if !was_held {
            self.stats.leases_won += 1;
            self.stats.is_controller = true;
            self.timers.stop(Timer::RateReport);
            // Decide at once, on the reports gathered while following — and
            // no lower than the fleet rate the last controller announced
            // recently: its own writes are in no report (a
            // controller sends none), and a takeover must not read a busy
            // fleet as idle for an interval.
            let max_age = self.report_max_age();
            let floor = self
                .heard_rate
                .filter(|(_, at)| now.saturating_duration_since(*at) <= max_age)
                .map_or(0.0, |(rate, _)| rate);
            self.decide(now, floor);
        }
    }

    /// Gives up the controller's part: the lease was lost or not confirmed.
    pub(crate) fn step_down(&mut self, now: Instant) {
        if self.election.held.take().is_none() {
            return;
        }
        self.stats.leases_lost += 1;
        self.stats.is_controller = self.is_controller();
        self.timers.stop(Timer::LeaseExpiry);
        self.timers.stop(Timer::ControllerTick);
        if self.running {
            self.timers
                .arm_if_idle(Timer::RateReport, now + self.config.controller_interval());
        }
    }

    /// `Timer::Lease`: a candidate asks for the lease, the holder renews it.
    pub(crate) fn lease_tick(&mut self, now: Instant) {
        if !self.running || self.role != Role::Auto || self.election.unsupported {
            return;
        }
        let interval = self.config.controller_interval();
        self.timers.set(Timer::Lease, now + interval);
        let ttl = self.config.lease_ttl();
        if let Some((_, sent)) = self.election.pending {
            if now.saturating_duration_since(sent) < ttl {
                // Still waiting for the answer: a late answer to an older
                // request must not be taken for this one's.
                return;
            }
        }
        self.request_lease(now, self.next_lease_op());
    }

    /// What an [`Role::Auto`] instance asks the store next: renew the lease
    /// it holds, or acquire it above the highest term the store confirmed.
    pub(crate) fn next_lease_op(&self) -> LeaseOp {
        match self.election.held {
            Some(held) => LeaseOp::Renew { term: held.term },
            None => LeaseOp::Acquire {
                min_term: self.election.highest_term.min(MAX_TERM - 1),
            },
        }
    }

    /// A lease request sent less than a lease's lifetime ago, still
    /// unanswered: when it was sent.
    pub(crate) fn lease_request_in_flight(&self, now: Instant) -> Option<Instant> {
        self.election
            .pending
            .filter(|(_, sent)| now.saturating_duration_since(*sent) < self.config.lease_ttl())
            .map(|(_, sent)| sent)
    }

    /// `Timer::LeaseExpiry`: the lease was not confirmed in time.
    pub(crate) fn lease_expired(&mut self, now: Instant) {
        if self.election.held.is_some_and(|h| h.until <= now) {
            self.step_down(now);
            if self.running {
                // Perhaps only slow: if it is still ours, acquiring keeps it.
                self.election.pending = None;
                self.timers.set(Timer::Lease, now);
            }
        }
    }

    /// Gives the lease back (on stop, or when leaving [`Role::Auto`]).
    pub(crate) fn release_lease(&mut self, now: Instant) {
        if let Some(held) = self.election.held {
            self.step_down(now);
            self.request_lease(now, LeaseOp::Release { term: held.term });
        }
        self.election.pending = None;
    }

    pub(crate) fn request_lease(&mut self, now: Instant, op: LeaseOp) {
        if self.outbox.queue_lease(op).is_ok() {
            self.election.pending = Some((op, now));
        } else {
            self.stats.outbox_stalls += 1;
        }
    }

    /// Whether a received decision is applied now, waits for the store to
    /// confirm its term (`Handled::DecisionVerifying`), or is rejected
    /// (counted). A heard term never makes this instance step down: only
    /// the store's answers do.
    pub(crate) fn judge_decision(
        &mut self,
        now: Instant,
        update: &StrategyUpdate<'_>,
    ) -> Result<Handled, Rejection> {
        let alive_for = self.config.lease_ttl() + self.config.controller_interval();
        let accept_termless = self.config.accept_termless_decisions();
        match self
            .election
            .judge(update.term, update.source, now, alive_for, accept_termless)
        {
            Ok(true) => {
                if let Some((term, _)) = self.known_controller() {
                    self.stats.term = term;
                }
                Ok(Handled::DecisionApplied)
            }
            Ok(false) => self.hold_for_verification(now, update),
            Err(reason) => Err(self.reject(reason, None, false)),
        }
    }
}
