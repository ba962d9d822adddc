//! Which mode the fleet runs in: pure functions of what the controller knows
//! (the fleet's write rate, how many instances write, how many listen), the
//! mode in force and how long it has held.
//!
//! Three policies exist side by side, chosen with
//! [`ConfigBuilder::objective`](crate::ConfigBuilder::objective):
//!
//! - [`Objective::Thresholds`] (the default): the original's table — eager
//!   above `high_threshold` writes/s, ttl below `low_threshold`, batched
//!   between — with hysteresis and dwell ([`thresholds`]).
//! - [`Objective::Bounded`]: the cheapest mode that guarantees no read on
//!   another instance is staler than `max_staleness` ([`bounded`]).
//! - [`Objective::Budget`]: the freshest mode whose predicted fleet-wide
//!   traffic fits `messages_per_second` ([`budget`]).
//!
//! The objective policies price a mode with the [`Traffic`] model and may set
//! the batch interval: their decisions carry it, and followers flush on it.
//!
//! ```
//! use aci_core::policy::{FleetLoad, Mode, Objective, Policy};
//! use aci_core::{Config, Duration};
//!
//! // No read older than 1 s; near-cache entries live 10 s, so ttl cannot promise it.
//! let config = Config::builder()
//!     .objective(Objective::Bounded { max_staleness: Duration::from_secs(1) })
//!     .build()?;
//! let policy = Policy::from_config(&config);
//! // Five instances writing 200 writes/s in all: one message per instance per
//! // 900 ms is far cheaper than one per write.
//! let busy = FleetLoad { write_rate: 200.0, writers: 5, instances: 5, complete: true };
//! let mode = policy.decide(&busy, Mode::Eager, Duration::MAX);
//! assert_eq!(mode, Mode::Batched(Duration::from_millis(900)));
//! assert!(policy.staleness_bound(mode) <= Duration::from_secs(1));
//! # Ok::<(), aci_core::ConfigError>(())
//! ```

pub mod bounded;
pub mod budget;
pub mod thresholds;
mod traffic;

pub use traffic::Traffic;

use crate::config_error::MIN_BATCH_INTERVAL;
use crate::strategy::Strategy;
use crate::time::Duration;

/// What the user asks the strategy policy for.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Objective {
    /// The original's threshold table on the fleet's write rate (the
    /// default: it is what aci-cache is documented to do).
    #[default]
    Thresholds,
    /// The cheapest mode that guarantees no read on another instance is
    /// staler than `max_staleness`, counting `delivery_margin` for the
    /// message's trip: ttl when `local_ttl` fits; otherwise eager, or batched
    /// at `max_staleness − delivery_margin`, whichever is predicted to cost
    /// fewer messages.
    Bounded {
        /// The staleness promised, from a write's acknowledgement to the
        /// moment no other instance serves the old value.
        max_staleness: Duration,
    },
    /// The freshest mode whose predicted fleet-wide traffic (invalidations,
    /// decisions and rate reports) fits the budget: eager while the write
    /// rate fits, then batched at the shortest interval that fits, then ttl.
    Budget {
        /// Pub/Sub messages per second the whole fleet may publish.
        messages_per_second: f64,
    },
}

/// A strategy, with the interval batches are flushed on when batched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Near-cache entries expire after `local_ttl`; no invalidations.
    Ttl,
    /// Written keys are sent in one message per interval per instance.
    Batched(Duration),
    /// One invalidation per write.
    Eager,
}

impl Mode {
    /// The strategy of this mode.
    pub fn strategy(self) -> Strategy {
        match self {
            Mode::Ttl => Strategy::Ttl,
            Mode::Batched(_) => Strategy::Batched,
            Mode::Eager => Strategy::Eager,
        }
    }
    /// The batch interval, under batched.
    pub fn batch_interval(self) -> Option<Duration> {
        match self {
            Mode::Batched(interval) => Some(interval),
            _ => None,
        }
    }
}

/// What the controller knows of the fleet when it decides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FleetLoad {
    /// Writes per second across the fleet (the controller's own and the
    /// reported ones).
    pub write_rate: f64,
    /// Instances whose write rate is above zero.
    pub writers: usize,
    /// Instances in the fleet: the controller and those that report.
    pub instances: usize,
    /// Whether the rate is the whole fleet's: the controller has listened
    /// for a `sliding_window` (each instance's window filled) and a
    /// `controller_interval` (each sent a report of it). Until then the objective
    /// policies keep the mode in force (unless it breaks a bound): a fleet
    /// read from half its reports looks quieter than it is. The table
    /// ignores it, as the original does.
    pub complete: bool,
}

