//! One instance's logic above the engine: the near cache, single-flight,
//! read-your-writes, dropping the near cache when the subscription is lost.
//!
//! Like the engine, an [`Instance`] does no I/O and reads no clock: every
//! call takes `now`, says what to send (an [`Outbound`]) or what to read (a
//! [`Fill`]), and the driver — the blocking
//! [`AdaptiveCache`](crate::AdaptiveCache), the async cache, or the simulator
//! with its virtual clock — does it and reports back. Every driver runs this
//! same code.
//!
//! **Internals.** Public for the `aci-sim` simulator and for people writing
//! a driver of their own; nothing here is needed to use a cache, and it may
//! change in any release before 1.0.

mod backoff;
mod counter;
mod dispatch;
mod flight;
#[cfg(all(test, aci_shuttle))]
mod shuttle_tests;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

// Single-flight's shared state: Shuttle's `Arc` under the model check.
use crate::sync::Arc as FlightArc;
use std::time::Duration;

use aci_core::engine::MessageKind;
use aci_core::{
    Effect, Engine, Handled, Instant, LeaseOp, LeaseReply, Mode, Strategy, SwitchRecord,
};
use aci_transports::{LeaseState, Outgoing, TransportError};
use bytes::Bytes;

use crate::error::{Done, Error, Result};
use crate::near::{FillToken, NearCache};
use crate::settings::Settings;
use crate::stats::Stats;
use counter::Counter;
use flight::{Flight, Flights, Outcome, Settled};

pub use dispatch::Dispatch;

/// A callback told of every strategy switch: `(from, to)`.
pub type SwitchCallback = Arc<dyn Fn(Strategy, Strategy) + Send + Sync>;

/// A write this instance is making: the messages to send with the `SET`, and
/// the token [`Instance::finish_write`] needs once Redis answers.
#[derive(Debug)]
#[must_use = "send the write, then commit or abort it"]
pub struct PreparedWrite {
    /// Messages to send in the same round trip as the `SET`.
    pub outbound: Outbound,
    token: FillToken,
    /// When the value expires in Redis, at the latest.
    expires_by: Option<Instant>,
}

/// Writes of many keys sent together, prepared by
/// [`Instance::prepare_write_many`]: the messages to send with them and one
/// token per key for [`Instance::finish_write_many`].
#[derive(Debug)]
#[must_use = "report how the write went with Instance::finish_write_many"]
pub struct PreparedWrites {
    /// Messages to send in the same round trip as the `SET`s.
    pub outbound: Outbound,
    tokens: Vec<FillToken>,
    expires_by: Option<Instant>,
}

/// Messages to publish, in order, with the operation that produced them,
/// and the lease operation to run after publishing them, if any.
#[derive(Debug, Default)]
#[must_use = "messages the engine asked to publish"]
pub struct Outbound {
    messages: Vec<(String, Vec<u8>, MessageKind)>,
    lease: Option<LeaseCall>,
}

/// A lease operation to run against the transport, then report with
/// [`Instance::handle_lease`] (a release needs no report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseCall {
    /// The lease's key.
    pub key: String,
    /// This instance's id.
    pub holder: String,
    /// What to do.
    pub op: LeaseOp,
    /// The lease's lifetime.
    pub ttl: Duration,
}

impl Outbound {
    /// Whether there is nothing to send or run.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.lease.is_none()
    }
    /// Whether there are messages to publish.
    pub fn has_messages(&self) -> bool {
        !self.messages.is_empty()
    }
    /// Takes the lease operation to run, if any.
    pub fn take_lease(&mut self) -> Option<LeaseCall> {
        self.lease.take()
    }
    /// Each message with what it is (an invalidation and its key count, a
    /// decision, a rate report), for a driver or simulator that counts them.
    pub fn kinds(&self) -> impl Iterator<Item = (Outgoing<'_>, MessageKind)> + '_ {
        self.messages
            .iter()
            .map(|(channel, payload, kind)| (Outgoing { channel, payload }, *kind))
    }
    /// The messages, borrowed for a transport call.
    pub fn as_outgoing(&self) -> Vec<Outgoing<'_>> {
        self.messages
            .iter()
            .map(|(channel, payload, _)| Outgoing { channel, payload })
            .collect()
    }
}

/// What a read should do next.
pub enum Lookup {
    /// The near cache had it.
    Hit(Bytes),
    /// Read it from Redis, then [`Instance::finish_fill`].
    Fill(Fill),
    /// Another caller is reading it: wait for its [`Wait::outcome`].
    Wait(Wait),
}

