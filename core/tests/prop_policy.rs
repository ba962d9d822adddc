//! (b) Decisions far from the thresholds are the original's table;
//! (c) a rate hovering ±10% around the high threshold flaps without
//! hysteresis and switches at most once with it.

mod common;

use aci_core::{Config, Duration, Engine, FleetLoad, Instant, Policy, Role, Strategy};
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

fn original_table(rate: f64, low: f64, high: f64) -> Strategy {
    if rate > high {
        Strategy::Eager
    } else if rate < low {
        Strategy::Ttl
    } else {
        Strategy::Batched
    }
}

/// A rate at least `margin` (fractional) away from both thresholds.
fn far_rate(low: f64, high: f64, margin: f64) -> impl proptest::strategy::Strategy<Value = f64> {
    (0.0f64..high * 3.0).prop_filter("far from the thresholds", move |r| {
        [low, high].iter().all(|t| (r - t).abs() > t * margin)
    })
}

/// Drives an engine as controller with evenly spaced writes at `rate(t)` until
/// `end`, ticking on every deadline; returns the switches made.
fn drive(engine: &mut Engine, end: Instant, rate: impl Fn(f64) -> f64) -> u64 {
    let mut t = 0.0f64;
    let end_s = end.as_nanos() as f64 / 1e9;
    loop {
        // Next write after 1/rate(t) seconds (at least one per 10 s when idle).
        let next = t + 1.0 / rate(t).max(0.1);
        let next_write = Instant::from_nanos((next * 1e9) as u64);
        while let Some(deadline) = engine.poll_timeout().filter(|d| *d <= next_write.min(end)) {
            engine.handle_timeout(deadline);
            common::drain(engine);
        }
        if next >= end_s {
            break;
        }
        if rate(t) >= 0.1 {
            engine.handle_write(next_write, "k").unwrap();
            engine.handle_write_acknowledged(next_write);
            common::drain(engine);
        }
        t = next;
    }
    engine.stats().total_switches
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn decide_is_the_table_away_from_thresholds(
        low in 1.0f64..100.0,
        gap in 2.0f64..10.0,
        h in 0.0f64..0.3,
        current in prop::sample::select(Strategy::ALL.to_vec()),
        zone in 0usize..3,
        at in 0.0f64..1.0,
    ) {
        let high = low * gap;
        let policy = Policy {
            low_threshold: low,
            high_threshold: high,
            hysteresis: h,
            min_dwell: Duration::ZERO,
            ..Policy::default()
        };
        // Strictly outside the band [T(1-h), T(1+h)] of either threshold.
        let m = h + 0.01;
        let (from, to) = [
            (0.0, low * (1.0 - m)),
            (low * (1.0 + m), high * (1.0 - m)),
            (high * (1.0 + m), high * 3.0),
        ][zone];
        let rate = from + at * (to - from);
        prop_assert_eq!(policy.thresholds(rate, current, Duration::MAX), original_table(rate, low, high));
        // The default objective is that table, whatever the fleet's shape.
        let load = FleetLoad { write_rate: rate, writers: 3, instances: 7, complete: true };
        let mode = policy.decide(&load, policy.mode_of(current), Duration::MAX);
        prop_assert_eq!(mode, policy.mode_of(original_table(rate, low, high)));
    }

    #[test]
    fn steady_rates_settle_on_the_table(rate in far_rate(10.0, 50.0, 0.25)) {
        let mut engine = Engine::new(Config::builder().role(Role::Controller).build().unwrap(), "c").unwrap();
        engine.start(Instant::ZERO);
        drive(&mut engine, Instant::from_secs(30), |_| rate);
        prop_assert_eq!(engine.strategy(), original_table(rate, 10.0, 50.0), "rate {}", rate);
    }

    #[test]
    fn hysteresis_bounds_hover_flapping(period_s in 15.0f64..60.0, phase in 0.0f64..std::f64::consts::TAU) {
        let hover = move |t: f64| 50.0 * (1.0 + 0.1 * (t * std::f64::consts::TAU / period_s + phase).sin());
        let duration = Instant::from_secs(600);

        // Documented bound: with hysteresis 0.2 (the default) a rate inside
        // [40, 60] makes at most one switch: ttl -> batched, never to eager.
        let mut damped = Engine::new(Config::builder().role(Role::Controller).build().unwrap(), "c").unwrap();
        damped.start(Instant::ZERO);
        let damped_switches = drive(&mut damped, duration, hover);
        prop_assert!(damped_switches <= 1, "{} switches with hysteresis", damped_switches);
        prop_assert_ne!(damped.strategy(), Strategy::Eager);

        // Without it the same traffic flaps between batched and eager.
        let bare = Config::builder().role(Role::Controller).hysteresis(0.0).build().unwrap();
        let mut flappy = Engine::new(bare, "c").unwrap();
        flappy.start(Instant::ZERO);
        let flappy_switches = drive(&mut flappy, duration, hover);
        prop_assert!(flappy_switches >= 4, "only {} switches without hysteresis", flappy_switches);
    }
}
