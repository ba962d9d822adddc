//! The oracle: every invariant the run checks (a hit within its bound, the
//! fleet following its controller, memory within bounds, Redis losing
//! nothing) and the measurements made against them.

use aci_core::{Duration, Instant, Mode, Strategy};

use super::event::Event;
use super::Sim;
use crate::config::Policy;
use crate::observe::Sample;

impl Sim {
    /// Counts a stale hit (see [`crate::observe::Staleness`]); invariant 2:
    /// a hit serves a version at most its bound behind.
    pub(super) fn check_fresh(&mut self, reader: usize, key: usize, version: u64) {
        let Some((superseded_at, writer_mode, writer)) = self.server.superseded(key, version)
        else {
            return;
        };
        if let Some(newer) = self.server.newer_completed(key, version) {
            let stale = &mut self.obs.stale_by_write[newer.strategy.index()];
            stale.reads += 1;
            stale.ages.push(self.now - newer.acknowledged);
        }
        // The bound is checked from when Redis ran the newer write, which
        // is stricter than from when it completed.
        let age = self.now - superseded_at;
        let mut bound = self.bound(writer_mode, writer, superseded_at);
        // On a cluster, a subscriber hears that Redis dropped its channel
        // one hop after Redis stopped delivering on it: an invalidation
        // published in between is missed until then, one hop more.
        let hop = self.links.max_hop();
        let channel = &self.nodes[reader].channels[usize::from(self.key_bucket[key])];
        if channel
            .lost_at
            .is_some_and(|lost| lost + hop >= superseded_at)
        {
            bound = bound + hop;
        }
        if age > bound {
            let msg = format!(
                "instance {reader} served k{key} version {version} {age} after it was superseded \
                 (writer {writer} in {}; bound {bound})",
                writer_mode.strategy()
            );
            self.obs.violation(self.now, msg);
        }
    }

    /// The staleness bound of a write committed at `committed` in `mode` by
    /// `writer`. A bounded fleet promises its bound (plus one hop of
    /// delivery) for every write outside a fault window.
    pub(super) fn bound(&self, mode: Mode, writer: usize, committed: Instant) -> Duration {
        // A writer that crashed after this write may have died with its
        // invalidation unsent (a batch not yet flushed): only local_ttl is
        // promised then. The crash takes whoever leads at the time, so the
        // victim is known only once it happened.
        let died_owing = self
            .crashed
            .is_some_and(|(victim, at)| victim == writer && committed <= at);
        let writer_faulty = self.links.ever_cut_off(writer) || died_owing;
        if writer_faulty {
            return self.config.staleness_bound(Strategy::Ttl);
        }
        let bound = self.config.mode_staleness_bound(mode);
        match self.config.policy {
            Policy::Bounded(promise) if !self.links.lossy() => {
                bound.min(promise + self.links.max_hop())
            }
            _ => bound,
        }
    }

    /// Invariant 4: every live, connected instance follows the controller's
    /// decision within the delivery delay (when the link loses nothing).
    pub(super) fn check_convergence(
        &mut self,
        controller: usize,
        strategy: Strategy,
        since: Instant,
    ) {
        // A controller cut off from Redis while announcing reaches nobody;
        // its next announcement after the partition is what counts.
        let announced_from_cut_off = self.links.may_have_cut(controller, since);
        let c = &self.nodes[controller];
        if c.strategy != strategy
            || !c.alive
            || !c.controller
            || self.links.lossy()
            || announced_from_cut_off
        {
            return;
        }
        let laggards: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                let n = &self.nodes[i];
                i != controller
                    && n.alive
                    && n.instance.is_subscribed()
                    && !self.cut_off(i)
                    && !n.channels[self.strategy_channel].down_during(since, self.now)
                    && n.strategy != strategy
            })
            .collect();
        if !laggards.is_empty() {
            let msg = format!(
                "instances {laggards:?} did not follow the switch to {strategy} made at {since}"
            );
            self.obs.violation(self.now, msg);
        }
    }

    pub(super) fn agreement_changed(&mut self) {
        let live: Vec<Strategy> = self
            .nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| n.strategy)
            .collect();
        let agree = live.windows(2).all(|w| w[0] == w[1]);
        match (agree, self.disagree_since) {
            (false, None) => self.disagree_since = Some(self.now),
            (true, Some(since)) => {
                self.obs.disagreement += (self.now - since).as_secs_f64();
                self.disagree_since = None;
            }
            _ => {}
        }
    }

    /// Timeline sample; invariant 5 (memory stays within its bounds).
    pub(super) fn sample(&mut self) {
        let t = self.secs();
        let mut strategies = Vec::with_capacity(self.nodes.len());
        let mut measured = 0.0;
        for (i, n) in self.nodes.iter().enumerate() {
            strategies.push(n.alive.then_some(n.strategy));
            if !n.alive {
                continue;
            }
            let stats = n.instance.stats();
            if n.controller {
                measured = stats.write_rate;
            }
            if stats.near_cache_entries > self.config.cache.near_cache_max_entries {
                let msg = format!(
                    "instance {i} holds {} near-cache entries",
                    stats.near_cache_entries
                );
                self.obs.violation(self.now, msg);
            }
        }
        self.obs.samples.push(Sample {
            t,
            offered_write_rate: self.config.workload.writes.rate(t),
            measured_write_rate: measured,
            strategies,
        });
        let next = self.now + self.config.sample_every;
        self.schedule(next, Event::Sample);
    }

    pub(super) fn finish(&mut self) {
        if let Some(since) = self.disagree_since.take() {
            self.obs.disagreement += (self.now - since).as_secs_f64();
        }
        // Invariant 1: Redis holds the latest acknowledged version of every key
        // (the caches' machinery never deleted or overwrote one).
        if let Err(what) = self.server.check_latest(self.now) {
            self.obs.violation(self.now, what);
        }
        let end = self.secs();
        let fleet = self.nodes.len();
        let decisions = &self.obs.controller_switches;
        self.obs.convergence = decisions
            .iter()
            .enumerate()
            .map(|(i, &(at, _, strategy))| {
                let until = decisions.get(i + 1).map_or(end, |next| next.0);
                fleet_runs(&self.obs.timeline, fleet, at, until, strategy)
            })
            .collect();
        self.obs.load_change_to_switch = self
            .crossings
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let until = self.crossings.get(i + 1).map_or(end, |next| next.at);
                (*c, fleet_runs(&self.obs.timeline, fleet, c.at, until, c.to))
            })
            .collect();
        self.obs.trace_hash = self.trace.0;
    }
}

/// The first time at or after `change` when every instance runs `target`
/// (`None` if the fleet never got there before the load changed again).
/// Seconds from `from` until every live instance ran `target` (at least
/// one live), if that happened before `until`. Every instance starts in ttl.
fn fleet_runs(
    timeline: &[(f64, usize, Option<Strategy>)],
    nodes: usize,
    from: f64,
    until: f64,
    target: Strategy,
) -> Option<f64> {
    let mut current = vec![Some(Strategy::Ttl); nodes];
    let agree = |current: &[Option<Strategy>]| {
        current.iter().any(Option::is_some) && current.iter().flatten().all(|&s| s == target)
    };
    let already = timeline.partition_point(|&(t, _, _)| t <= from);
    for &(_, i, s) in &timeline[..already] {
        current[i] = s;
    }
    if agree(&current) {
        return Some(0.0);
    }
    for &(t, i, s) in &timeline[already..] {
        if t >= until {
            break;
        }
        current[i] = s;
        if agree(&current) {
            return Some(t - from);
        }
    }
    None
}
