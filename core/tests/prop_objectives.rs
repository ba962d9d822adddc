//! The objective policies keep their promises, on the model and in the engine:
//! (a) bounded never picks a mode whose staleness bound exceeds the target;
//! (b) budget's predicted traffic never exceeds the budget at a steady rate
//! (when ttl itself fits) and settles at once, without flapping;
//! (c) a bounded controller's decision carries its interval, and a follower
//! flushes on it.

mod common;

use aci_core::policy::{FleetLoad, Mode, Objective, Policy};
use aci_core::{Config, Duration, Engine, Instant, Role, Strategy};
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

fn load() -> impl proptest::strategy::Strategy<Value = FleetLoad> {
    (0.0f64..20_000.0, 0usize..40, 1usize..80, any::<bool>()).prop_map(
        |(write_rate, writers, instances, complete)| FleetLoad {
            write_rate,
            writers,
            instances,
            complete,
        },
    )
}

fn mode() -> impl proptest::strategy::Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::Ttl),
        Just(Mode::Eager),
        (10u64..120_000).prop_map(|ms| Mode::Batched(Duration::from_millis(ms))),
    ]
}

fn policy(
    objective: Objective,
    local_ttl_ms: u64,
    margin_ms: u64,
    hysteresis: f64,
    dwell_ms: u64,
) -> Option<Policy> {
    let config = Config::builder()
        .objective(objective)
        .local_ttl(Duration::from_millis(local_ttl_ms))
        .delivery_margin(Duration::from_millis(margin_ms))
        .hysteresis(hysteresis)
        .min_dwell(Duration::from_millis(dwell_ms))
        .build()
        .ok()?;
    Some(Policy::from_config(&config))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn bounded_never_picks_a_mode_staler_than_its_bound(
        bound_ms in 1u64..60_000,
        local_ttl_ms in 1u64..120_000,
        margin_ms in 0u64..500,
        h in 0.0f64..0.9,
        dwell_ms in 0u64..10_000,
        load in load(),
        current in mode(),
        age_ms in 0u64..20_000,
    ) {
        let objective = Objective::Bounded { max_staleness: Duration::from_millis(bound_ms) };
        let Some(p) = policy(objective, local_ttl_ms, margin_ms, h, dwell_ms) else {
            // Only a bound inside the delivery margin is refused.
            prop_assert!(bound_ms <= margin_ms);
            return Ok(());
        };
        let bound = Duration::from_millis(bound_ms);
        prop_assert!(p.staleness_bound(p.initial()) <= bound);
        let chosen = p.decide(&load, current, Duration::from_millis(age_ms));
        prop_assert!(p.staleness_bound(chosen) <= bound, "{chosen:?} for {bound:?}");
        // A choice that needs the fleet's load waits until it is heard (ttl,
        // when local_ttl keeps the bound, needs none).
        if !load.complete && p.staleness_bound(current) <= bound && p.local_ttl > bound {
            prop_assert_eq!(chosen, current, "moved before hearing the fleet");
        }
        let load = FleetLoad { complete: true, ..load };
        // Past the dwell, one decision settles a steady load: no flapping.
        let settled = p.decide(&load, chosen, Duration::MAX);
        prop_assert!(p.staleness_bound(settled) <= bound);
        let again = p.decide(&load, settled, Duration::MAX);
        prop_assert_eq!(again, settled, "a steady load moves a settled mode");
    }

    #[test]
    fn budget_fits_at_a_steady_rate_and_settles(
        budget in 0.1f64..5_000.0,
        local_ttl_ms in 20u64..120_000,
        h in 0.0f64..0.9,
        load in load(),
        current in mode(),
    ) {
        let objective = Objective::Budget { messages_per_second: budget };
        let p = policy(objective, local_ttl_ms, 100, h, 0).unwrap();
        // Before the controller has heard the whole fleet, nothing moves.
        let partial = FleetLoad { complete: false, ..load };
        prop_assert_eq!(p.decide(&partial, current, Duration::MAX), current);
        let load = FleetLoad { complete: true, ..load };
        let first = p.decide(&load, current, Duration::MAX);
        let ttl_fits = p.predicted_messages(Mode::Ttl, &load) <= budget;
        if ttl_fits {
            prop_assert!(
                p.predicted_messages(first, &load) <= budget,
                "{first:?} predicts {} > {budget}", p.predicted_messages(first, &load)
            );
        } else {
            prop_assert_eq!(first, Mode::Ttl);
        }
        let second = p.decide(&load, first, Duration::MAX);
        prop_assert_eq!(second, first, "a steady load moves a settled mode");
        // Nothing fresher fits with the hysteresis margin to spare.
        let roomy = aci_core::policy::budget::freshest(&p, budget * (1.0 - h), &load);
        prop_assert!(p.staleness_bound(roomy) >= p.staleness_bound(first));
    }

    #[test]
    fn batched_never_costs_more_than_eager(load in load(), ms in 10u64..600_000) {
        let p = Policy::default();
        let batched = p.traffic.invalidations(Mode::Batched(Duration::from_millis(ms)), &load);
        prop_assert!(batched <= p.traffic.invalidations(Mode::Eager, &load));
        prop_assert!(batched >= 0.0 && batched.is_finite());
    }
}

