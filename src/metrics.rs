//! Metrics (feature `metrics`), on the `metrics` facade: the cache's
//! [`Stats`] exported by its background thread or task, once a second and
//! on `stop`, as counters and gauges labelled `instance` (the instance id).
//! Nothing is added to the read or write path: no clock read, no label
//! hashing, no atomic beyond the counters `Stats` already keeps.
//!
//! | name | kind | unit | what |
//! |---|---|---|---|
//! | `aci_cache_reads_total` | counter | reads | `get` calls answered |
//! | `aci_cache_hits_total` | counter | reads | answered from the near cache |
//! | `aci_cache_misses_total` | counter | reads | answered from Redis |
//! | `aci_cache_read_errors_total` | counter | reads | failed reads turned into misses (`miss_on_error`) |
//! | `aci_cache_writes_total` | counter | writes | writes Redis acknowledged |
//! | `aci_cache_invalidations_sent_total` | counter | messages | invalidations published |
//! | `aci_cache_decisions_sent_total` | counter | messages | strategy decisions published |
//! | `aci_cache_messages_received_total` | counter | messages | messages received on the channels |
//! | `aci_cache_rejected_total` | counter, label `reason` | messages | messages rejected, by reason |
//! | `aci_cache_switches_total` | counter | switches | strategy switches |
//! | `aci_cache_subscription_losses_total` | counter | losses | subscriptions lost |
//! | `aci_cache_near_entries` | gauge | entries | entries in the near cache |
//! | `aci_cache_near_bytes` | gauge | bytes | bytes charged to the near cache |
//! | `aci_cache_strategy` | gauge | 0 ttl, 1 batched, 2 eager | the strategy in force |
//! | `aci_cache_write_rate` | gauge | writes/s | the fleet's write rate as this instance measures it |
//! | `aci_cache_controller` | gauge | 0 or 1 | whether this instance is the controller |
//! | `aci_cache_term` | gauge | term | the election term last seen |

use std::time::{Duration, Instant};

use metrics::{counter, gauge};

use crate::stats::Stats;

/// How often the background thread or task exports.
pub(crate) const EXPORT_EVERY: Duration = Duration::from_secs(1);

/// When the last export ran.
#[derive(Debug)]
pub(crate) struct Exporter {
    last: Option<Instant>,
}

impl Exporter {
    pub(crate) fn new() -> Self {
        Exporter { last: None }
    }

    /// Exports `stats()` if a second has passed since the last export.
    pub(crate) fn maybe_export(&mut self, instance: &str, stats: impl FnOnce() -> Stats) {
        if self.last.is_none_or(|at| at.elapsed() >= EXPORT_EVERY) {
            self.last = Some(Instant::now());
            export(instance, &stats());
        }
    }
}

/// Exports every figure of `stats` now.
pub(crate) fn export(instance: &str, stats: &Stats) {
    let id = instance.to_owned();
    let counters = [
        ("aci_cache_reads_total", stats.total_reads),
        ("aci_cache_hits_total", stats.cache_hits),
        ("aci_cache_misses_total", stats.cache_misses),
        ("aci_cache_read_errors_total", stats.read_errors),
        ("aci_cache_writes_total", stats.total_writes),
        (
            "aci_cache_invalidations_sent_total",
            stats.invalidations_sent,
        ),
        ("aci_cache_decisions_sent_total", stats.decisions_sent),
        ("aci_cache_messages_received_total", stats.messages_received),
        ("aci_cache_switches_total", stats.total_switches),
        (
            "aci_cache_subscription_losses_total",
            stats.subscription_losses,
        ),
    ];
    for (name, value) in counters {
        counter!(name, "instance" => id.clone()).absolute(value);
    }
    for (reason, count) in stats.rejected.iter() {
        counter!("aci_cache_rejected_total", "instance" => id.clone(), "reason" => reason.as_str())
            .absolute(count);
    }
    let gauges = [
        ("aci_cache_near_entries", stats.near_cache_entries as f64),
        ("aci_cache_near_bytes", stats.near_cache_bytes as f64),
        ("aci_cache_strategy", stats.current_strategy.index() as f64),
        ("aci_cache_write_rate", stats.write_rate),
        (
            "aci_cache_controller",
            f64::from(u8::from(stats.is_controller)),
        ),
        ("aci_cache_term", stats.term as f64),
    ];
    for (name, value) in gauges {
        gauge!(name, "instance" => id.clone()).set(value);
    }
}