/// A read this caller leads. Dropped unfinished (a cancelled task, a
/// caller gone), it tells its followers to look the key up again.
pub struct Fill {
    /// The Redis key: the prefix, then the user's key (the near cache's key).
    stored: String,
    /// Where the user's key starts in `stored`.
    key_start: usize,
    flight: FlightArc<Flight>,
    flights: Option<FlightArc<Flights>>,
    /// When the read began: a time left reported by Redis counts from here.
    started: Instant,
}

impl Fill {
    /// The Redis key to read.
    pub fn stored_key(&self) -> &str {
        &self.stored
    }

    fn key(&self) -> &str {
        self.stored.get(self.key_start..).unwrap_or_default()
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        if let Some(flights) = self.flights.take() {
            flights.finish(self.key(), &self.flight, Settled::Abandoned);
        }
    }
}

/// A read led by another caller.
pub struct Wait {
    flight: FlightArc<Flight>,
}

/// `None` when the leader abandoned its read: the caller looks up again.
fn outcome_of(settled: Settled) -> Option<Result<Option<Bytes>>> {
    match settled {
        Settled::Read(outcome) => Some(outcome.map_err(Error::SharedRead)),
        Settled::Abandoned => None,
    }
}

impl Wait {
    /// What the leader's read came to, once it has: `Some(Some(result))`,
    /// or `Some(None)` when the leader gave its read up (its caller was
    /// cancelled or gone: look the key up again, and perhaps lead the next
    /// read). `None` while it is still reading.
    ///
    /// Waiting is the driver's: make a [`Wait::listen`]er, ask again (a
    /// read finished in between is not missed), then wait on the listener
    /// for as long as the driver's clock allows — it is both a blocking
    /// [`event_listener::Listener`] and a `Future`.
    pub fn outcome(&self) -> Option<Option<Result<Option<Bytes>>>> {
        self.flight.settled().map(outcome_of)
    }

    /// A notification for when the leader's read settles; see
    /// [`Wait::outcome`].
    pub fn listen(&self) -> event_listener::EventListener {
        self.flight.listen()
    }
}

#[derive(Default)]
struct Counters {
    hits: Counter,
    misses: Counter,
    read_errors: Counter,
    subscription_losses: Counter,
    /// Messages the transport acknowledged publishing, by kind.
    invalidations_sent: Counter,
    decisions_sent: Counter,
}

/// One instance: the engine, the near cache and the reads in flight.
pub struct Instance {
    settings: Settings,
    /// Boxed: the engine's fixed-capacity buffers make it ~100 KB, and an
    /// `Instance` is built, moved and held by value by every driver (an
    /// inline engine once made the simulator probe a 212 KB stack frame on
    /// every event).
    engine: Mutex<Box<Engine>>,
    near: NearCache,
    flights: FlightArc<Flights>,
    strategy: AtomicU8,
    /// The batch interval in force, in nanoseconds.
    batch_interval: AtomicU64,
    /// The engine's next deadline in nanoseconds (`NO_DEADLINE`: none) and
    /// its role, copied out whenever the engine's lock is released, so that
    /// drivers can ask after every call without taking the lock again.
    deadline: AtomicU64,
    controller: AtomicBool,
    subscribed: AtomicBool,
    /// When to try subscribing again after a loss or a failed attempt.
    backoff: Mutex<backoff::Backoff>,
    /// Boxed too: striped over padded slots, the counters take 8 KB.
    counters: Box<Counters>,
    callbacks: Mutex<Vec<SwitchCallback>>,
}

