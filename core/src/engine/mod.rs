//! The sans-IO engine: one instance's share of adaptive invalidation.
//!
//! The engine has four kinds of method:
//!
//! - **getters** ([`Engine::strategy`], [`Engine::stats`], …) read state;
//! - **inputs** (`handle_write`, `handle_message`, `handle_timeout`,
//!   `handle_subscription_lost`) report what happened, with the time it happened;
//! - **commands** (`start`, `stop`, `set_role`, `force_strategy`,
//!   `set_unix_time`) change how it behaves;
//! - **outputs** ([`Engine::poll_effect`], [`Engine::poll_timeout`]) say what to
//!   do and when to call again.
//!
//! The rule: after any input or command, drain `poll_effect` until it returns
//! `None`, then sleep until `poll_timeout` and call `handle_timeout`. The engine
//! never reads a clock, never sleeps and never does I/O.
//!
//! An instance in the default [`Role::Auto`] first asks for the controller
//! lease ([`Effect::Lease`]; see the [election](lease) rules); this one is
//! forced to be the controller, as the original's `is_controller=True`:
//!
//! ```
//! use aci_core::{Config, Effect, Engine, Instant, Role, Strategy, Duration};
//!
//! let config = Config::builder()
//!     .high_threshold(5.0)
//!     .low_threshold(1.0)
//!     .role(Role::Controller)
//!     .build()?;
//! let mut engine = Engine::new(config, "node-a")?;
//! let mut now = Instant::ZERO;
//! engine.start(now);
//!
//! // 100 writes over one second: 20 writes/s over the 5 s window.
//! for i in 0..100u64 {
//!     now = Instant::from_millis(i * 10);
//!     engine.handle_write(now, "user:42")?;
//!     // … the driver sends the write; Redis acknowledges it:
//!     engine.handle_write_acknowledged(now);
//!     while let Some(effect) = engine.poll_effect() {
//!         // Under `ttl` a write asks for nothing.
//!         assert!(!matches!(effect, Effect::Publish(_)));
//!     }
//! }
//!
//! // The driver sleeps until the next deadline, then reports it.
//! let mut published = Vec::new();
//! while let Some(deadline) = engine.poll_timeout() {
//!     if deadline > Instant::from_secs(4) { break; }
//!     now = deadline;
//!     engine.handle_timeout(now);
//!     while let Some(effect) = engine.poll_effect() {
//!         match effect {
//!             Effect::Publish(p) => published.push((p.channel.to_owned(), p.payload.to_vec())),
//!             Effect::Switched(s) => println!("{} -> {} at {}", s.from, s.to, s.at),
//!             Effect::Invalidate(keys) => keys.iter().for_each(|k| println!("drop {k}")),
//!             Effect::InvalidateAll(why) => println!("drop everything: {why}"),
//!             _ => {}
//!         }
//!     }
//! }
//! assert_eq!(engine.strategy(), Strategy::Eager);
//! assert_eq!(published[0].0, "aci:strategy");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod effect;
mod error;
mod input;
pub mod lease;
mod output;
mod peers;
mod timers;
mod verify;

pub use effect::{
    BucketDrop, DropReason, Effect, InvalidatedKeys, InvalidatedKeysIter, MessageKind, Publish,
};
pub use error::{Handled, Rejection, WriteError};
pub use lease::{LeaseOp, LeaseReply, LeaseRequest};
pub use peers::MAX_PEERS;
pub use timers::Timer;

use crate::batch::DefaultBatchBuffer;
use crate::config::{Config, MESSAGE_BYTES_CAP};
use crate::config_error::ConfigError;
use crate::policy::{Mode, Policy};
use crate::rate::{RateTracker, DEFAULT_BUCKETS};
use crate::stats::{Stats, SwitchCause, SwitchRecord};
use crate::strategy::{Role, Strategy};
use crate::time::{Instant, MonotonicClamp};
use crate::wire::{escaped_len, invalidation_len_bound, Limits, Signer, SIGNATURE_BYTES};
use lease::Election;
use output::Outbox;
use peers::Peers;
use timers::Timers;

