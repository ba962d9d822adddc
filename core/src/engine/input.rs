//! The engine's inputs: a write, a received message, a timeout, a lost subscription.

use super::effect::DropReason;
use super::error::{Handled, Rejection, WriteError};
use super::output::STALL_RETRY;
use super::{Engine, Timer};
use crate::batch::{Full, Probe};
use crate::policy::{FleetLoad, Mode};
use crate::stats::{RejectReason, SwitchCause};
use crate::strategy::{Role, Strategy};
use crate::time::{Duration, Instant};
use crate::wire::{
    decode, escaped_len, DecodeError, Invalidation, Limits, Message, RateReport, SignatureError,
    StrategyUpdate, MAX_ESCAPE_PER_BYTE,
};

impl Engine {
    /// This instance is writing `key` (the user's key; the engine adds the
    /// namespace prefix) at `now`. Drain effects afterwards: under `eager`
    /// there is an invalidation to send in the same round trip as the write.
    /// Once the store acknowledges the write, report it with
    /// [`Engine::handle_write_acknowledged`]: only acknowledged writes count
    /// in `total_writes` and in the write rate. (A write that failed may
    /// still leave its key in the batch buffer: it may have landed, and an
    /// extra invalidation is harmless.)
    ///
    /// Refused, with nothing counted, when stopped, when the key cannot fit in
    /// a message, or when undrained effects fill the outbox.
    pub fn handle_write(&mut self, now: Instant, key: &str) -> Result<(), WriteError> {
        let now = self.observe(now);
        if !self.running {
            return Err(WriteError::Stopped);
        }
        if !self.key_fits(key) {
            return Err(WriteError::KeyTooLong { len: key.len() });
        }
        match self.strategy {
            Strategy::Ttl => {}
            Strategy::Eager => self
                .publish_single(now, key, Strategy::Eager)
                .map_err(|_| WriteError::Backpressure)?,
            Strategy::Batched => self.buffer_key(now, key)?,
        }
        Ok(())
    }

    /// Announces writes of many keys sent together (`set_many`): in eager
    /// one invalidation names them all (more when they exceed the message
    /// limits), in batched they join the batch, in ttl nothing is sent. How
    /// many of `keys` were taken: drain the effects and call again with the
    /// rest, as for [`Engine::handle_delete_many`]. A key too long for a
    /// message refuses the whole call before anything is announced. Each
    /// write counts once acknowledged ([`Engine::handle_write_acknowledged`]).
    pub fn handle_write_many(&mut self, now: Instant, keys: &[&str]) -> Result<usize, WriteError> {
        let now = self.observe(now);
        if !self.running {
            return Err(WriteError::Stopped);
        }
        if let Some(key) = keys.iter().find(|k| !self.key_fits(k)) {
            return Err(WriteError::KeyTooLong { len: key.len() });
        }
        if self.strategy == Strategy::Ttl {
            return Ok(keys.len());
        }
        let early = self.stats.early_flushes;
        let mut taken = 0;
        for key in keys {
            self.buffer_key(now, key)?;
            taken += 1;
            if self.stats.early_flushes != early {
                break; // one full message queued: drain before the next
            }
        }
        if self.strategy == Strategy::Eager {
            self.flush_batch(now);
        }
        Ok(taken)
    }

    /// The store acknowledged a write announced with [`Engine::handle_write`]:
    /// it counts in `total_writes` and in the write rate the policy decides on.
    pub fn handle_write_acknowledged(&mut self, now: Instant) {
        let now = self.observe(now);
        self.tracker.record(now);
        self.stats.total_writes += 1;
    }

    /// This instance deleted `key` (the user's key) at `now`. Whatever the
    /// strategy, a deletion is announced at once, as the original does, naming
    /// the current strategy: the value is gone, so no near cache may keep it.
    /// Drain effects afterwards and send the invalidation with the `DEL`.
    pub fn handle_delete(&mut self, now: Instant, key: &str) -> Result<(), WriteError> {
        let now = self.observe(now);
        if !self.running {
            return Err(WriteError::Stopped);
        }
        if !self.key_fits(key) {
            return Err(WriteError::KeyTooLong { len: key.len() });
        }
        self.publish_single(now, key, self.strategy)
            .map_err(|_| WriteError::Backpressure)
    }

    /// This instance is deleting many keys at once (a namespaced `flush`):
    /// whatever the strategy, invalidations naming them are queued now, as
    /// few messages as the limits allow. Returns how many of `keys` were
    /// taken: the engine stops after one full message, so that the outbox
    /// never overflows; drain effects, send them with the deletion of the
    /// keys taken, and call again with the rest. Keys too long to be named
    /// are taken without being named (no instance can have cached them
    /// under a write of ours).
    pub fn handle_delete_many(&mut self, now: Instant, keys: &[&str]) -> Result<usize, WriteError> {
        let now = self.observe(now);
        if !self.running {
            return Err(WriteError::Stopped);
        }
        let early = self.stats.early_flushes;
        let mut taken = 0;
        for key in keys {
            if self.key_fits(key) {
                self.buffer_key(now, key)?;
            }
            taken += 1;
            if self.stats.early_flushes != early {
                break; // one full message queued: drain before the next
            }
        }
        self.flush_batch(now);
        Ok(taken)
    }

