//! Verifying a heard term with the store before following it.
//!
//! Whoever can publish on the strategy channel can write any term and any
//! source, so a decision is followed at once only when the store has named
//! its sender as the holder of its term. Any other decision whose term is
//! not older than the controller believed in is held here (one slot: the
//! latest replaces the one before, which is then counted as unconfirmed)
//! while the instance asks the store who holds the lease:
//!
//! - a [`Role::Auto`] instance sends, early, the lease request it sends every
//!   interval anyway (renew if it holds the lease, acquire otherwise);
//! - a forced follower sends [`LeaseOp::Query`], which changes nothing.
//!
//! At most one such request goes out per `controller_interval` (a flood of
//! forged terms costs the store one request per instance per interval), and
//! a `(term, source)` the store has already refuted is rejected without
//! asking again. Only an answer to a request sent *after* the decision was
//! heard settles it: an earlier answer may predate the election that made
//! the decision. The store naming the sender under that term applies the
//! decision; any other answer rejects it as [`RejectReason::UnconfirmedTerm`].

use super::error::{Handled, Rejection};
use super::lease::{LeaseOp, LeaseReply};
use super::{Engine, Timer, INSTANCE_ID_MAX_BYTES};
use crate::stats::RejectReason;
use crate::strategy::{Role, Strategy};
use crate::time::Instant;
use crate::wire::{JsonStr, StrategyUpdate};

type Id = heapless::String<INSTANCE_ID_MAX_BYTES>;

/// A decision whose term the store has not confirmed yet.
#[derive(Clone, Debug)]
struct Waiting {
    term: u64,
    source: Id,
    strategy: Strategy,
    write_rate: Option<f64>,
    batch_interval: Option<crate::time::Duration>,
    /// When it was heard: only a store answer to a later request settles it.
    heard: Instant,
}

/// The verification state, in fixed memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Verification {
    waiting: Option<Waiting>,
    /// When the latest verification request was sent.
    last_asked: Option<Instant>,
    /// The latest `(term, source)` the store refuted.
    refuted: Option<(u64, Id)>,
}

fn to_id(source: JsonStr<'_>) -> Option<Id> {
    let mut id = Id::new();
    for c in source.chars() {
        id.push(c).ok()?;
    }
    Some(id)
}

impl Engine {
    /// Holds a decision with an unconfirmed term and asks the store about it.
    pub(crate) fn hold_for_verification(
        &mut self,
        now: Instant,
        update: &StrategyUpdate<'_>,
    ) -> Result<Handled, Rejection> {
        let (Some(term), Some(id)) = (update.term, update.source.and_then(to_id)) else {
            return Err(self.reject(RejectReason::NotTheController, None, false));
        };
        let refuted = self.election.verification.refuted.as_ref();
        if self.election.unsupported || refuted.is_some_and(|(t, s)| *t == term && *s == id) {
            return Err(self.reject(RejectReason::UnconfirmedTerm, None, false));
        }
        let displaced = match &mut self.election.verification.waiting {
            // The same decision again (a rebroadcast): keep when it was first
            // heard, so the question already asked still settles it.
            Some(w) if w.term == term && w.source == id => {
                w.strategy = update.strategy;
                w.write_rate = update.write_rate;
                w.batch_interval = update.batch_interval;
                false
            }
            slot => slot
                .replace(Waiting {
                    term,
                    source: id,
                    strategy: update.strategy,
                    write_rate: update.write_rate,
                    batch_interval: update.batch_interval,
                    heard: now,
                })
                .is_some(),
        };
        if displaced {
            self.reject(RejectReason::UnconfirmedTerm, None, false);
        }
        self.ask_store(now);
        Ok(Handled::DecisionVerifying)
    }

    /// Asks the store who holds the lease for the waiting decision: now, or
    /// when the once-per-interval limit allows (`Timer::Verify`).
    fn ask_store(&mut self, now: Instant) {
        if self.election.verification.waiting.is_none() {
            self.timers.stop(Timer::Verify);
            return;
        }
        if !self.running || self.lease_request_in_flight(now).is_some() {
            // Its answer comes first; `settle_verification` asks again if it
            // was sent before the decision was heard.
            return;
        }
        let interval = self.config.controller_interval();
        if let Some(last) = self.election.verification.last_asked {
            if now < last + interval {
                self.timers.set(Timer::Verify, last + interval);
                return;
            }
        }
        let op = match self.role {
            Role::Auto if !self.election.unsupported => {
                // The interval's own request, sent early.
                self.timers.set(Timer::Lease, now + interval);
                self.next_lease_op()
            }
            Role::Follower => LeaseOp::Query,
            _ => return,
        };
        self.election.verification.last_asked = Some(now);
        self.timers.stop(Timer::Verify);
        self.stats.verifications += 1;
        self.request_lease(now, op);
    }

    /// `Timer::Verify`: the rate limit allows asking again.
    pub(crate) fn verify_tick(&mut self, now: Instant) {
        self.ask_store(now);
    }

    /// The store answered a lease request sent at `sent`: apply the waiting
    /// decision if it named the sender under that term, else reject it.
    pub(crate) fn settle_verification(
        &mut self,
        now: Instant,
        sent: Instant,
        reply: LeaseReply<'_>,
    ) {
        let Some(heard) = self.election.verification.waiting.as_ref().map(|w| w.heard) else {
            return;
        };
        if sent < heard || matches!(reply, LeaseReply::Failed) {
            // Too old to tell, or no answer: ask (again) when allowed.
            self.ask_store(now);
            return;
        }
        let Some(waiting) = self.election.verification.waiting.take() else {
            return;
        };
        self.timers.stop(Timer::Verify);
        let source = JsonStr::new(&waiting.source, false);
        if !matches!(reply, LeaseReply::Unsupported)
            && self.election.confirmed(waiting.term, source)
        {
            self.stats.term = waiting.term;
            self.follow_decision(
                now,
                waiting.strategy,
                waiting.write_rate,
                waiting.batch_interval,
            );
        } else {
            self.reject(RejectReason::UnconfirmedTerm, None, false);
            self.election.verification.refuted = Some((waiting.term, waiting.source));
        }
    }
}
