//! One struct for a whole run.

use aci_core::{Duration, Mode, Objective, Strategy};

use crate::faults::Faults;
use crate::workload::Workload;

/// How the fleet chooses its strategy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    /// The controller decides with the original's threshold table (the
    /// library's default).
    Adaptive,
    /// The controller keeps reads on other instances within this staleness
    /// at the least predicted cost ([`Objective::Bounded`]).
    Bounded(Duration),
    /// The controller runs the freshest mode whose predicted traffic fits
    /// this many messages per second ([`Objective::Budget`]).
    Budget(f64),
    /// One strategy, pinned on every instance (the baselines of `compare`).
    Fixed(Strategy),
}

impl Policy {
    /// The objective the instances are configured with.
    pub fn objective(self) -> Objective {
        match self {
            Policy::Bounded(max_staleness) => Objective::Bounded { max_staleness },
            Policy::Budget(messages_per_second) => Objective::Budget {
                messages_per_second,
            },
            Policy::Adaptive | Policy::Fixed(_) => Objective::Thresholds,
        }
    }

    /// Whether a controller chooses (rather than a pin).
    pub fn decides(self) -> bool {
        !matches!(self, Policy::Fixed(_))
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policy::Adaptive => f.write_str("adaptive (table)"),
            Policy::Bounded(bound) => write!(f, "bounded {bound}"),
            Policy::Budget(budget) => write!(f, "budget {budget} msg/s"),
            Policy::Fixed(s) => write!(f, "always-{s}"),
        }
    }
}

/// The cache parameters every simulated instance gets (the builder's names).
#[derive(Clone, Debug, PartialEq)]
pub struct CacheParams {
    /// Writes/s above which the fleet goes eager.
    pub high_threshold: f64,
    /// Writes/s below which it goes to ttl.
    pub low_threshold: f64,
    /// TTL of values in Redis.
    pub default_ttl: Duration,
    /// Lifetime of near-cache entries.
    pub local_ttl: Duration,
    /// Time between batched invalidations.
    pub batch_interval: Duration,
    /// Time between controller decisions.
    pub controller_interval: Duration,
    /// Window of the write rate.
    pub sliding_window: Duration,
    /// Hysteresis fraction.
    pub hysteresis: f64,
    /// Near-cache capacity in entries.
    pub near_cache_max_entries: usize,
}

impl Default for CacheParams {
    /// The original's defaults.
    fn default() -> Self {
        CacheParams {
            high_threshold: 50.0,
            low_threshold: 10.0,
            default_ttl: Duration::from_secs(10),
            local_ttl: Duration::from_secs(10),
            batch_interval: Duration::from_millis(2500),
            controller_interval: Duration::from_secs(3),
            sliding_window: Duration::from_secs(5),
            hysteresis: 0.2,
            near_cache_max_entries: 100_000,
        }
    }
}

/// A Redis Cluster under the fleet: the cache's names in
/// [`Naming::Sharded`](aci_core::naming::Naming::Sharded) form, each channel
/// served by the shard that owns its slot. Data commands are unaffected (the
/// cluster transports retry `MOVED` and `ASK` themselves); what a cluster
/// adds is a subscription that can lose one channel while the others hold
/// ([`Faults::shard_drops`], [`Faults::slot_moves`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// Masters, each owning an equal range of the 16,384 slots, as
    /// `redis-cli --cluster create` assigns them.
    pub shards: usize,
    /// Invalidation channels the namespace spans (`Naming::Sharded { buckets }`).
    pub buckets: u16,
    /// How long a subscriber takes to subscribe again to a lost channel
    /// once it hears of the loss. `None`: a topology refresh and a new
    /// connection to the channel's owner (connect, `HELLO`, `ROLE`,
    /// `SSUBSCRIBE`), four round trips drawn from the links.
    pub resubscribe: Option<Duration>,
}

/// Everything that defines a run; with the seed, it defines it bit for bit.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed of the run's one random stream.
    pub seed: u64,
    /// Instances in the fleet.
    pub instances: usize,
    /// Whether the instances elect their controller through the lease (the
    /// `auto` role, the library's default); otherwise instance 0 is forced
    /// to be the controller and the others followers.
    pub election: bool,
    /// Virtual time simulated.
    pub duration: Duration,
    /// The traffic.
    pub workload: Workload,
    /// The faults.
    pub faults: Faults,
    /// Adaptive, or one strategy pinned.
    pub policy: Policy,
    /// Cache parameters.
    pub cache: CacheParams,
    /// A Redis Cluster rather than one server.
    pub cluster: Option<Cluster>,
    /// Timeline sampling period.
    pub sample_every: Duration,
    /// Most events a run may process before it fails loudly.
    pub max_events: u64,
}

impl SimConfig {
    /// How stale a read may be after a write made in `strategy`, counted
    /// from when Redis ran the write: the invalidation's delivery (the
    /// write's own hop, then Redis to the reader) in eager; the batch
    /// interval and a delivery in batched; `local_ttl` and a hop in ttl, and
    /// in every strategy over a link that loses messages. The run checks
    /// every near-cache hit against it.
    ///
    /// ```
    /// use aci_core::{Duration, Strategy};
    /// let config = aci_sim::scenario::config(
    ///     aci_sim::scenario::Scenario::Ramp, 1, 5, Duration::from_secs(60));
    /// assert_eq!(
    ///     config.staleness_bound(Strategy::Eager),
    ///     config.faults.latency_max.saturating_mul(2)
    /// );
    /// ```
    pub fn staleness_bound(&self, strategy: Strategy) -> Duration {
        let mode = match strategy {
            Strategy::Ttl => Mode::Ttl,
            Strategy::Batched => Mode::Batched(self.cache.batch_interval),
            Strategy::Eager => Mode::Eager,
        };
        self.mode_staleness_bound(mode)
    }

    /// [`SimConfig::staleness_bound`] of a mode: batched at its own interval.
    pub fn mode_staleness_bound(&self, mode: Mode) -> Duration {
        let c = &self.cache;
        let hop = self.faults.latency_max;
        if self.faults.lossy() {
            return c.local_ttl + hop;
        }
        match mode {
            Mode::Eager => hop.saturating_mul(2),
            Mode::Batched(interval) => interval + hop.saturating_mul(3),
            Mode::Ttl => c.local_ttl + hop,
        }
    }
}