    /// Puts `key` in the batch buffer, flushing first when it would overflow
    /// the buffer or the message limits.
    fn buffer_key(&mut self, now: Instant, key: &str) -> Result<(), WriteError> {
        let Probe::Vacant(slot) = self.batch.probe(key) else {
            return Ok(());
        };
        if self.batch_would_overflow(key) {
            self.flush_early(now)?;
            // The flush emptied the buffer: `slot` is stale.
            return self.buffer_key_after_flush(now, key);
        }
        match self.batch.insert(slot, key) {
            Ok(()) => Ok(()),
            Err(Full) => {
                self.flush_early(now)?;
                self.buffer_key_after_flush(now, key)
            }
        }
    }

    fn buffer_key_after_flush(&mut self, now: Instant, key: &str) -> Result<(), WriteError> {
        match self.batch.push(key) {
            Ok(_) => Ok(()),
            // Longer than the whole buffer: it travels alone, now.
            Err(Full) => self
                .publish_single(now, key, Strategy::Batched)
                .map_err(|_| WriteError::Backpressure),
        }
    }

    /// Whether adding `key` would break `max_message_keys` or `max_message_bytes`.
    fn batch_would_overflow(&self, key: &str) -> bool {
        let n = self.batch.len() + 1;
        if n > self.config.max_message_keys() {
            return true;
        }
        let keys_json =
            |key_json: usize| self.batch.json_len() + 2 + key_json + n * self.lengths.prefix_json;
        // Cheap worst case first; count the escapes only near the limit.
        let worst = keys_json(2 + key.len() * MAX_ESCAPE_PER_BYTE);
        let limit = self.config.max_message_bytes();
        self.lengths.envelope + worst > limit
            && self.lengths.envelope + keys_json(escaped_len(key)) > limit
    }

