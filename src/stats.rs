//! What a cache reports about itself.

use aci_core::stats::RejectCounts;
use aci_core::{Strategy, SwitchRecord};

/// A snapshot of a cache's counters (the original's `stats`, and more).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Reads: `get` calls that looked at the near cache (`cache_hits +
    /// cache_misses`). Calls refused with `Error::Stopped` are not reads.
    pub total_reads: u64,
    /// Reads answered from the near cache.
    pub cache_hits: u64,
    /// Reads the near cache could not answer: they went to Redis, or waited
    /// for a read of the same key already going. A reader whose shared read
    /// was abandoned by its leader looks again and counts again.
    pub cache_misses: u64,
    /// Reads that failed (returned as errors, or as misses with `miss_on_error`).
    pub read_errors: u64,
    /// Writes Redis acknowledged (`set`, `set_with_ttl`). A write whose
    /// `SET` failed or timed out is not counted here, nor in the write rate.
    pub total_writes: u64,
    /// The strategy in force.
    pub current_strategy: Strategy,
    /// The fleet's write rate (writes/s): on the controller, its own rate plus
    /// the live reports of the others; on a follower, the rate the latest
    /// decision carried.
    pub write_rate: f64,
    /// This instance's own write rate at its latest tick or report (writes/s).
    pub own_write_rate: f64,
    /// On the controller: instances whose reports were in its latest sum.
    pub reporting_instances: u64,
    /// Whether this instance decides for the fleet now (forced to, or
    /// elected: holding the lease).
    pub is_controller: bool,
    /// The lease term of the controller this instance is or follows (0: none known).
    pub term: u64,
    /// Times this instance won the controller lease.
    pub leases_won: u64,
    /// Times it lost the lease it held and stepped down.
    pub leases_lost: u64,
    /// Times it asked Redis who holds the lease to verify a term heard on
    /// the channel (at most once per `controller_interval`).
    pub verifications: u64,
    /// The latest switches, oldest first (the original's `strategy_switches`).
    pub strategy_switches: Vec<SwitchRecord>,
    /// Every switch ever made.
    pub total_switches: u64,
    /// Invalidation messages Redis acknowledged publishing: one per eager
    /// write or delete, one per batch. A message in a pipeline whose write
    /// failed is not counted.
    pub invalidations_sent: u64,
    /// Strategy decisions Redis acknowledged publishing.
    pub decisions_sent: u64,
    /// Messages accepted from other instances (invalidations, decisions,
    /// rate reports), our own echoes excluded.
    pub messages_received: u64,
    /// Messages rejected, by reason (each also logged at `warn`); a decision
    /// whose term Redis did not confirm counts under `unconfirmed_term`.
    pub rejected: RejectCounts,
    /// Times the whole near cache was dropped: on losing a subscription that
    /// was up (once per loss, not per failed attempt to resubscribe), on
    /// tightening from `ttl`, on an invalidation too large to read.
    pub full_drops: u64,
    /// Times a subscription that was up was lost (failed attempts to
    /// resubscribe are not counted again).
    pub subscription_losses: u64,
    /// Whether the subscription is up (and the near cache in use).
    pub subscribed: bool,
    /// Values not kept in the near cache because they exceed
    /// `near_cache_max_value_bytes` (each read or write of one counts).
    pub near_cache_oversized: u64,
    /// Entries in the near cache.
    pub near_cache_entries: usize,
    /// Bytes charged to the near cache.
    pub near_cache_bytes: u64,
}

impl Stats {
    /// Hits over reads, 0 when nothing was read.
    pub fn hit_ratio(&self) -> f64 {
        if self.total_reads == 0 {
            0.0
        } else {
            self.cache_hits as f64 / self.total_reads as f64
        }
    }
}