/// Longest instance id, in bytes.
pub const INSTANCE_ID_MAX_BYTES: usize = 64;

/// One instance's adaptive-invalidation state machine. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Engine {
    config: Config,
    policy: Policy,
    limits: Limits,
    instance_id: heapless::String<INSTANCE_ID_MAX_BYTES>,
    role: Role,
    running: bool,
    strategy: Strategy,
    /// The interval batches are flushed on: the policy's, or the one the
    /// latest decision followed carried.
    batch_interval: crate::time::Duration,
    strategy_since: Instant,
    /// When this engine last started. Every instance's window is full one
    /// `sliding_window` later, and its next report arrives within one
    /// `controller_interval`: from then on the fleet's rate is whole.
    listening_since: Instant,
    forced: Option<Strategy>,
    tracker: RateTracker<DEFAULT_BUCKETS>,
    batch: DefaultBatchBuffer,
    timers: Timers,
    clock: MonotonicClamp,
    /// `(engine instant, unix seconds)` pairing for message timestamps.
    wall: Option<(Instant, f64)>,
    outbox: Outbox,
    stats: Stats,
    lengths: Lengths,
    /// The latest write rate reported by each other instance: the
    /// controller's sum, kept warm by candidates for a takeover.
    peers: Peers,
    election: Election,
    /// The fleet rate the latest followed decision carried, and when.
    heard_rate: Option<(f64, Instant)>,
}

/// Encoded lengths fixed for the engine's life, kept off the write path.
#[derive(Clone, Copy, Debug)]
struct Lengths {
    /// An invalidation with no keys, at its longest (strategy name,
    /// timestamp, and the signature when messages are signed).
    envelope: usize,
    /// The namespace prefix, escaped, without quotes: added to every key.
    prefix_json: usize,
}

impl Engine {
    /// An engine for the instance `instance_id`, stopped, in the policy's
    /// starting mode ([`Policy::initial`]: `ttl`, the original's, unless a
    /// staleness bound rules it out). `instance_id` must be 1 to 64 bytes
    /// without control characters.
    pub fn new(config: Config, instance_id: &str) -> Result<Self, ConfigError> {
        let mut id = heapless::String::new();
        if instance_id.is_empty()
            || instance_id.chars().any(char::is_control)
            || id.push_str(instance_id).is_err()
        {
            return Err(ConfigError::InvalidName {
                field: "instance_id",
                rule: "must be 1 to 64 bytes without control characters",
            });
        }
        let signer = Signer::new(config.message_keys());
        let signature = if signer.is_some() { SIGNATURE_BYTES } else { 0 };
        let lengths = Lengths {
            envelope: invalidation_len_bound(0, &id) + signature,
            prefix_json: escaped_len(config.key_prefix()) - 2,
        };
        let policy = Policy::from_config(&config);
        let initial = policy.initial();
        Ok(Engine {
            lengths,
            policy,
            strategy: initial.strategy(),
            batch_interval: initial
                .batch_interval()
                .unwrap_or_else(|| policy.batched_interval()),
            limits: Limits::from_config(&config),
            tracker: RateTracker::new(config.sliding_window()),
            role: config.role(),
            config,
            instance_id: id,
            running: false,
            strategy_since: Instant::ZERO,
            listening_since: Instant::ZERO,
            forced: None,
            batch: DefaultBatchBuffer::new(),
            timers: Timers::default(),
            clock: MonotonicClamp::new(),
            wall: None,
            outbox: Outbox::new(signer),
            stats: Stats::default(),
            peers: Peers::default(),
            election: Election::default(),
            heard_rate: None,
        })
    }

