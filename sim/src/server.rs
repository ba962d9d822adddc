//! The simulated Redis: versioned values with TTL, and the history needed to
//! say how stale a read was.

use aci_cache::instance::LeaseCall;
use aci_cache::transports::lease::{lease_step, LeaseWrite};
use aci_cache::transports::LeaseState;
use aci_core::{Duration, Instant, Strategy};

#[derive(Clone, Debug, Default)]
struct KeyState {
    /// `(committed at, writer's strategy, writer)` of version `i + 1`.
    history: Vec<(Instant, Strategy, usize)>,
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
        let ttl = Duration::from_nanos(u64::try_from(call.ttl.as_nanos()).unwrap_or(u64::MAX));
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
    pub(crate) fn set(
        &mut self,
        key: usize,
        now: Instant,
        strategy: Strategy,
        writer: usize,
    ) -> u64 {
        let k = &mut self.keys[key];
        k.history.push((now, strategy, writer));
        k.history.len() as u64
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
        let written = match history[recent..].iter().rposition(|(t, _, _)| *t <= at) {
            Some(i) => recent + i + 1,
            None => history[..recent].partition_point(|(t, _, _)| *t <= at),
        };
        let (committed, _, _) = history.get(written.checked_sub(1)?)?;
        (at < *committed + self.ttl).then_some(written as u64)
    }

    /// If `version` of `key` has been superseded: when, and by whom in which strategy.
    pub(crate) fn superseded(
        &self,
        key: usize,
        version: u64,
    ) -> Option<(Instant, Strategy, usize)> {
        self.keys[key].history.get(version as usize).copied()
    }

    /// Every key still alive answers its latest acknowledged version: the
    /// only mutation the server offers the fleet is `SET`, and nothing undid one.
    pub(crate) fn check_latest(&self, now: Instant) -> Result<(), String> {
        for (i, k) in self.keys.iter().enumerate() {
            if !k.history.windows(2).all(|w| w[0].0 <= w[1].0) {
                return Err(format!("k{i}: versions committed out of order"));
            }
            let latest = k.history.len() as u64;
            let alive = k
                .history
                .last()
                .is_some_and(|(t, _, _)| now < *t + self.ttl);
            if alive && self.get(i, now) != Some(latest) {
                return Err(format!("k{i}: Redis lost version {latest}"));
            }
        }
        Ok(())
    }
}
