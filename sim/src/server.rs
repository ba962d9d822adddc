//! The simulated Redis: versioned values with TTL, and the history needed to
//! say how stale a read was.

use aci_cache::instance::LeaseCall;
use aci_cache::transports::lease::{lease_step, LeaseWrite};
use aci_cache::transports::LeaseState;
use aci_core::{Duration, Instant, Mode, Strategy};

#[derive(Clone, Debug, Default)]
struct KeyState {
    /// Version `i + 1` is `history[i]`.
    history: Vec<Version>,
}

/// One `SET` of a key.
#[derive(Clone, Copy, Debug)]
struct Version {
    /// When Redis ran it.
    committed: Instant,
    /// When its reply reached the writer: from then on the write is
    /// complete, and a read that serves an older version is stale.
    acknowledged: Option<Instant>,
    /// The writer's mode when it wrote.
    mode: Mode,
    /// The writing instance.
    writer: usize,
}

/// The first completed write that superseded a version a read served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Newer {
    /// When it completed (its reply reached its writer).
    pub(crate) acknowledged: Instant,
    /// The strategy it was made in.
    pub(crate) strategy: Strategy,
}

/// Keys are indices; a value is its version number (1, 2, …).
#[derive(Clone, Debug)]
pub(crate) struct Server {
    keys: Vec<KeyState>,
    ttl: Duration,
    lease: Lease,
}

/// The controller lease, kept as the Redis scripts keep it.
#[derive(Clone, Debug, Default)]
struct Lease {
    /// `(term, holder, expires)`.
    held: Option<(u64, String, Instant)>,
    counter: u64,
    /// Every `(term, holder)` granted (one per election: small).
    grants: Vec<(u64, String)>,
}

impl Server {
    pub(crate) fn new(keys: usize, ttl: Duration) -> Self {
        Server {
            keys: vec![KeyState::default(); keys.max(1)],
            ttl,
            lease: Lease::default(),
        }
    }

    /// Whether the store ever granted the lease of `term` to `holder`: a
    /// decision under that pair is the controller's as far as any store
    /// answer can tell (only signing tells a replay of it apart).
    pub(crate) fn granted(&self, term: u64, holder: &str) -> bool {
        self.lease
            .grants
            .iter()
            .any(|(t, h)| *t == term && h == holder)
    }

    /// The highest term granted so far.
    pub(crate) fn term_counter(&self) -> u64 {
        self.lease.counter
    }

    /// Runs a lease operation at `now`, as the transports do.
    pub(crate) fn lease(&mut self, now: Instant, call: &LeaseCall) -> LeaseState {
        let lease = &mut self.lease;
        if lease
            .held
            .as_ref()
            .is_some_and(|(_, _, expires)| *expires <= now)
        {
            lease.held = None;
        }
        let ttl = Duration::from(call.ttl);
        let live = lease
            .held
            .as_ref()
            .map(|(term, holder, _)| (*term, holder.as_str()));
        let (write, answer) = lease_step(live, &mut lease.counter, &call.holder, call.op);
        match (write, &mut lease.held) {
            (LeaseWrite::Extend, Some((_, _, expires))) => *expires = now + ttl,
            (LeaseWrite::Grant(term), _) => {
                lease.held = Some((term, call.holder.clone(), now + ttl));
                lease.grants.push((term, call.holder.clone()));
            }
            (LeaseWrite::Delete, _) => lease.held = None,
            _ => {}
        }
        answer
    }

    /// `SET key … PX ttl`: the new version.
    pub(crate) fn set(&mut self, key: usize, now: Instant, mode: Mode, writer: usize) -> u64 {
        let k = &mut self.keys[key];
        k.history.push(Version {
            committed: now,
            acknowledged: None,
            mode,
            writer,
        });
        k.history.len() as u64
    }

    /// The reply to the `SET` that made `version` of `key` reached its writer.
    pub(crate) fn acknowledged(&mut self, key: usize, version: u64, now: Instant) {
        if let Some(v) = version
            .checked_sub(1)
            .and_then(|i| self.keys[key].history.get_mut(i as usize))
        {
            v.acknowledged.get_or_insert(now);
        }
    }

    /// Whether serving `version` of `key` now is a stale read: the first
    /// newer write already complete, if any. A write still in flight does
    /// not make a read stale (the read is concurrent with it and may see
    /// either value); this is why a lone instance never reads stale.
    pub(crate) fn newer_completed(&self, key: usize, version: u64) -> Option<Newer> {
        let newer = self.keys[key].history.get(version as usize..)?;
        newer
            .iter()
            .filter_map(|v| {
                v.acknowledged.map(|acknowledged| Newer {
                    acknowledged,
                    strategy: v.mode.strategy(),
                })
            })
            .min_by_key(|n| n.acknowledged)
    }

    /// `GET key` as it ran at `at` (now or earlier): the version, if
    /// present and not expired then.
    pub(crate) fn get(&self, key: usize, at: Instant) -> Option<u64> {
        let history = &self.keys[key].history;
        // `at` is at most one hop old, so the answer is nearly always among
        // the newest few versions: look there before a binary search over a
        // hot key's whole history (tens of thousands of versions in an hour,
        // a cache miss per probe).
        let recent = history.len().saturating_sub(8);
        let written = match history[recent..].iter().rposition(|v| v.committed <= at) {
            Some(i) => recent + i + 1,
            None => history[..recent].partition_point(|v| v.committed <= at),
        };
        let committed = history.get(written.checked_sub(1)?)?.committed;
        (at < committed + self.ttl).then_some(written as u64)
    }

    /// If `version` of `key` has been superseded: when, and by whom in which mode.
    pub(crate) fn superseded(&self, key: usize, version: u64) -> Option<(Instant, Mode, usize)> {
        let v = self.keys[key].history.get(version as usize)?;
        Some((v.committed, v.mode, v.writer))
    }

    /// Every key still alive answers its latest acknowledged version: the
    /// only mutation the server offers the fleet is `SET`, and nothing undid one.
    pub(crate) fn check_latest(&self, now: Instant) -> Result<(), String> {
        for (i, k) in self.keys.iter().enumerate() {
            if !k
                .history
                .windows(2)
                .all(|w| w[0].committed <= w[1].committed)
            {
                return Err(format!("k{i}: versions committed out of order"));
            }
            let latest = k.history.len() as u64;
            let alive = k
                .history
                .last()
                .is_some_and(|v| now < v.committed + self.ttl);
            if alive && self.get(i, now) != Some(latest) {
                return Err(format!("k{i}: Redis lost version {latest}"));
            }
        }
        Ok(())
    }
}
