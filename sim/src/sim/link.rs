//! The link model, one object: every trip between an instance and the
//! simulated Redis goes through it — its latency, whether a partition cuts
//! it, and a Pub/Sub delivery's fate (lost, late, twice) — so that the rest
//! of the run asks it rather than reading the faults itself.

use aci_core::{Duration, Instant};

use super::secs_of;
use crate::faults::{Fate, Faults};
use crate::rng::SimRng;

pub(super) struct Links {
    faults: Faults,
}

impl Links {
    pub(super) fn new(faults: Faults) -> Self {
        Links { faults }
    }

    /// Whether a partition cuts `node` off from Redis at `at`.
    pub(super) fn cut_off(&self, node: usize, at: Instant) -> bool {
        self.faults.partitioned(node, secs_of(at))
    }

    /// A trip from `node` to Redis (or back) starting at `now`: when it
    /// lands, or `None` when a partition cuts `node` off now.
    pub(super) fn send(&self, node: usize, now: Instant, rng: &mut SimRng) -> Option<Instant> {
        if self.cut_off(node, now) {
            None
        } else {
            Some(now + self.hop(rng))
        }
    }

    /// One hop's latency.
    pub(super) fn hop(&self, rng: &mut SimRng) -> Duration {
        self.faults.latency(rng)
    }

    /// The longest a hop takes.
    pub(super) fn max_hop(&self) -> Duration {
        self.faults.latency_max
    }

    /// What happens to one Pub/Sub message on its way to one subscriber.
    pub(super) fn fate(&self, rng: &mut SimRng) -> Fate {
        self.faults.fate(rng)
    }

    /// Whether messages can be lost: then only `local_ttl` bounds staleness.
    pub(super) fn lossy(&self) -> bool {
        self.faults.lossy()
    }

    /// Whether `node` is ever cut off during the run.
    pub(super) fn ever_cut_off(&self, node: usize) -> bool {
        self.faults.outages.iter().any(|o| o.instance == node)
    }

    /// Whether a message `node` sent at `sent` may have been cut on its way:
    /// `node` was cut off then, or one longest hop later.
    pub(super) fn may_have_cut(&self, node: usize, sent: Instant) -> bool {
        let hop = self.faults.latency_max.as_nanos() as f64 / 1e9;
        self.faults.partitioned(node, secs_of(sent))
            || self.faults.partitioned(node, secs_of(sent) + hop)
    }
}