    fn flush_early(&mut self, now: Instant) -> Result<(), WriteError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.flush_batch(now);
        if !self.batch.is_empty() {
            return Err(WriteError::Backpressure);
        }
        self.stats.early_flushes += 1;
        Ok(())
    }

    /// A payload arrived on `channel`. Returns what was done with it, or why it
    /// was rejected (already counted in [`Engine::stats`]); either way, drain effects.
    pub fn handle_message(
        &mut self,
        now: Instant,
        channel: &str,
        payload: &[u8],
    ) -> Result<Handled, Rejection> {
        let now = self.observe(now);
        self.handle_parts(now, channel, payload, |limits| decode(payload, limits))
    }

    /// [`Engine::handle_message`] with the payload already decoded:
    /// `decoded` must be `wire::decode(payload, Limits::from_config(config))`
    /// for this engine's configuration (checked in debug builds). For a
    /// driver that hands one message to many engines (the simulator decodes
    /// each published payload once for the whole fleet); the signature is
    /// still checked here, on `payload`, before anything is applied.
    pub fn handle_decoded(
        &mut self,
        now: Instant,
        channel: &str,
        payload: &[u8],
        decoded: Result<Message<'_>, DecodeError>,
    ) -> Result<Handled, Rejection> {
        debug_assert_eq!(decoded, decode(payload, self.limits));
        let now = self.observe(now);
        self.handle_parts(now, channel, payload, |_| decoded)
    }

    /// Checks the channel and the signature, then decodes (once the
    /// signature is good) and applies.
    fn handle_parts<'p>(
        &mut self,
        now: Instant,
        channel: &str,
        payload: &'p [u8],
        decode: impl FnOnce(Limits) -> Result<Message<'p>, DecodeError>,
    ) -> Result<Handled, Rejection> {
        let on_invalidation = self.config.bucket_of_channel(channel).is_some();
        if !on_invalidation && channel != self.config.strategy_channel() {
            return Err(self.reject(RejectReason::WrongChannel, None, false));
        }
        // Our own messages come back from Redis: recognised on the raw bytes,
        // before the signature and the decode that would cost more than the
        // write that sent them. A forgery that claims to be us is dropped
        // here too, which is what it deserves.
        if crate::wire::names_source(payload, &self.instance_id) {
            self.stats.own_messages_ignored += 1;
            return Ok(Handled::OwnMessage);
        }
        if let Some(signer) = self.outbox.signer() {
            if let Err(e) = signer.verify(payload) {
                // Not dropping anything: an unsigned message proves nothing,
                // and must not let its sender empty our near cache.
                let reason = match e {
                    SignatureError::Missing => RejectReason::Unsigned,
                    SignatureError::Invalid => RejectReason::BadSignature,
                };
                return Err(self.reject(reason, None, false));
            }
        }
        let message = match decode(self.limits) {
            Ok(message) => message,
            Err(error) => {
                // An invalidation we cannot read whole may have named keys we
                // hold: forget everything rather than serve them stale.
                let unreadable = on_invalidation
                    && matches!(
                        error,
                        DecodeError::TooLarge { .. } | DecodeError::TooManyKeys { .. }
                    );
                return Err(self.reject(error.into(), Some(error), unreadable));
            }
        };
        if message
            .source()
            .is_some_and(|s| s.eq_str(&self.instance_id))
        {
            self.stats.own_messages_ignored += 1;
            return Ok(Handled::OwnMessage);
        }
        match (message, on_invalidation) {
            (Message::Invalidate(inv), true) => Ok(self.apply_invalidation(inv)),
            (Message::StrategyUpdate(update), false) => self.apply_decision(now, update),
            (Message::RateReport(report), false) => Ok(self.apply_report(now, report)),
            _ => Err(self.reject(RejectReason::WrongChannel, None, false)),
        }
    }

    fn apply_report(&mut self, now: Instant, report: RateReport<'_>) -> Handled {
        self.stats.messages_received += 1;
        if self.role == Role::Follower {
            return Handled::RateReport { recorded: false };
        }
        // Recorded by candidates too: one that takes over decides at once,
        // on the whole fleet's rate.
        let max_age = self.report_max_age();
        let recorded = self
            .peers
            .record(report.source, report.write_rate, now, max_age)
            .is_ok();
        if !recorded {
            self.stats.reports_dropped += 1;
        }
        Handled::RateReport { recorded }
    }

    pub(crate) fn reject(
        &mut self,
        reason: RejectReason,
        error: Option<DecodeError>,
        drop_all: bool,
    ) -> Rejection {
        self.stats.rejected.bump(reason);
        if drop_all {
            self.drop_all(DropReason::UnreadableInvalidation);
        }
        Rejection {
            reason,
            error,
            dropped_all: drop_all,
        }
    }

    fn apply_invalidation(&mut self, inv: Invalidation<'_>) -> Handled {
        self.stats.messages_received += 1;
        let start = self.outbox.begin_keys();
        let (mut keys, mut foreign) = (0, 0);
        for key in inv.keys {
            if !key.starts_with(self.config.key_prefix()) {
                foreign += 1;
                self.stats.rejected.bump(RejectReason::ForeignKey);
                continue;
            }
            if self.outbox.push_key(key).is_err() {
                self.outbox.abandon_keys(start);
                self.drop_all(DropReason::Overflow);
                return Handled::Invalidation {
                    keys: inv.keys.len() - foreign,
                    foreign,
                };
            }
            keys += 1;
        }
        if self.outbox.finish_keys(start, keys).is_err() {
            self.drop_all(DropReason::Overflow);
        }
        Handled::Invalidation { keys, foreign }
    }

    fn apply_decision(
        &mut self,
        now: Instant,
        update: StrategyUpdate<'_>,
    ) -> Result<Handled, Rejection> {
        self.stats.messages_received += 1;
        if self.role == Role::Controller {
            return Ok(Handled::DecisionIgnored);
        }
        match self.judge_decision(now, &update)? {
            Handled::DecisionApplied => Ok(self.follow_decision(
                now,
                update.strategy,
                update.write_rate,
                update.batch_interval,
            )),
            waiting => Ok(waiting),
        }
    }

    /// Follows an accepted decision, unless this instance decides itself or
    /// its strategy is pinned. Batched runs at the interval the decision
    /// carries, or at this instance's policy's when it carries none (the
    /// original's and the threshold table's decisions).
    pub(crate) fn follow_decision(
        &mut self,
        now: Instant,
        strategy: Strategy,
        write_rate: Option<f64>,
        batch_interval: Option<Duration>,
    ) -> Handled {
        if self.is_controller() || self.forced.is_some() {
            return Handled::DecisionIgnored;
        }
        if let Some(rate) = write_rate.filter(|r| r.is_finite()) {
            self.stats.write_rate = rate;
            self.heard_rate = Some((rate, now));
        }
        let mode = match (strategy, batch_interval) {
            (Strategy::Batched, Some(interval)) => Mode::Batched(interval),
            _ => self.policy.mode_of(strategy),
        };
        self.switch_mode(now, mode, SwitchCause::Received, write_rate);
        Handled::DecisionApplied
    }

    /// Reports that `now` has reached a deadline from [`Engine::poll_timeout`].
    /// Early or repeated calls do nothing harmful.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.observe(now);
        // Bounded: each timer is taken at most once per call.
        for _ in 0..Timer::COUNT {
            match self.timers.take_expired(now) {
                Some(Timer::LeaseExpiry) => self.lease_expired(now),
                Some(Timer::Lease) => self.lease_tick(now),
                Some(Timer::Verify) => self.verify_tick(now),
                Some(Timer::ControllerTick) => self.controller_tick(now),
                Some(Timer::BatchFlush) => self.batch_tick(now),
                Some(Timer::RateReport) => self.report_tick(now),
                None => break,
            }
        }
    }

    fn batch_tick(&mut self, now: Instant) {
        self.flush_batch(now);
        let stalled = self.timers.get(Timer::BatchFlush).is_some();
        if !stalled && self.running && self.strategy == Strategy::Batched {
            self.timers
                .set(Timer::BatchFlush, now + self.batch_interval);
        } else if !stalled && !self.batch.is_empty() {
            self.timers.set(Timer::BatchFlush, now + STALL_RETRY);
        }
    }

    fn report_tick(&mut self, now: Instant) {
        if !self.running || self.is_controller() {
            return;
        }
        self.timers
            .set(Timer::RateReport, now + self.config.controller_interval());
        let own = self.tracker.rate(now);
        self.stats.own_write_rate = own;
        self.publish_report(now, own);
    }

    pub(crate) fn controller_tick(&mut self, now: Instant) {
        self.decide(now, 0.0);
    }

    /// A controller's decision on the fleet's rate — ours plus the live
    /// reports of the others — or on `floor` if that is higher.
    pub(crate) fn decide(&mut self, now: Instant, floor: f64) {
        let own = self.tracker.rate(now);
        let max_age = self.report_max_age();
        let (others, reporting, writing) = self.peers.sum(now, max_age);
        let rate = (own + others).max(floor);
        self.stats.own_write_rate = own;
        self.stats.write_rate = rate;
        self.stats.reporting_instances = reporting as u64;
        if !self.running || !self.is_controller() {
            return;
        }
        self.timers.set(
            Timer::ControllerTick,
            now + self.config.controller_interval(),
        );
        let in_current = now - self.strategy_since;
        let load = FleetLoad {
            write_rate: rate,
            writers: writing + usize::from(own > 0.0),
            instances: reporting + 1,
            complete: now.saturating_duration_since(self.listening_since)
                >= self.config.sliding_window() + self.config.controller_interval(),
        };
        let current = self.mode();
        let decision = match self.forced {
            Some(pinned) => self.policy.mode_of(pinned),
            None => self.policy.decide(&load, current, in_current),
        };
        let changed = decision != current;
        if changed {
            self.switch_mode(now, decision, SwitchCause::Decided, Some(rate));
        }
        if changed || self.config.rebroadcast() {
            self.publish_decision(now, rate);
        }
    }

    /// The subscription to the channels was lost (or re-established after a
    /// loss): invalidations may have been missed, so the near cache must go.
    pub fn handle_subscription_lost(&mut self, now: Instant) {
        let _ = self.observe(now);
        self.drop_all(DropReason::SubscriptionLost);
    }

    /// One channel's subscription was lost (a sharded subscriber's shard
    /// moved or failed) while the others hold. A bucket's invalidation
    /// channel drops only that bucket's entries
    /// ([`Effect::InvalidateBucket`](crate::Effect::InvalidateBucket));
    /// any other channel, or the only invalidation channel, drops the
    /// whole near cache as [`Engine::handle_subscription_lost`] does (a
    /// missed decision may have tightened the strategy).
    ///
    /// ```
    /// use aci_core::{naming::Naming, Config, Effect, Engine, Instant};
    ///
    /// let config = Config::builder().namespace("ns").naming(Naming::Sharded { buckets: 4 }).build()?;
    /// let lost = config.invalidation_channel_of(2);
    /// let mut engine = Engine::new(config, "a1")?;
    /// engine.handle_channel_lost(Instant::ZERO, &lost);
    /// let mut drops = Vec::new();
    /// while let Some(effect) = engine.poll_effect() {
    ///     if let Effect::InvalidateBucket(drop) = effect {
    ///         drops.push((drop.bucket, drop.buckets));
    ///     }
    /// }
    /// assert_eq!(drops, [(2, 4)]);
    /// # Ok::<(), aci_core::ConfigError>(())
    /// ```
    pub fn handle_channel_lost(&mut self, now: Instant, channel: &str) {
        let _ = self.observe(now);
        match self.config.bucket_of_channel(channel) {
            Some(bucket) if self.config.naming().buckets() > 1 => {
                self.outbox
                    .queue_drop_bucket(bucket, DropReason::SubscriptionLost);
            }
            _ => self.drop_all(DropReason::SubscriptionLost),
        }
    }
}