fn controller(objective: Objective) -> Engine {
    let config = Config::builder()
        .objective(objective)
        .role(Role::Controller)
        .build()
        .unwrap();
    let mut engine = Engine::new(config, "controller").unwrap();
    engine.start(Instant::ZERO);
    engine
}

/// Writes `per_second` keys a second from second `from` for `seconds`,
/// ticking every deadline; returns the decisions published.
fn drive(engine: &mut Engine, from: u64, per_second: u64, seconds: u64) -> Vec<serde_json::Value> {
    let mut decisions = Vec::new();
    let mut keep = |effects: Vec<common::Owned>| {
        for e in effects {
            if let Some(json) = e.json().filter(|j| j["action"] == "strategy_update") {
                decisions.push(json);
            }
        }
    };
    for i in 0..per_second * seconds {
        let now = Instant::from_nanos(from * 1_000_000_000 + i * 1_000_000_000 / per_second);
        while let Some(deadline) = engine.poll_timeout().filter(|d| *d <= now) {
            engine.handle_timeout(deadline);
            keep(common::drain(engine));
        }
        engine.handle_write(now, &format!("k{}", i % 100)).unwrap();
        engine.handle_write_acknowledged(now);
        keep(common::drain(engine));
    }
    decisions
}

#[test]
fn a_bounded_controller_announces_its_interval_and_a_follower_flushes_on_it() {
    let bound = Duration::from_millis(600);
    let mut c = controller(Objective::Bounded {
        max_staleness: bound,
    });
    // Starts batched at the bound less the 100 ms margin, before any decision.
    assert_eq!(c.mode(), Mode::Batched(Duration::from_millis(500)));
    let decisions = drive(&mut c, 0, 300, 10);
    let last = decisions.last().expect("the controller decided");
    assert_eq!(last["strategy"], "batched");
    assert_eq!(last["batch_interval"], 0.5);

    // A follower configured with the table learns the interval from the decision.
    let follower_config = Config::builder()
        .role(Role::Follower)
        .accept_termless_decisions(true)
        .build()
        .unwrap();
    let mut f = Engine::new(follower_config, "follower").unwrap();
    f.start(Instant::ZERO);
    let payload = serde_json::to_vec(last).unwrap();
    let now = Instant::from_secs(1);
    let channel = f.config().strategy_channel().to_owned();
    f.handle_message(now, &channel, &payload).unwrap();
    common::drain(&mut f);
    assert_eq!(f.mode(), Mode::Batched(Duration::from_millis(500)));
    f.handle_write(now, "k").unwrap();
    common::drain(&mut f);
    assert_eq!(
        f.timer(aci_core::engine::Timer::BatchFlush),
        Some(now + Duration::from_millis(500)),
        "the flush follows the decision's interval, not the configured 2.5 s"
    );
}

#[test]
fn the_tables_decisions_carry_no_interval() {
    let mut c = controller(Objective::Thresholds);
    let decisions = drive(&mut c, 0, 30, 10);
    assert!(decisions.iter().any(|d| d["strategy"] == "batched"));
    assert!(decisions.iter().all(|d| d.get("batch_interval").is_none()));
}

#[test]
fn a_budget_controller_goes_from_eager_to_the_shortest_affordable_batch() {
    let mut c = controller(Objective::Budget {
        messages_per_second: 20.0,
    });
    let quiet = drive(&mut c, 0, 5, 10);
    assert_eq!(quiet.last().unwrap()["strategy"], "eager");
    let busy = drive(&mut c, 10, 200, 10);
    let last = busy.last().unwrap();
    assert_eq!(last["strategy"], "batched");
    // One writer: ~1/b messages/s + 1/3 decision/s fits 20 at b ≈ 51 ms.
    let b = last["batch_interval"].as_f64().unwrap();
    assert!((0.04..0.07).contains(&b), "{b}");
    assert_eq!(c.strategy(), Strategy::Batched);
}
