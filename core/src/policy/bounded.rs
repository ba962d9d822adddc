//! `bounded(max_staleness)`: the cheapest mode that keeps a promise.
//!
//! With `S = max_staleness` and `m = delivery_margin`:
//!
//! - if `local_ttl ≤ S`, ttl keeps the promise and sends nothing: always ttl;
//! - otherwise the candidates are eager (bound `m`) and batched at
//!   `b = S − m` rounded down to the millisecond (bound `b + m ≤ S`; only if
//!   `b` is at least the 10 ms floor), and the one predicted to send fewer
//!   invalidations wins — by the hysteresis margin `h`: eager gives way to
//!   batched when batched saves more than `h` of eager's messages, and comes
//!   back when it saves less than `h / 2`. Between the two, eager is kept
//!   for its freshness.
//!
//! A mode whose bound exceeds `S` (a pinned or inherited one) is left at
//! once, whatever `min_dwell` says or however little of the fleet the
//! controller has heard; a mode that keeps the bound is held while either
//! holds it ([`FleetLoad::complete`]).

use super::{FleetLoad, Mode, Policy};
use crate::config_error::MIN_BATCH_INTERVAL;
use crate::time::Duration;

/// The batch interval the bound allows, if batched can keep it at all.
pub fn interval(policy: &Policy, max_staleness: Duration) -> Option<Duration> {
    if max_staleness <= policy.delivery_margin {
        return None;
    }
    let room = max_staleness.saturating_sub(policy.delivery_margin);
    let millis = Duration::from_millis(room.as_millis());
    (millis >= MIN_BATCH_INTERVAL).then_some(millis)
}

/// The mode to start in: ttl if it keeps the bound, else batched at the
/// bound's interval (its cost is capped by the fleet's size, whatever the
/// write rate), else eager.
pub fn fallback(policy: &Policy, max_staleness: Duration) -> Mode {
    if policy.local_ttl <= max_staleness {
        Mode::Ttl
    } else {
        interval(policy, max_staleness).map_or(Mode::Eager, Mode::Batched)
    }
}

/// The bounded policy's choice (see the [module docs](self)).
pub fn decide(
    policy: &Policy,
    max_staleness: Duration,
    load: &FleetLoad,
    current: Mode,
    in_current: Duration,
) -> Mode {
    if policy.local_ttl <= max_staleness {
        return Mode::Ttl;
    }
    let Some(b) = interval(policy, max_staleness) else {
        return Mode::Eager;
    };
    let keeps_bound = policy.staleness_bound(current) <= max_staleness;
    if keeps_bound && (in_current < policy.min_dwell || !load.complete) {
        return current;
    }
    let traffic = &policy.traffic;
    let eager = traffic.invalidations(Mode::Eager, load);
    let batched = traffic.invalidations(Mode::Batched(b), load);
    let h = policy.hysteresis;
    let leave_eager = batched < eager * (1.0 - h);
    let back_to_eager = batched >= eager * (1.0 - h / 2.0);
    match current {
        Mode::Eager if leave_eager => Mode::Batched(b),
        Mode::Eager => Mode::Eager,
        Mode::Batched(_) if back_to_eager => Mode::Eager,
        Mode::Batched(_) => Mode::Batched(b),
        Mode::Ttl if leave_eager => Mode::Batched(b),
        Mode::Ttl => Mode::Eager,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Objective;
    use crate::Config;

    fn policy(max_staleness_ms: u64) -> Policy {
        let config = Config::builder()
            .objective(Objective::Bounded {
                max_staleness: Duration::from_millis(max_staleness_ms),
            })
            .build()
            .unwrap();
        Policy::from_config(&config)
    }

    fn load(write_rate: f64, writers: usize) -> FleetLoad {
        FleetLoad {
            write_rate,
            writers,
            instances: 5,
            complete: true,
        }
    }

    #[test]
    fn ttl_when_the_near_cache_lifetime_fits() {
        let p = policy(10_000); // local_ttl defaults to 10 s
        for current in [
            Mode::Eager,
            Mode::Ttl,
            Mode::Batched(Duration::from_secs(1)),
        ] {
            assert_eq!(p.decide(&load(500.0, 5), current, Duration::MAX), Mode::Ttl);
        }
        assert_eq!(p.initial(), Mode::Ttl);
    }

    #[test]
    fn busy_writers_batch_and_quiet_ones_go_eager() {
        let p = policy(1_000);
        let b = Mode::Batched(Duration::from_millis(900));
        assert_eq!(p.initial(), b);
        // 40 writes/s per writer: a batch of ~36 keys per message.
        assert_eq!(p.decide(&load(200.0, 5), Mode::Eager, Duration::MAX), b);
        // 0.1 writes/s per writer: batching saves ~4%, not worth the staleness.
        assert_eq!(p.decide(&load(0.5, 5), b, Duration::MAX), Mode::Eager);
        assert_eq!(p.decide(&load(0.0, 5), b, Duration::MAX), Mode::Eager);
    }

    #[test]
    fn the_band_between_holds_either_mode() {
        let p = policy(1_000);
        let b = Mode::Batched(Duration::from_millis(900));
        // One writer at 0.3 writes/s: batching saves ~13% (between h/2 and h).
        let l = load(0.3, 1);
        assert_eq!(p.decide(&l, b, Duration::MAX), b);
        assert_eq!(p.decide(&l, Mode::Eager, Duration::MAX), Mode::Eager);
    }

    #[test]
    fn a_mode_that_breaks_the_bound_is_left_despite_the_dwell() {
        let mut p = policy(1_000);
        p.min_dwell = Duration::from_secs(60);
        let young = Duration::from_secs(1);
        let slow = Mode::Batched(Duration::from_secs(5));
        assert_ne!(p.decide(&load(200.0, 5), slow, young), slow);
        assert_ne!(p.decide(&load(200.0, 5), Mode::Ttl, young), Mode::Ttl);
        assert_eq!(p.decide(&load(200.0, 5), Mode::Eager, young), Mode::Eager);
    }

    #[test]
    fn a_bound_inside_the_floor_is_eager() {
        // 100 ms margin + 10 ms floor: 105 ms leaves no room to batch.
        let p = policy(105);
        assert_eq!(p.initial(), Mode::Eager);
        assert_eq!(
            p.decide(&load(1e6, 5), Mode::Ttl, Duration::MAX),
            Mode::Eager
        );
    }
}