    // ----- getters -----

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// This instance's id, as written in `source`.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }
    /// The strategy in force.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }
    /// The strategy in force with, under batched, the interval batches are
    /// flushed on (set by the policy or the latest decision followed).
    pub fn mode(&self) -> Mode {
        match self.strategy {
            Strategy::Ttl => Mode::Ttl,
            Strategy::Batched => Mode::Batched(self.batch_interval),
            Strategy::Eager => Mode::Eager,
        }
    }
    /// The interval batches are flushed on when batched: the latest
    /// decision's, else the policy's.
    pub fn batch_interval(&self) -> crate::time::Duration {
        self.batch_interval
    }
    /// The policy decisions are made by.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    /// The role configured or set (see [`Engine::is_controller`] for whether
    /// an [`Role::Auto`] instance decides now).
    pub fn role(&self) -> Role {
        self.role
    }
    /// Whether `start` was called and `stop` not since.
    pub fn is_running(&self) -> bool {
        self.running
    }
    /// The strategy pinned by `force_strategy`, if any.
    pub fn forced_strategy(&self) -> Option<Strategy> {
        self.forced
    }
    /// Counters. `write_rate` is the rate measured at the latest controller tick.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// This instance's write rate over the sliding window ending at `now`.
    pub fn write_rate(&self, now: Instant) -> f64 {
        self.tracker.rate(now.max(self.clock.latest()))
    }
    /// Keys waiting in the batch buffer.
    pub fn buffered_keys(&self) -> usize {
        self.batch.len()
    }
    /// The deadline of one timer, if armed.
    pub fn timer(&self, timer: Timer) -> Option<Instant> {
        self.timers.get(timer)
    }

    // ----- commands -----

    /// Starts deciding (controller), running for the lease (auto) and
    /// flushing (batched).
    pub fn start(&mut self, now: Instant) {
        let now = self.observe(now);
        if self.running {
            return;
        }
        self.running = true;
        self.strategy_since = now;
        self.listening_since = now;
        self.arm_timers(now);
    }

    /// Stops: flushes the batch buffer, releases the lease if held, and
    /// disarms every timer. Writes are refused until the next `start`.
    pub fn stop(&mut self, now: Instant) {
        let now = self.observe(now);
        if !self.running {
            return;
        }
        self.flush_batch(now);
        self.release_lease(now);
        self.election.verification = verify::Verification::default();
        self.running = false;
        self.timers.clear();
        if !self.batch.is_empty() {
            // The outbox was full: keep the keys and retry on the next timeout.
            self.timers
                .set(Timer::BatchFlush, now + output::STALL_RETRY);
        }
    }

    /// Changes role. A forced controller makes its first decision one
    /// `controller_interval` from now; leaving [`Role::Auto`] releases the lease.
    pub fn set_role(&mut self, now: Instant, role: Role) {
        let now = self.observe(now);
        if role != Role::Auto {
            self.release_lease(now);
        }
        self.role = role;
        if self.running {
            self.arm_timers(now);
        }
    }

    /// Pins the strategy (`Some`) or lets the policy decide again (`None`).
    /// A controller announces a pinned strategy at once.
    pub fn force_strategy(&mut self, now: Instant, strategy: Option<Strategy>) {
        let now = self.observe(now);
        self.forced = strategy;
        if let Some(to) = strategy {
            self.switch_mode(now, self.policy.mode_of(to), SwitchCause::Forced, None);
            if self.is_controller() && self.running {
                let rate = self.tracker.rate(now);
                self.publish_decision(now, rate);
            }
        }
    }

    /// Pairs engine time `now` with Unix time `unix_secs`, for the `timestamp`
    /// of messages. Without it, timestamps are engine seconds.
    pub fn set_unix_time(&mut self, now: Instant, unix_secs: f64) {
        let now = self.observe(now);
        if unix_secs.is_finite() {
            self.wall = Some((now, unix_secs));
        }
    }

    // ----- internals shared by the inputs -----

    fn observe(&mut self, now: Instant) -> Instant {
        let now = self.clock.observe(now);
        self.stats.clock_regressions = self.clock.clamped();
        self.outbox.reset_if_drained();
        now
    }

