//! What a run measured, and the invariants it checked as it went.

use aci_core::{Duration, Instant, Strategy};

use crate::workload::Crossing;

/// Staleness ages of one strategy's stale reads.
#[derive(Clone, Debug, Default)]
pub struct Ages {
    nanos: Vec<u64>,
}

impl Ages {
    pub(crate) fn push(&mut self, age: Duration) {
        self.nanos.push(age.as_nanos());
    }
    /// How many.
    pub fn len(&self) -> usize {
        self.nanos.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nanos.is_empty()
    }
    /// The `p`-quantile (0..=1), zero when empty.
    pub fn quantile(&self, p: f64) -> Duration {
        if self.nanos.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.nanos.clone();
        sorted.sort_unstable();
        Duration::from_nanos(
            sorted[((sorted.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize],
        )
    }
    /// The largest.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.nanos.iter().copied().max().unwrap_or(0))
    }
}

/// Reads by the strategy the reading instance was in.
#[derive(Clone, Debug, Default)]
pub struct ReadStats {
    /// Reads answered (hits and completed misses).
    pub reads: u64,
    /// Near-cache hits: answered from the instance's memory, without Redis.
    pub hits: u64,
}

/// Stale reads, by the strategy the newer write was made in.
///
/// A stale read is a near-cache hit that served a value older than one
/// whose write had already completed (its reply had reached its writer);
/// its age is the time since that newer write completed. A hit concurrent
/// with a newer write still in flight is not stale: it may return either
/// value, as a read of Redis itself would. Stale reads are counted under
/// the newer write's strategy because that strategy's invalidation is what
/// should have removed the old value: eager within a delivery, batched
/// within `batch_interval` and a delivery, ttl within `local_ttl`.
#[derive(Clone, Debug, Default)]
pub struct Staleness {
    /// Stale reads.
    pub reads: u64,
    /// How far behind they were.
    pub ages: Ages,
}

/// One point of the timeline, for CSV and SVG.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Seconds since the start.
    pub t: f64,
    /// The workload's write rate at `t` (writes/s).
    pub offered_write_rate: f64,
    /// The controller's measured write rate (writes/s).
    pub measured_write_rate: f64,
    /// Each instance's strategy (`None` while crashed).
    pub strategies: Vec<Option<Strategy>>,
}

/// Everything a run observed.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    /// Times an instance became the controller (elected, or forced at start).
    pub elections: u64,
    /// Seconds from the controller's crash to the next controller, if one
    /// crashed and another took over.
    pub takeover: Option<f64>,
    /// `(seconds, instance, strategy)` of every switch the acting controller made.
    pub controller_switches: Vec<(f64, usize, Strategy)>,
    /// Reads, by the reader's strategy (indexed by `Strategy::index`).
    pub by_strategy: [ReadStats; 3],
    /// Stale reads, by the strategy the newer write was made in (indexed by
    /// `Strategy::index`).
    pub stale_by_write: [Staleness; 3],
    /// Reads that shared another read of the same key (single-flight).
    pub coalesced_reads: u64,
    /// Reads that failed (the instance was cut off).
    pub failed_reads: u64,
    /// Writes acknowledged by Redis.
    pub writes_acked: u64,
    /// Writes that failed (cut off) or were refused.
    pub failed_writes: u64,
    /// Invalidation messages published.
    pub invalidations: u64,
    /// Their bytes.
    pub invalidation_bytes: u64,
    /// Strategy decisions published.
    pub decisions: u64,
    /// Their bytes.
    pub decision_bytes: u64,
    /// Rate reports published (followers to the controller).
    pub reports: u64,
    /// Their bytes.
    pub report_bytes: u64,
    /// Deliveries of messages to subscribers.
    pub deliveries: u64,
    /// Deliveries lost to the link.
    pub lost_deliveries: u64,
    /// Forged decisions the adversary published (`Faults::forgeries`).
    pub forgeries: u64,
    /// Strategy changes, every instance counted.
    pub switches: u64,
    /// Attempts to subscribe again that failed (an outage still on), made
    /// on the instances' own backoff.
    pub failed_resubscribes: u64,
    /// Slots of the fleet's channels that moved (a cluster's
    /// `Faults::slot_moves`).
    pub slot_moves: u64,
    /// Shards whose subscriber connections dropped (`Faults::shard_drops`).
    pub shard_drops: u64,
    /// Times an instance heard that one channel of its subscription was
    /// lost, the others held (`Instance::channel_lost`).
    pub channel_losses: u64,
    /// Times it had that channel back (`Instance::channel_restored`).
    pub channel_restores: u64,
    /// Near-cache entries those losses dropped: the lost channel's.
    pub dropped_by_channel_loss: u64,
    /// Near-cache entries they kept: every other channel's. The run checks
    /// each loss drops exactly the entries its channel covers.
    pub kept_by_channel_loss: u64,
    /// Messages Redis did not deliver to a subscriber because its
    /// subscription to that channel was down.
    pub unheard_deliveries: u64,
    /// `(seconds, instance)` each time a lost subscription came back.
    pub resubscribed: Vec<(f64, usize)>,
    /// `(seconds, instance, strategy)` for every change; `None` when the
    /// instance went down (it comes back in ttl).
    pub timeline: Vec<(f64, usize, Option<Strategy>)>,
    /// For each controller decision that changed the strategy: seconds until
    /// every live instance ran it, or `None` if the fleet never all did
    /// before the next decision or the end of the run.
    pub convergence: Vec<Option<f64>>,
    /// For each crossing of a threshold by the offered write rate: seconds
    /// until the whole live fleet ran the strategy the new rate calls for,
    /// or `None` if it never did before the next crossing or the end.
    pub load_change_to_switch: Vec<(Crossing, Option<f64>)>,
    /// Seconds during which the live instances did not all agree.
    pub disagreement: f64,
    /// Invariant violations, described (the first 50).
    pub violations: Vec<String>,
    /// Violations in all.
    pub violation_count: u64,
    /// Timeline samples.
    pub samples: Vec<Sample>,
    /// Events processed.
    pub events: u64,
    /// A hash of every event and its outcome: equal for equal runs.
    pub trace_hash: u64,
}

impl Observations {
    pub(crate) fn violation(&mut self, at: Instant, what: String) {
        self.violation_count += 1;
        if self.violations.len() < 50 {
            self.violations.push(format!("{at}: {what}"));
        }
    }

    /// All reads.
    pub fn reads(&self) -> u64 {
        self.by_strategy.iter().map(|s| s.reads).sum()
    }

    /// Messages published: invalidations, decisions and rate reports.
    pub fn messages(&self) -> u64 {
        self.invalidations + self.decisions + self.reports
    }

    /// Stale reads, by every strategy.
    pub fn stale(&self) -> u64 {
        self.stale_by_write.iter().map(|s| s.reads).sum()
    }

    /// All stale-read ages together.
    pub fn all_ages(&self) -> Ages {
        Ages {
            nanos: self
                .stale_by_write
                .iter()
                .flat_map(|s| s.ages.nanos.iter().copied())
                .collect(),
        }
    }

    /// Hits over reads.
    pub fn hit_ratio(&self) -> f64 {
        let hits: u64 = self.by_strategy.iter().map(|s| s.hits).sum();
        hits as f64 / self.reads().max(1) as f64
    }
}

/// FNV-1a, folded over the trace.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TraceHash(pub(crate) u64);

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash(0xcbf2_9ce4_8422_2325)
    }
}

impl TraceHash {
    /// Mixes in one value: a word at a time (one multiply, where FNV's byte
    /// loop took eight in a row; this runs several times per event).
    pub(crate) fn add(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}
