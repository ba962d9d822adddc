//! `budget(messages_per_second)`: the freshest mode the fleet can afford.
//!
//! Modes are ordered by the staleness they allow: eager, then batched at a
//! shorter interval before a longer one, then ttl. With `B` the budget and
//! `h` the hysteresis fraction, the policy
//!
//! 1. moves to the freshest mode whose predicted traffic fits `B × (1 − h)`
//!    if that is fresher than the current one;
//! 2. else, if the current mode's predicted traffic exceeds `B`, moves to the
//!    freshest mode that fits `B`;
//! 3. else stays.
//!
//! Nothing moves before the controller has heard the whole fleet
//! ([`FleetLoad::complete`]): read from half its reports, a busy fleet
//! looks cheap enough for eager.
//!
//! So a mode is left for a fresher one only when the fresher one fits with
//! room to spare, and for a cheaper one only when it no longer fits: at a
//! steady rate the choice never exceeds the budget (when ttl itself fits:
//! the control plane alone may not). Batched intervals are found by
//! bisection to the millisecond, from the 10 ms floor up to `local_ttl`
//! (a longer interval would be no fresher than ttl).

use super::{FleetLoad, Mode, Policy};
use crate::config_error::MIN_BATCH_INTERVAL;
use crate::time::Duration;

/// The budget policy's choice (see the [module docs](self)).
pub fn decide(
    policy: &Policy,
    messages_per_second: f64,
    load: &FleetLoad,
    current: Mode,
    in_current: Duration,
) -> Mode {
    if in_current < policy.min_dwell || !load.complete {
        return current;
    }
    let roomy = freshest(
        policy,
        messages_per_second * (1.0 - policy.hysteresis),
        load,
    );
    if policy.staleness_bound(roomy) < policy.staleness_bound(current) {
        return roomy;
    }
    if policy.predicted_messages(current, load) > messages_per_second {
        return freshest(policy, messages_per_second, load);
    }
    current
}

/// The freshest mode whose predicted traffic is at most `limit`; ttl when
/// none is (ttl is then still the cheapest there is).
pub fn freshest(policy: &Policy, limit: f64, load: &FleetLoad) -> Mode {
    let fits = |mode: Mode| policy.predicted_messages(mode, load) <= limit;
    if fits(Mode::Eager) {
        return Mode::Eager;
    }
    let floor = MIN_BATCH_INTERVAL.as_millis();
    let ceiling = policy.local_ttl.as_millis();
    let batched = |ms: u64| Mode::Batched(Duration::from_millis(ms));
    if ceiling <= floor || !fits(batched(ceiling - 1)) {
        return Mode::Ttl;
    }
    // Traffic falls as the interval grows: find the shortest that fits.
    let (mut lo, mut hi) = (floor, ceiling - 1);
    if fits(batched(lo)) {
        return batched(lo);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(batched(mid)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    batched(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Objective;
    use crate::Config;

    fn policy(budget: f64) -> Policy {
        let config = Config::builder()
            .objective(Objective::Budget {
                messages_per_second: budget,
            })
            .build()
            .unwrap();
        Policy::from_config(&config)
    }

    fn load(write_rate: f64) -> FleetLoad {
        FleetLoad {
            write_rate,
            writers: 5,
            instances: 5,
            complete: true,
        }
    }

    #[test]
    fn eager_while_the_writes_fit_then_the_shortest_batch_that_does() {
        // Control plane: 5 messages per 3 s.
        let p = policy(20.0);
        assert_eq!(p.decide(&load(5.0), Mode::Ttl, Duration::MAX), Mode::Eager);
        let busy = load(200.0);
        let mode = p.decide(&busy, Mode::Eager, Duration::MAX);
        let Mode::Batched(b) = mode else {
            panic!("{mode:?}")
        };
        assert!(p.predicted_messages(mode, &busy) <= 20.0);
        let shorter = Mode::Batched(b.saturating_sub(Duration::from_millis(1)));
        assert!(p.predicted_messages(shorter, &busy) > 20.0);
        // Five writers at 40/s each fill every batch: ~5/b + control ≈ 20.
        assert!((250..=400).contains(&b.as_millis()), "{b:?}");
    }

    #[test]
    fn ttl_when_not_even_the_longest_batch_fits() {
        let p = policy(2.0);
        assert_eq!(
            p.decide(&load(200.0), Mode::Eager, Duration::MAX),
            Mode::Ttl
        );
    }

    #[test]
    fn a_fresher_mode_must_fit_with_room_to_spare() {
        let p = policy(20.0);
        // 17 writes/s + 1.67 control fits 20 but not 16 (h = 0.2).
        let l = load(17.0);
        assert_eq!(p.decide(&l, Mode::Eager, Duration::MAX), Mode::Eager);
        let from_batched = p.decide(&l, Mode::Batched(Duration::from_secs(2)), Duration::MAX);
        assert_ne!(from_batched, Mode::Eager);
        assert!(p.predicted_messages(from_batched, &l) <= 16.0);
    }
}