    fn arm_timers(&mut self, now: Instant) {
        let interval = self.config.controller_interval();
        if self.role == Role::Auto && !self.election.unsupported {
            // The first request for the lease goes out at once.
            self.timers.arm_if_idle(Timer::Lease, now);
        } else {
            self.timers.stop(Timer::Lease);
            self.timers.stop(Timer::LeaseExpiry);
        }
        self.stats.is_controller = self.is_controller();
        if self.is_controller() {
            self.timers
                .arm_if_idle(Timer::ControllerTick, now + interval);
            self.timers.stop(Timer::RateReport);
        } else {
            self.timers.stop(Timer::ControllerTick);
            self.timers.arm_if_idle(Timer::RateReport, now + interval);
        }
        if self.strategy == Strategy::Batched || !self.batch.is_empty() {
            self.timers
                .arm_if_idle(Timer::BatchFlush, now + self.batch_interval);
        }
    }

    /// Reports older than this are out of the fleet's sum: two and a half
    /// intervals, so one lost report does not drop a live instance. (Two
    /// were not enough: a follower's reports keep the phase of its timer,
    /// and when they land just after the controller's tick, the report
    /// before a lost one is a hair over two intervals old at the tick — a
    /// busy fleet then read as idle. Found by the simulator's adversary
    /// property under 2.6% loss.)
    pub(crate) fn report_max_age(&self) -> crate::time::Duration {
        let interval = self.config.controller_interval();
        interval.saturating_mul(2) + crate::time::Duration::from_nanos(interval.as_nanos() / 2)
    }

    fn unix_time(&self, now: Instant) -> f64 {
        match self.wall {
            Some((at, unix)) => unix + (now - at).as_secs_f64() - (at - now).as_secs_f64(),
            None => now.as_nanos() as f64 / 1e9,
        }
    }

    /// Moves to `mode`: its strategy as [`Engine::switch_to`] does, and a
    /// new batch interval at once (a pending flush is brought forward to
    /// it, never pushed back).
    pub(crate) fn switch_mode(
        &mut self,
        now: Instant,
        mode: Mode,
        cause: SwitchCause,
        write_rate: Option<f64>,
    ) {
        if let Some(interval) = mode.batch_interval() {
            self.batch_interval = interval;
            let due = now + interval;
            if self.strategy == Strategy::Batched
                && self.timers.get(Timer::BatchFlush).is_some_and(|t| t > due)
            {
                self.timers.set(Timer::BatchFlush, due);
            }
        }
        self.switch_to(now, mode.strategy(), cause, write_rate);
    }

    /// Moves to `to`: flushes a batch left behind, re-arms timers, records the
    /// switch, and drops the near cache when tightening from `ttl`.
    fn switch_to(
        &mut self,
        now: Instant,
        to: Strategy,
        cause: SwitchCause,
        write_rate: Option<f64>,
    ) {
        let from = self.strategy;
        if from == to {
            return;
        }
        self.strategy = to;
        self.strategy_since = now;
        if from == Strategy::Batched {
            self.flush_batch(now);
        }
        if to == Strategy::Batched && self.running {
            self.timers
                .set(Timer::BatchFlush, now + self.batch_interval);
        } else if self.batch.is_empty() {
            self.timers.stop(Timer::BatchFlush);
        }
        if from == Strategy::Ttl {
            self.drop_all(DropReason::Tightened);
        }
        let record = SwitchRecord {
            at: now,
            from,
            to,
            write_rate,
            cause,
        };
        self.stats.record_switch(record);
        self.outbox.queue_switch(record, &mut self.stats);
    }

    fn drop_all(&mut self, reason: DropReason) {
        self.stats.full_drops += 1;
        self.outbox.queue_drop_all(reason);
    }
}

const _: () = assert!(output::OUTBOX_BYTES > MESSAGE_BYTES_CAP);