impl Instance {
    /// An instance with these settings, stopped, its near cache disabled
    /// until [`Instance::subscribed`] is called.
    pub fn new(settings: Settings) -> Result<Self> {
        let engine = Engine::new(settings.core.clone(), &settings.instance_id)?;
        let controller = engine.is_controller();
        let strategy = engine.strategy() as u8;
        let batch_interval = engine.batch_interval().as_nanos();
        Ok(Instance {
            near: NearCache::new(
                settings.near_max_entries,
                settings.near_max_bytes,
                settings.near_max_value_bytes,
                settings.core.local_ttl(),
            )
            .with_naming(settings.core.naming()),
            engine: Mutex::new(Box::new(engine)),
            flights: FlightArc::new(Flights::default()),
            strategy: AtomicU8::new(strategy),
            batch_interval: AtomicU64::new(batch_interval),
            deadline: AtomicU64::new(NO_DEADLINE),
            controller: AtomicBool::new(controller),
            subscribed: AtomicBool::new(false),
            backoff: Mutex::new(backoff::Backoff::default()),
            counters: Box::default(),
            callbacks: Mutex::default(),
            settings,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The strategy in force (no lock taken).
    pub fn strategy(&self) -> Strategy {
        match self.strategy.load(Ordering::Relaxed) {
            2 => Strategy::Eager,
            1 => Strategy::Batched,
            _ => Strategy::Ttl,
        }
    }

    /// The strategy in force and, under batched, the interval batches are
    /// flushed on (no lock taken).
    pub fn mode(&self) -> Mode {
        match self.strategy() {
            Strategy::Ttl => Mode::Ttl,
            Strategy::Eager => Mode::Eager,
            Strategy::Batched => Mode::Batched(aci_core::Duration::from_nanos(
                self.batch_interval.load(Ordering::Relaxed),
            )),
        }
    }

    /// Registers a callback for strategy switches. It runs on the thread that
    /// caused the switch, after the engine's lock is released.
    pub fn on_switch(&self, callback: SwitchCallback) {
        lock(&self.callbacks).push(callback);
    }

    // ----- reads -----

    /// The near cache's value for `key`, counted as a hit; `None` (nothing
    /// counted) when it has none: then [`Instance::lookup`] starts the read.
    /// A driver's `get` calls this first, so that the hit path is a few
    /// instructions with nothing of the read's machinery around them.
    #[inline(always)]
    pub fn hit(&self, key: &str, now: Instant) -> Option<Bytes> {
        let value = self.near.get(key, now)?;
        self.counters.hits.increment();
        Some(value)
    }

    /// Whether a read of `key` now would be a near-cache hit, without
    /// counting one, making the entry hotter or starting a read: for a
    /// driver's tests, and for the simulator's check that a lost channel
    /// dropped what it covers and nothing else.
    ///
    /// ```
    /// use aci_cache::instance::{Instance, Lookup};
    /// use aci_cache::{aci_core::naming::Naming, aci_core::Instant, Builder};
    ///
    /// let settings = Builder::new().naming(Naming::Sharded { buckets: 4 }).settings()?;
    /// let instance = Instance::new(settings)?;
    /// instance.subscribed();
    /// let now = Instant::ZERO;
    /// for key in ["a", "b", "c", "d", "e", "f"] {
    ///     if let Lookup::Fill(fill) = instance.lookup(key, now) {
    ///         instance.finish_fill(fill, Ok(Some(key.into())), now)?;
    ///     }
    /// }
    /// assert!(instance.is_cached("a", now));
    ///
    /// // The channel of a's bucket moved: a's bucket goes, the others stay.
    /// let core = instance.settings().core();
    /// let bucket = core.bucket_of("a");
    /// instance.channel_lost(&core.invalidation_channel_of(bucket));
    /// for key in ["a", "b", "c", "d", "e", "f"] {
    ///     assert_eq!(instance.is_cached(key, now), core.bucket_of(key) != bucket);
    /// }
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn is_cached(&self, key: &str, now: Instant) -> bool {
        self.near.peek(key, now)
    }

    /// Starts a read of `key` (the user's key; the near cache is keyed by it,
    /// so a hit builds no Redis key).
    #[inline]
    pub fn lookup(&self, key: &str, now: Instant) -> Lookup {
        if let Some(value) = self.near.get(key, now) {
            self.counters.hits.increment();
            return Lookup::Hit(value);
        }
        self.counters.misses.increment();
        let near = &self.near;
        match self
            .flights
            .join(key, || near.begin_fill(key), |token| near.is_current(token))
        {
            flight::Role::Lead(flight) => Lookup::Fill(Fill {
                stored: self.settings.stored_key(key),
                key_start: self.settings.core.key_prefix().len(),
                flight,
                flights: Some(FlightArc::clone(&self.flights)),
                started: now,
            }),
            flight::Role::Follow(flight) => Lookup::Wait(Wait { flight }),
        }
    }

    /// Reports what the read of a [`Fill`] returned; caches it if nothing
    /// condemned it meanwhile, and hands it to the waiters. The value's time
    /// left in Redis is unknown: it is kept `local_ttl` (see
    /// [`Instance::finish_fill_with_ttl`]).
    pub fn finish_fill(
        &self,
        fill: Fill,
        read: Result<Option<Bytes>, TransportError>,
        now: Instant,
    ) -> Result<Option<Bytes>> {
        let read = read.map(|value| value.map(|v| (v, None)));
        self.finish_fill_with_ttl(fill, read, now)
    }

    /// [`Instance::finish_fill`] for a read that also returned the value's
    /// time left in Redis (`Transport::get_with_ttl`): the near cache keeps
    /// it no longer than that, counted from when the read was sent.
    pub fn finish_fill_with_ttl(
        &self,
        mut fill: Fill,
        read: Result<Option<(Bytes, Option<Duration>)>, TransportError>,
        now: Instant,
    ) -> Result<Option<Bytes>> {
        let expires_by = match &read {
            Ok(Some((_, Some(left)))) => Some(fill.started + aci_core::Duration::from(*left)),
            _ => None,
        };
        let outcome: Outcome = read.map(|value| value.map(|(v, _)| v)).map_err(Arc::new);
        if let Ok(Some(value)) = &outcome {
            self.near.finish_fill(
                fill.flight.token,
                fill.key(),
                value.clone(),
                now,
                expires_by,
            );
        }
        if let Some(flights) = fill.flights.take() {
            flights.finish(fill.key(), &fill.flight, Settled::Read(outcome.clone()));
        }
        outcome.map_err(|e| match Arc::try_unwrap(e) {
            Ok(e) => Error::Transport(e),
            Err(shared) => Error::SharedRead(shared),
        })
    }

    /// Settles a read's result by the `miss_on_error` policy: a failure is
    /// counted, then returned, or answered as a miss when the user opted in.
    pub fn settle_read(&self, key: &str, read: Result<Option<Bytes>>) -> Result<Option<Bytes>> {
        let Err(e) = read else { return read };
        self.counters.read_errors.increment();
        if self.settings.miss_on_error {
            tracing::warn!(key, error = %e, "read failed; answering a miss (miss_on_error)");
            Ok(None)
        } else {
            Err(e)
        }
    }

    // ----- writes -----

    /// Before writing `key` (the user's key): tells the engine, and returns
    /// the messages to send in the same round trip as the `SET`. `ttl`: the
    /// value's TTL in Redis, if it has one: the near cache keeps the value
    /// no longer than that, counted from now (Redis starts counting later).
    pub fn prepare_write(
        &self,
        key: &str,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<PreparedWrite> {
        let outbound =
            self.with_engine(|engine| engine.handle_write(now, key).map_err(Error::from))?;
        Ok(PreparedWrite {
            outbound,
            token: self.near.begin_write(key),
            expires_by: ttl.map(|ttl| now + aci_core::Duration::from(ttl)),
        })
    }

    /// Reports how the `SET` of a prepared write went. Acknowledged: cache
    /// `value` (read your writes) unless a competing write or invalidation of
    /// the key happened meanwhile, in which case the key is dropped instead.
    /// Failed or timed out (it may or may not have happened): forget the key
    /// locally, and return the error.
    pub fn finish_write(
        &self,
        write: PreparedWrite,
        key: &str,
        value: &[u8],
        sent: Result<(), TransportError>,
        now: Instant,
    ) -> Result<()> {
        match sent {
            Ok(()) => {
                self.near.finish_write(
                    write.token,
                    key,
                    Bytes::copy_from_slice(value),
                    now,
                    write.expires_by,
                );
                self.record_published(&write.outbound);
                let _ = self.with_engine(|engine| {
                    engine.handle_write_acknowledged(now);
                    Ok(())
                });
                Ok(())
            }
            Err(TransportError::Unpublished(cause)) => {
                // The SET landed: our value is the latest (read your
                // writes) and the write counts; its messages were not sent.
                self.near.finish_write(
                    write.token,
                    key,
                    Bytes::copy_from_slice(value),
                    now,
                    write.expires_by,
                );
                let _ = self.with_engine(|engine| {
                    engine.handle_write_acknowledged(now);
                    Ok(())
                });
                Err(Error::Unannounced {
                    done: Done::Stored {
                        key: key.to_owned(),
                    },
                    source: *cause,
                })
            }
            Err(e) => {
                // Not counted as a write, in the rate, or as sent.
                self.near.invalidate(key);
                Err(e.into())
            }
        }
    }

    /// Before writing many keys at once (`set_many`): the messages to send
    /// with them — one invalidation naming them all in eager, the batch in
    /// batched, nothing in ttl. A key too long refuses the whole call.
    pub fn prepare_write_many(
        &self,
        keys: &[&str],
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<PreparedWrites> {
        let outbound =
            self.announce_many(keys, |engine, rest| engine.handle_write_many(now, rest))?;
        Ok(PreparedWrites {
            outbound,
            tokens: keys.iter().map(|key| self.near.begin_write(key)).collect(),
            expires_by: ttl.map(|ttl| now + aci_core::Duration::from(ttl)),
        })
    }

    /// Reports how the `SET`s of [`Instance::prepare_write_many`] went, as
    /// [`Instance::finish_write`] does for one: acknowledged, each value is
    /// cached (read your writes) and counts as a write; stored but not
    /// announced, the same, and [`Error::Unannounced`]; failed, every key is
    /// dropped locally.
    pub fn finish_write_many(
        &self,
        writes: PreparedWrites,
        entries: &[(&str, &[u8])],
        sent: Result<(), TransportError>,
        now: Instant,
    ) -> Result<()> {
        let stored = match &sent {
            Ok(()) | Err(TransportError::Unpublished(_)) => true,
            Err(_) => false,
        };
        for (token, (key, value)) in writes.tokens.into_iter().zip(entries) {
            if stored {
                let value = Bytes::copy_from_slice(value);
                self.near
                    .finish_write(token, key, value, now, writes.expires_by);
            } else {
                self.near.invalidate(key);
            }
        }
        if stored {
            let _ = self.with_engine(|engine| {
                for _ in entries {
                    engine.handle_write_acknowledged(now);
                }
                Ok(())
            });
        }
        match sent {
            Ok(()) => {
                self.record_published(&writes.outbound);
                Ok(())
            }
            Err(TransportError::Unpublished(source)) => Err(Error::Unannounced {
                done: Done::StoredMany {
                    keys: entries.iter().map(|(k, _)| (*k).to_owned()).collect(),
                },
                source: *source,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Reports how the `SET … NX` of a prepared write went (a loaded value,
    /// stored only where nothing is): written, as [`Instance::finish_write`];
    /// not written (another value was there), the key is dropped locally and
    /// nothing counts as a write. Whether it was written.
    pub fn finish_write_if_absent(
        &self,
        write: PreparedWrite,
        key: &str,
        value: &[u8],
        sent: Result<bool, TransportError>,
        now: Instant,
    ) -> Result<bool> {
        match sent {
            Ok(true) => self
                .finish_write(write, key, value, Ok(()), now)
                .map(|()| true),
            Ok(false) => {
                self.near.invalidate(key);
                Ok(false)
            }
            Err(e) => self
                .finish_write(write, key, value, Err(e), now)
                .map(|()| true),
        }
    }

    /// Before deleting `key`: the invalidation to send with the `DEL`.
    pub fn prepare_delete(&self, key: &str, now: Instant) -> Result<Outbound> {
        self.with_engine(|engine| engine.handle_delete(now, key).map_err(Error::from))
    }

    /// Reports how the `DEL` (sent with `outbound`'s invalidation) went:
    /// either way the key leaves the near cache (a failed delete may still
    /// have happened). Whether it existed.
    pub fn finish_delete(
        &self,
        key: &str,
        outbound: &Outbound,
        sent: Result<bool, TransportError>,
    ) -> Result<bool> {
        self.near.invalidate(key);
        let existed = sent.map_err(|e| {
            Error::unless_done(e, || Done::Deleted {
                key: key.to_owned(),
            })
        })?;
        self.record_published(outbound);
        Ok(existed)
    }

    /// Before deleting many keys at once (user keys; a namespaced `flush`):
    /// the invalidations naming them, to send with the deletion, whatever
    /// the strategy.
    pub fn prepare_delete_many(&self, keys: &[&str], now: Instant) -> Result<Outbound> {
        self.announce_many(keys, |engine, rest| engine.handle_delete_many(now, rest))
    }

    /// Feeds `keys` to an engine input that takes as many as one message
    /// holds (`step` answers how many), draining its messages between
    /// rounds, until every key is taken.
    fn announce_many(
        &self,
        keys: &[&str],
        mut step: impl FnMut(&mut Engine, &[&str]) -> Result<usize, aci_core::WriteError>,
    ) -> Result<Outbound> {
        let mut out = Outbound::default();
        let mut rest = keys;
        // Bounded: every round takes at least one key.
        while !rest.is_empty() {
            let mut taken = 0;
            let more = self.with_engine(|engine| {
                taken = step(engine, rest)?;
                Ok(())
            })?;
            out.messages.extend(more.messages);
            if taken == 0 {
                return Err(Error::Engine(aci_core::WriteError::Backpressure));
            }
            rest = rest.get(taken..).unwrap_or_default();
        }
        Ok(out)
    }

    /// Reports how the deletion of `keys` (sent with `outbound`) went:
    /// either way they leave the near cache. How many existed. `flushing`:
    /// the deletion is a `flush` batch (what an unannounced success names).
    pub fn finish_delete_many(
        &self,
        keys: &[&str],
        outbound: &Outbound,
        sent: Result<u64, TransportError>,
        flushing: bool,
    ) -> Result<u64> {
        for key in keys {
            self.near.invalidate(key);
        }
        let removed = sent.map_err(|e| {
            Error::unless_done(e, || {
                if flushing {
                    Done::Flushed
                } else {
                    Done::DeletedMany {
                        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
                    }
                }
            })
        })?;
        self.record_published(outbound);
        Ok(removed)
    }

    /// Counts the messages of `outbound` as sent: the driver calls this once
    /// the transport acknowledged publishing them (a write's own messages
    /// are counted by [`Instance::finish_write`]).
    pub fn record_published(&self, outbound: &Outbound) {
        for (_, _, kind) in &outbound.messages {
            match kind {
                MessageKind::Invalidation { .. } => self.counters.invalidations_sent.increment(),
                MessageKind::StrategyUpdate => self.counters.decisions_sent.increment(),
                _ => {}
            }
        }
    }

    /// After `FLUSHDB`: nothing cached can be right.
    pub fn commit_flush(&self) {
        self.near.clear();
    }

    // ----- the background side -----

    /// A message arrived on a subscribed channel.
    pub fn handle_message(&self, channel: &str, payload: &[u8], now: Instant) -> Outbound {
        self.handle_with(channel, payload, |engine| {
            engine.handle_message(now, channel, payload)
        })
    }

    /// [`Instance::handle_message`] with the payload already decoded
    /// ([`Engine::handle_decoded`]): for a driver that decodes each payload
    /// once and hands it to many instances, as the simulator does.
    pub fn handle_decoded(
        &self,
        channel: &str,
        payload: &[u8],
        decoded: Result<aci_core::wire::Message<'_>, aci_core::wire::DecodeError>,
        now: Instant,
    ) -> Outbound {
        self.handle_with(channel, payload, |engine| {
            engine.handle_decoded(now, channel, payload, decoded)
        })
    }

    fn handle_with(
        &self,
        channel: &str,
        payload: &[u8],
        handle: impl FnOnce(&mut Engine) -> std::result::Result<Handled, aci_core::Rejection>,
    ) -> Outbound {
        self.with_engine(|engine| {
            match handle(engine) {
                Ok(Handled::Invalidation { foreign, .. }) if foreign > 0 => {
                    tracing::warn!(
                        channel,
                        foreign,
                        "invalidation named keys outside our namespace; ignored them"
                    );
                }
                Ok(_) => {}
                Err(rejection) => tracing::warn!(channel, len = payload.len(), "{rejection}"),
            }
            Ok(())
        })
        .unwrap_or_default()
    }

    /// Reports how the lease operation of a [`LeaseCall`] went; the
    /// messages (a new controller's first decision) and any further lease
    /// operation it led to.
    pub fn handle_lease(
        &self,
        answer: Result<LeaseState, TransportError>,
        now: Instant,
    ) -> Outbound {
        self.with_engine(|engine| {
            let was_controller = engine.is_controller();
            match &answer {
                Ok(LeaseState::Held { term, holder }) => engine.handle_lease(
                    now,
                    LeaseReply::Held {
                        term: *term,
                        holder,
                    },
                ),
                Ok(LeaseState::Vacant) => engine.handle_lease(now, LeaseReply::Vacant),
                Err(TransportError::Unsupported(what)) => {
                    tracing::warn!(
                        what,
                        "the transport has no leases: this instance decides for the fleet \
                         without an election, as the original does"
                    );
                    engine.handle_lease(now, LeaseReply::Unsupported);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "controller lease operation failed");
                    engine.handle_lease(now, LeaseReply::Failed);
                }
            }
            match (was_controller, engine.is_controller()) {
                (false, true) => {
                    tracing::info!(term = engine.lease_term(), "became the fleet's controller")
                }
                (true, false) => tracing::info!("stepped down as the fleet's controller"),
                _ => {}
            }
            Ok(())
        })
        .unwrap_or_default()
    }

    /// Whether this instance decides for the fleet now.
    pub fn is_controller(&self) -> bool {
        self.controller.load(Ordering::Acquire)
    }

    /// Runs the engine's due timers; the messages they produced.
    pub fn handle_timeout(&self, now: Instant) -> Outbound {
        self.with_engine(|engine| {
            engine.handle_timeout(now);
            Ok(())
        })
        .unwrap_or_default()
    }

    /// When [`Instance::handle_timeout`] should run next.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.deadline.load(Ordering::Acquire) {
            NO_DEADLINE => None,
            nanos => Some(Instant::from_nanos(nanos)),
        }
    }

    /// The subscription is confirmed: start using the near cache.
    pub fn subscribed(&self) {
        lock(&self.backoff).reset();
        self.near.hear(None);
        self.near.set_enabled(true);
        self.subscribed.store(true, Ordering::SeqCst);
    }

    /// The subscription was lost: invalidations may be missed from now on, so
    /// drop the near cache and stop using it until [`Instance::subscribed`].
    /// Only the loss of a subscription that was up counts (in
    /// `subscription_losses` and `full_drops`): failed attempts to
    /// resubscribe drop nothing more.
    ///
    /// Returns when to try subscribing again: at once after a loss, then
    /// after 50 ms, doubling up to 500 ms while attempts keep failing. Every
    /// driver (and the simulator) retries on this one schedule.
    pub fn subscription_lost(&self, now: Instant) -> Instant {
        let retry_at = lock(&self.backoff).failed(now);
        let was_up = self.subscribed.swap(false, Ordering::SeqCst);
        self.near.set_enabled(false);
        if was_up {
            self.counters.subscription_losses.increment();
            let _ = self.with_engine(|engine| {
                engine.handle_subscription_lost(now);
                Ok(())
            });
        }
        retry_at
    }

    /// One channel of the subscription was lost (its slot moved: the
    /// transport's [`TransportError::ChannelLost`]),
    /// the others still heard: from now until
    /// [`Instance::channel_restored`], nothing that channel covers is
    /// cached. A bucket's invalidation channel covers that bucket's keys
    /// (their entries go, reads in flight are condemned); any other channel
    /// (decisions, or the only invalidation channel) covers everything.
    /// Counts in `subscription_losses`. Then subscribe again to every
    /// channel, let the old subscription go, and call
    /// [`Instance::channel_restored`]; if subscribing fails, call
    /// [`Instance::subscription_lost`] instead.
    pub fn channel_lost(&self, channel: &str) {
        self.counters.subscription_losses.increment();
        let core = &self.settings.core;
        match core.bucket_of_channel(channel) {
            Some(bucket) if core.naming().buckets() > 1 => self.near.deafen(bucket),
            _ => self.near.set_enabled(false),
        }
    }

    /// The channel [`Instance::channel_lost`] named is heard again (a new
    /// subscription to every channel is up): what it covers is dropped once
    /// more — messages sent while it was down were missed — and cached
    /// again from now on.
    pub fn channel_restored(&self, channel: &str, now: Instant) {
        let _ = self.with_engine(|engine| {
            engine.handle_channel_lost(now, channel);
            Ok(())
        });
        let core = &self.settings.core;
        match core.bucket_of_channel(channel) {
            Some(bucket) if core.naming().buckets() > 1 => self.near.hear(Some(bucket)),
            _ => self.near.set_enabled(true),
        }
    }

    /// Whether the subscription is up.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::SeqCst)
    }

    /// Starts the engine (timers, writes accepted); `unix_secs` is the wall
    /// clock at `now`, for message timestamps.
    pub fn start(&self, now: Instant, unix_secs: f64) {
        let mut engine = lock(&self.engine);
        engine.set_unix_time(now, unix_secs);
        engine.start(now);
        self.copy_out(&engine);
    }

    /// Stops the engine: the final batch flush to publish.
    pub fn stop(&self, now: Instant) -> Outbound {
        self.with_engine(|engine| {
            engine.stop(now);
            Ok(())
        })
        .unwrap_or_default()
    }

    /// Pins the strategy (`Some`) or lets the controller decide (`None`).
    pub fn force_strategy(&self, strategy: Option<Strategy>, now: Instant) -> Outbound {
        self.with_engine(|engine| {
            engine.force_strategy(now, strategy);
            Ok(())
        })
        .unwrap_or_default()
    }

    /// Reports how publishing the decision of [`Instance::force_strategy`]
    /// went. The pin holds either way (it is this instance's own setting);
    /// a failed announcement says so, and the controller's next rebroadcast
    /// carries the decision.
    pub fn finish_force(
        &self,
        strategy: Option<Strategy>,
        outbound: &Outbound,
        sent: Result<(), TransportError>,
    ) -> Result<()> {
        match (sent, strategy) {
            (Ok(()), _) => {
                self.record_published(outbound);
                Ok(())
            }
            (Err(source), Some(strategy)) => Err(Error::Unannounced {
                done: Done::Pinned { strategy },
                source,
            }),
            (Err(source), None) => Err(source.into()),
        }
    }

    /// A snapshot of every counter.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let engine = lock(&self.engine);
        let core = engine.stats();
        Stats {
            total_reads: c.hits.get() + c.misses.get(),
            cache_hits: c.hits.get(),
            cache_misses: c.misses.get(),
            read_errors: c.read_errors.get(),
            total_writes: core.total_writes,
            current_strategy: engine.strategy(),
            write_rate: core.write_rate,
            own_write_rate: core.own_write_rate,
            reporting_instances: core.reporting_instances,
            is_controller: engine.is_controller(),
            term: core.term,
            leases_won: core.leases_won,
            leases_lost: core.leases_lost,
            verifications: core.verifications,
            strategy_switches: core.switches.iter().copied().collect(),
            total_switches: core.total_switches,
            invalidations_sent: c.invalidations_sent.get(),
            decisions_sent: c.decisions_sent.get(),
            messages_received: core.messages_received,
            rejected: core.rejected,
            full_drops: core.full_drops,
            subscription_losses: c.subscription_losses.get(),
            subscribed: self.is_subscribed(),
            near_cache_entries: self.near.len(),
            near_cache_oversized: self.near.oversized(),
            near_cache_bytes: self.near.weight(),
        }
    }

    /// Reads in flight (for tests and diagnostics).
    pub fn reads_in_flight(&self) -> usize {
        self.flights.len()
    }

    /// Runs `op` on the engine, applies every effect it produced, and returns
    /// the messages to publish. Switch callbacks run after the lock is released.
    fn with_engine(&self, op: impl FnOnce(&mut Engine) -> Result<()>) -> Result<Outbound> {
        let mut out = Outbound::default();
        let mut switches: Vec<SwitchRecord> = Vec::new();
        {
            let mut engine = lock(&self.engine);
            let result = op(&mut engine);
            while let Some(effect) = engine.poll_effect() {
                self.apply(effect, &mut out, &mut switches);
            }
            self.copy_out(&engine);
            result?;
        }
        if !switches.is_empty() {
            let callbacks: Vec<SwitchCallback> = lock(&self.callbacks).clone();
            for s in switches {
                tracing::info!(from = %s.from, to = %s.to, rate = s.write_rate, cause = ?s.cause, "strategy switched");
                for callback in &callbacks {
                    callback(s.from, s.to);
                }
            }
        }
        Ok(out)
    }

    /// Copies what drivers ask after every call out of the locked engine.
    fn copy_out(&self, engine: &Engine) {
        self.strategy
            .store(engine.strategy() as u8, Ordering::Relaxed);
        self.batch_interval
            .store(engine.batch_interval().as_nanos(), Ordering::Relaxed);
        let deadline = engine
            .poll_timeout()
            .map_or(NO_DEADLINE, |at| at.as_nanos().min(NO_DEADLINE - 1));
        self.deadline.store(deadline, Ordering::Release);
        self.controller
            .store(engine.is_controller(), Ordering::Release);
    }

    fn apply(&self, effect: Effect<'_>, out: &mut Outbound, switches: &mut Vec<SwitchRecord>) {
        match effect {
            Effect::Publish(p) => {
                out.messages
                    .push((p.channel.to_owned(), p.payload.to_vec(), p.kind))
            }
            Effect::Switched(record) => switches.push(record),
            Effect::Invalidate(keys) => {
                // The engine passes only keys of our namespace, which all carry the prefix.
                let prefix = self.settings.core.key_prefix();
                for stored in keys.iter() {
                    if let Some(key) = stored.strip_prefix(prefix) {
                        self.near.invalidate(key);
                    }
                }
            }
            Effect::InvalidateAll(reason) => {
                tracing::debug!(%reason, "dropping the near cache");
                self.near.clear();
            }
            Effect::InvalidateBucket(drop) => {
                tracing::debug!(reason = %drop.reason, bucket = drop.bucket, "dropping one bucket of the near cache");
                let core = &self.settings.core;
                self.near
                    .clear_where(|key| core.bucket_of(key) == drop.bucket);
            }
            Effect::Lease(request) => {
                out.lease = Some(LeaseCall {
                    key: request.key.to_owned(),
                    holder: request.holder.to_owned(),
                    op: request.op,
                    ttl: request.ttl.into(),
                });
            }
            other => tracing::debug!(?other, "unhandled engine effect"),
        }
    }
}

/// `Instance::deadline` when the engine has no timer armed.
const NO_DEADLINE: u64 = u64::MAX;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent; recover from poisoning.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