/// The rule a controller decides by, with everything it reads from the
/// configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Writes/s above which the table chooses eager.
    pub high_threshold: f64,
    /// Writes/s below which the table chooses ttl.
    pub low_threshold: f64,
    /// Fractional damping in `[0, 1)`: the band around each threshold, and
    /// for the objective policies the margin a move must win by.
    pub hysteresis: f64,
    /// Least age of the current mode before it may change.
    pub min_dwell: Duration,
    /// What is optimised.
    pub objective: Objective,
    /// Lifetime of a near-cache entry: the staleness bound of ttl.
    pub local_ttl: Duration,
    /// The configured batch interval: the one the table's batched uses.
    pub batch_interval: Duration,
    /// Time allowed for an invalidation to reach every subscriber.
    pub delivery_margin: Duration,
    /// How messages are priced.
    pub traffic: Traffic,
}

impl Policy {
    /// The policy of a validated configuration.
    pub fn from_config(config: &crate::Config) -> Self {
        Policy {
            high_threshold: config.high_threshold(),
            low_threshold: config.low_threshold(),
            hysteresis: config.hysteresis(),
            min_dwell: config.min_dwell(),
            objective: config.objective(),
            local_ttl: config.local_ttl(),
            batch_interval: config.batch_interval(),
            delivery_margin: config.delivery_margin(),
            traffic: Traffic::from_config(config),
        }
    }

    /// The mode to run next, given the fleet's `load`, the `current` mode and
    /// how long it has been in force.
    pub fn decide(&self, load: &FleetLoad, current: Mode, in_current: Duration) -> Mode {
        match self.objective {
            Objective::Thresholds => {
                let strategy = self.thresholds(load.write_rate, current.strategy(), in_current);
                self.mode_of(strategy)
            }
            Objective::Bounded { max_staleness } => {
                bounded::decide(self, max_staleness, load, current, in_current)
            }
            Objective::Budget {
                messages_per_second,
            } => budget::decide(self, messages_per_second, load, current, in_current),
        }
    }

    /// The mode an instance starts in, before it hears any decision: ttl
    /// (the original's) under the table; under a bound `local_ttl` cannot
    /// keep, the batched mode the bound allows (or eager); under a budget,
    /// batched at the configured `batch_interval`.
    pub fn initial(&self) -> Mode {
        match self.objective {
            Objective::Bounded { max_staleness } => bounded::fallback(self, max_staleness),
            // Until the fleet is heard, one message per instance per
            // configured interval: a cost capped by the fleet's size whatever
            // the write rate, and staleness capped at the interval, not at
            // local_ttl.
            Objective::Budget { .. } => Mode::Batched(self.batch_interval),
            Objective::Thresholds => Mode::Ttl,
        }
    }

    /// The mode of `strategy` with this policy's batch interval: the one a
    /// pinned strategy, or a decision that names no interval, runs at.
    pub fn mode_of(&self, strategy: Strategy) -> Mode {
        match strategy {
            Strategy::Ttl => Mode::Ttl,
            Strategy::Eager => Mode::Eager,
            Strategy::Batched => Mode::Batched(self.batched_interval()),
        }
    }

    /// The batch interval of this policy's batched mode when no decision
    /// names one: `max_staleness − delivery_margin` under a bound (if at
    /// least the 10 ms floor), the configured `batch_interval` otherwise.
    pub fn batched_interval(&self) -> Duration {
        match self.objective {
            Objective::Bounded { max_staleness } => {
                bounded::interval(self, max_staleness).unwrap_or(MIN_BATCH_INTERVAL)
            }
            _ => self.batch_interval,
        }
    }

    /// Whether decisions carry their batch interval on the wire: only the
    /// objective policies set one (the table's decisions stay as the
    /// original sends them).
    pub fn carries_interval(&self) -> bool {
        !matches!(self.objective, Objective::Thresholds)
    }

    /// How long after a write another instance may still serve the old
    /// value in `mode`, if messages arrive within `delivery_margin`.
    pub fn staleness_bound(&self, mode: Mode) -> Duration {
        match mode {
            Mode::Ttl => self.local_ttl,
            Mode::Batched(interval) => interval + self.delivery_margin,
            Mode::Eager => self.delivery_margin,
        }
    }

    /// Messages per second the fleet is predicted to publish in `mode` under
    /// `load` (see [`Traffic`]).
    pub fn predicted_messages(&self, mode: Mode, load: &FleetLoad) -> f64 {
        self.traffic.predicted(mode, load)
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from_config(&crate::Config::default())
    }
}
