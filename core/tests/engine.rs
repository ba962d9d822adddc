//! The engine's behaviour, input by input.

mod common;

use aci_core::engine::Timer;
use aci_core::{
    Config, DropReason, Duration, Engine, Handled, Instant, RejectReason, Role, Strategy,
    SwitchCause, WriteError,
};
use common::{drain, write, Owned};

fn engine_with(config: Config) -> Engine {
    let mut engine = Engine::new(config, "me").unwrap();
    engine.start(Instant::ZERO);
    engine
}

/// A forced controller: decides without an election.
fn controller_config() -> Config {
    Config::builder().role(Role::Controller).build().unwrap()
}

fn follower() -> Engine {
    engine_with(Config::builder().is_controller(false).build().unwrap())
}

fn forced(strategy: Strategy) -> Engine {
    let mut engine = follower();
    engine.force_strategy(Instant::ZERO, Some(strategy));
    drain(&mut engine);
    engine
}

fn publishes(effects: &[Owned]) -> Vec<&Owned> {
    effects
        .iter()
        .filter(|e| matches!(e, Owned::Publish { .. }))
        .collect()
}

#[test]
fn ttl_writes_send_nothing() {
    let mut e = follower();
    write(&mut e, Instant::from_millis(1), "k").unwrap();
    assert!(drain(&mut e).is_empty());
    assert_eq!(e.stats().total_writes, 1);
}

#[test]
fn eager_sends_one_invalidation_per_write() {
    let mut e = forced(Strategy::Eager);
    for i in 0..3 {
        write(&mut e, Instant::from_millis(i), "user:42").unwrap();
        let effects = drain(&mut e);
        assert_eq!(effects.len(), 1);
        let Owned::Publish { channel, .. } = &effects[0] else {
            panic!()
        };
        assert_eq!(channel, "aci:invalidation");
        assert_eq!(effects[0].published_keys().unwrap(), ["user:42"]);
        assert_eq!(effects[0].json().unwrap()["strategy"], "eager");
        assert_eq!(effects[0].json().unwrap()["source"], "me");
    }
    assert_eq!(e.stats().invalidations_sent, 3);
}

#[test]
fn batched_flushes_deduplicated_keys_every_interval() {
    let mut e = forced(Strategy::Batched);
    for k in ["b:1", "b:2", "b:1", "b:3"] {
        write(&mut e, Instant::from_millis(10), k).unwrap();
        assert!(drain(&mut e).is_empty());
    }
    let deadline = e.poll_timeout().unwrap();
    assert_eq!(deadline, Instant::from_millis(2500));
    e.handle_timeout(Instant::from_millis(2499));
    assert!(drain(&mut e).is_empty(), "early timeouts do nothing");
    e.handle_timeout(deadline);
    let effects = drain(&mut e);
    assert_eq!(effects[0].published_keys().unwrap(), ["b:1", "b:2", "b:3"]);
    assert_eq!(effects[0].json().unwrap()["strategy"], "batched");
    // Re-armed for the next interval; an empty buffer publishes nothing.
    assert_eq!(e.timer(Timer::BatchFlush), Some(Instant::from_millis(5000)));
    e.handle_timeout(Instant::from_millis(5000));
    assert!(drain(&mut e).iter().all(|x| x.published_keys().is_none()));
}

#[test]
fn leaving_batched_and_stopping_flush_the_buffer() {
    let mut e = forced(Strategy::Batched);
    write(&mut e, Instant::from_millis(1), "a").unwrap();
    e.force_strategy(Instant::from_millis(2), Some(Strategy::Eager));
    let effects = drain(&mut e);
    assert_eq!(effects[0].published_keys().unwrap(), ["a"]);
    assert!(effects
        .iter()
        .any(|x| matches!(x, Owned::Switched(s) if s.to == Strategy::Eager)));
    assert_eq!(e.timer(Timer::BatchFlush), None);

    let mut e = forced(Strategy::Batched);
    write(&mut e, Instant::from_millis(1), "b").unwrap();
    e.stop(Instant::from_millis(2));
    assert_eq!(drain(&mut e)[0].published_keys().unwrap(), ["b"]);
    assert_eq!(e.poll_timeout(), None);
    assert_eq!(
        write(&mut e, Instant::from_millis(3), "c"),
        Err(WriteError::Stopped)
    );
}

#[test]
fn a_full_batch_flushes_early_and_keeps_every_key() {
    let config = Config::builder()
        .max_message_keys(10)
        .is_controller(false)
        .build()
        .unwrap();
    let mut e = engine_with(config);
    e.force_strategy(Instant::ZERO, Some(Strategy::Batched));
    drain(&mut e);
    let mut published = Vec::new();
    for i in 0..25 {
        write(&mut e, Instant::from_millis(1), &format!("k{i}")).unwrap();
        published.extend(
            drain(&mut e)
                .iter()
                .filter_map(Owned::published_keys)
                .flatten(),
        );
        assert!(e.buffered_keys() <= 10);
    }
    assert_eq!(published.len(), 20, "two early flushes of 10");
    assert_eq!(e.stats().early_flushes, 2);
    e.stop(Instant::from_millis(2));
    published.extend(
        drain(&mut e)
            .iter()
            .filter_map(Owned::published_keys)
            .flatten(),
    );
    let expected: Vec<String> = (0..25).map(|i| format!("k{i}")).collect();
    assert_eq!(published, expected);
}

#[test]
fn namespaced_writes_publish_stored_keys() {
    let config = Config::builder()
        .namespace("user-service")
        .is_controller(false)
        .build()
        .unwrap();
    let mut e = engine_with(config);
    e.force_strategy(Instant::ZERO, Some(Strategy::Eager));
    drain(&mut e);
    write(&mut e, Instant::from_millis(1), "profile:7").unwrap();
    let effects = drain(&mut e);
    let Owned::Publish { channel, .. } = &effects[0] else {
        panic!()
    };
    assert_eq!(channel, "aci:user-service:invalidation");
    assert_eq!(
        effects[0].published_keys().unwrap(),
        ["aci:user-service:profile:7"]
    );
}

#[test]
fn controller_decides_broadcasts_and_drops_on_tightening() {
    let config = Config::builder()
        .role(Role::Controller)
        .high_threshold(5.0)
        .low_threshold(1.0)
        .build()
        .unwrap();
    let mut e = engine_with(config);
    for i in 0..300 {
        write(&mut e, Instant::from_millis(i * 10), "k").unwrap();
    }
    assert_eq!(e.poll_timeout(), Some(Instant::from_secs(3)));
    e.handle_timeout(Instant::from_secs(3));
    let effects = drain(&mut e);
    assert!(effects.contains(&Owned::InvalidateAll(DropReason::Tightened)));
    let switch = effects
        .iter()
        .find_map(|x| match x {
            Owned::Switched(s) => Some(*s),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (switch.from, switch.to, switch.cause),
        (Strategy::Ttl, Strategy::Eager, SwitchCause::Decided)
    );
    let decision = publishes(&effects)[0].json().unwrap();
    assert_eq!(decision["action"], "strategy_update");
    assert_eq!(decision["strategy"], "eager");
    assert_eq!(decision["write_rate"], 60.0);
    assert_eq!(e.stats().current_strategy, Strategy::Eager);

    // An unchanged decision is re-announced each tick (for late followers).
    for i in 300..600 {
        write(&mut e, Instant::from_millis(i * 10), "k").unwrap();
        assert_eq!(drain(&mut e).len(), 1, "eager: one invalidation per write");
    }
    e.handle_timeout(Instant::from_secs(6));
    let effects = drain(&mut e);
    assert_eq!(publishes(&effects).len(), 1);
    assert!(!effects.iter().any(|x| matches!(x, Owned::Switched(_))));
}

#[test]
fn rebroadcast_can_be_turned_off() {
    let config = Config::builder().role(Role::Controller).rebroadcast(false);
    let mut e = engine_with(config.build().unwrap());
    e.handle_timeout(Instant::from_secs(3));
    assert!(drain(&mut e).is_empty());
}

#[test]
fn follower_applies_decisions_and_ignores_its_own() {
    let mut e = follower();
    let decision = br#"{"action": "strategy_update", "strategy": "batched", "write_rate": 20.0, "timestamp": 1.0, "source": "boss"}"#;
    assert_eq!(
        e.handle_message(Instant::from_millis(5), "aci:strategy", decision),
        Ok(Handled::DecisionApplied)
    );
    assert_eq!(e.strategy(), Strategy::Batched);
    assert_eq!(e.stats().write_rate, 20.0);
    assert_eq!(e.timer(Timer::BatchFlush), Some(Instant::from_millis(2505)));
    let own = br#"{"action": "strategy_update", "strategy": "eager", "write_rate": 99.0, "timestamp": 1.0, "source": "me"}"#;
    assert_eq!(
        e.handle_message(Instant::from_millis(6), "aci:strategy", own),
        Ok(Handled::OwnMessage)
    );
    assert_eq!(e.strategy(), Strategy::Batched);
}

#[test]
fn own_echoes_are_dropped_on_the_raw_payload_before_any_decoding() {
    let mut e = follower();
    // Our echo, cut short after the sender: decoding it would be a rejection.
    // Recognised on the raw bytes, it costs no decode and counts as our own.
    let echo = br#"{"action": "invalidate", "keys": ["aci:k"], "strategy": "eager", "timestamp": 1.0, "source": "me", "#;
    assert_eq!(
        e.handle_message(Instant::from_millis(5), "aci:invalidation", echo),
        Ok(Handled::OwnMessage)
    );
    assert_eq!(e.stats().own_messages_ignored, 1);
    assert_eq!(e.stats().rejected.total(), 0);
    // A peer whose id starts with ours is not us.
    let peer = br#"{"action": "invalidate", "keys": ["aci:k"], "strategy": "eager", "timestamp": 1.0, "source": "me2"}"#;
    assert!(matches!(
        e.handle_message(Instant::from_millis(6), "aci:invalidation", peer),
        Ok(Handled::Invalidation { .. })
    ));
}

#[test]
fn controller_and_pinned_instances_ignore_decisions() {
    let decision = br#"{"action": "strategy_update", "strategy": "eager", "source": "other"}"#;
    let mut controller = engine_with(controller_config());
    assert_eq!(
        controller.handle_message(Instant::ZERO, "aci:strategy", decision),
        Ok(Handled::DecisionIgnored)
    );
    assert_eq!(controller.strategy(), Strategy::Ttl);
    let mut pinned = forced(Strategy::Batched);
    assert_eq!(
        pinned.handle_message(Instant::ZERO, "aci:strategy", decision),
        Ok(Handled::DecisionIgnored)
    );
    assert_eq!(pinned.strategy(), Strategy::Batched);
}

#[test]
fn invalidations_name_keys_to_drop_and_skip_foreign_ones() {
    let config = Config::builder()
        .namespace("ns")
        .is_controller(false)
        .build()
        .unwrap();
    let mut e = engine_with(config);
    let msg = br#"{"action": "invalidate", "keys": ["aci:ns:a", "other:b", "aci:ns:caf\u00e9"], "strategy": "eager", "timestamp": 1.0, "source": "x"}"#;
    let handled = e
        .handle_message(Instant::ZERO, "aci:ns:invalidation", msg)
        .unwrap();
    assert_eq!(
        handled,
        Handled::Invalidation {
            keys: 2,
            foreign: 1
        }
    );
    assert_eq!(
        drain(&mut e),
        [Owned::Invalidate(vec![
            "aci:ns:a".into(),
            "aci:ns:caf\u{e9}".into()
        ])]
    );
    assert_eq!(e.stats().rejected.get(RejectReason::ForeignKey), 1);
}

#[test]
fn hostile_payloads_are_counted_never_fatal() {
    let mut e = engine_with(
        Config::builder()
            .max_message_keys(100)
            .is_controller(false)
            .build()
            .unwrap(),
    );
    let many_keys = format!(
        r#"{{"action": "invalidate", "keys": [{}]}}"#,
        (0..101)
            .map(|i| format!("\"k{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let huge = vec![b' '; 64 * 1024];
    let cases: &[(&str, &[u8], RejectReason)] = &[
        ("aci:invalidation", b"not json", RejectReason::Malformed),
        ("aci:invalidation", b"[1, 2]", RejectReason::NotAnObject),
        ("aci:invalidation", b"null", RejectReason::NotAnObject),
        ("aci:invalidation", b"\xff\xfe", RejectReason::InvalidUtf8),
        (
            "aci:invalidation",
            br#"{"action": "invalidate", "keys": "k"}"#,
            RejectReason::WrongType,
        ),
        (
            "aci:invalidation",
            br#"{"action": "invalidate", "keys": [1]}"#,
            RejectReason::WrongType,
        ),
        (
            "aci:invalidation",
            br#"{"action": "invalidate"}"#,
            RejectReason::MissingField,
        ),
        (
            "aci:invalidation",
            br#"{"action": "nuke", "keys": []}"#,
            RejectReason::UnknownAction,
        ),
        (
            "aci:strategy",
            br#"{"action": "strategy_update", "strategy": "lazy"}"#,
            RejectReason::UnknownStrategy,
        ),
        (
            "aci:strategy",
            br#"{"action": "invalidate", "keys": ["k"]}"#,
            RejectReason::WrongChannel,
        ),
        ("elsewhere", b"{}", RejectReason::WrongChannel),
        (
            "aci:invalidation",
            many_keys.as_bytes(),
            RejectReason::TooManyKeys,
        ),
        ("aci:invalidation", &huge, RejectReason::TooLarge),
        ("aci:invalidation", &[b'['; 100], RejectReason::Malformed),
    ];
    for (i, (channel, payload, reason)) in cases.iter().enumerate() {
        let rejection = e
            .handle_message(Instant::ZERO, channel, payload)
            .unwrap_err();
        assert_eq!(rejection.reason, *reason, "case {i}: {rejection}");
        assert!(e.stats().rejected.get(*reason) >= 1);
        let effects = drain(&mut e);
        let unreadable = matches!(reason, RejectReason::TooManyKeys | RejectReason::TooLarge);
        assert_eq!(rejection.dropped_all, unreadable, "case {i}");
        assert_eq!(
            effects == [Owned::InvalidateAll(DropReason::UnreadableInvalidation)],
            unreadable
        );
    }
    assert_eq!(e.stats().rejected.total(), cases.len() as u64);
    assert_eq!(e.strategy(), Strategy::Ttl);
}

#[test]
fn subscription_loss_drops_everything() {
    let mut e = follower();
    e.handle_subscription_lost(Instant::ZERO);
    assert_eq!(
        drain(&mut e),
        [Owned::InvalidateAll(DropReason::SubscriptionLost)]
    );
    assert_eq!(e.stats().full_drops, 1);
}

#[test]
fn a_regressed_clock_is_clamped_and_counted() {
    let mut e = forced(Strategy::Batched);
    write(&mut e, Instant::from_secs(10), "a").unwrap();
    e.handle_write(Instant::from_secs(5), "b").unwrap();
    assert_eq!(e.stats().clock_regressions, 1);
    e.handle_write_acknowledged(Instant::from_secs(6));
    assert_eq!(e.stats().clock_regressions, 2, "every call is clamped");
    assert_eq!(e.stats().total_writes, 2);
}

#[test]
fn only_acknowledged_writes_count() {
    // Issue 11, finding 4: a write whose SET failed is not a write.
    let mut e = forced(Strategy::Eager);
    for i in 0..100 {
        e.handle_write(Instant::from_millis(i), "k").unwrap();
        drain(&mut e);
        if i % 4 == 0 {
            e.handle_write_acknowledged(Instant::from_millis(i));
        }
    }
    assert_eq!(e.stats().total_writes, 25);
    assert!((e.write_rate(Instant::from_millis(100)) - 5.0).abs() < 1e-9);
}

#[test]
fn overlong_keys_are_refused_before_anything_happens() {
    let mut e = forced(Strategy::Eager);
    let key = "k".repeat(40_000);
    assert!(matches!(
        write(&mut e, Instant::ZERO, &key),
        Err(WriteError::KeyTooLong { len: 40_000 })
    ));
    assert_eq!(e.stats().total_writes, 0);
    assert!(drain(&mut e).is_empty());
}

#[test]
fn a_key_longer_than_the_batch_buffer_travels_alone() {
    let mut e = forced(Strategy::Batched);
    write(&mut e, Instant::ZERO, "small").unwrap();
    let key = "k".repeat(20_000);
    write(&mut e, Instant::ZERO, &key).unwrap();
    let keys: Vec<Vec<String>> = drain(&mut e)
        .iter()
        .filter_map(Owned::published_keys)
        .collect();
    assert_eq!(keys, [vec!["small".to_owned()], vec![key]]);
}

#[test]
fn undrained_effects_cause_backpressure_not_loss() {
    let mut e = forced(Strategy::Eager);
    let key = "k".repeat(20_000);
    write(&mut e, Instant::ZERO, &key).unwrap();
    assert_eq!(
        write(&mut e, Instant::ZERO, &key),
        Err(WriteError::Backpressure)
    );
    assert_eq!(e.stats().total_writes, 1);
    assert_eq!(drain(&mut e).len(), 1);
    write(&mut e, Instant::ZERO, &key).unwrap();
}

#[test]
fn roles_arm_and_disarm_the_controller() {
    let mut e = follower();
    assert_eq!(e.timer(Timer::ControllerTick), None);
    e.set_role(Instant::from_secs(1), Role::Controller);
    assert_eq!(e.timer(Timer::ControllerTick), Some(Instant::from_secs(4)));
    assert_eq!(
        e.timer(Timer::RateReport),
        None,
        "a controller reports to nobody"
    );
    e.set_role(Instant::from_secs(2), Role::Follower);
    assert_eq!(e.timer(Timer::ControllerTick), None);
    assert!(e.timer(Timer::RateReport).is_some());
}

#[test]
fn followers_report_their_rate_every_interval() {
    let mut e = follower();
    for i in 0..50 {
        write(&mut e, Instant::from_millis(i * 20), "k").unwrap();
    }
    assert_eq!(e.timer(Timer::RateReport), Some(Instant::from_secs(3)));
    e.handle_timeout(Instant::from_secs(3));
    let effects = drain(&mut e);
    let Owned::Publish { channel, .. } = &effects[0] else {
        panic!("{effects:?}")
    };
    assert_eq!(channel, "aci:strategy");
    let report = effects[0].json().unwrap();
    assert_eq!(report["action"], "rate_report");
    assert_eq!(report["write_rate"], 10.0, "50 writes over the 5 s window");
    assert_eq!(report["source"], "me");
    assert_eq!(e.timer(Timer::RateReport), Some(Instant::from_secs(6)));
    assert_eq!(e.stats().reports_sent, 1);
}

fn report(source: &str, rate: f64) -> Vec<u8> {
    format!(r#"{{"action": "rate_report", "write_rate": {rate}, "timestamp": 1.0, "source": "{source}"}}"#).into_bytes()
}

#[test]
fn the_controller_decides_on_the_fleet_rate() {
    // The original decides on its own writes: an idle controller keeps a busy
    // fleet in ttl forever. Here followers' reports are summed.
    let mut e = engine_with(controller_config());
    for (i, source) in ["f1", "f2", "f3"].iter().enumerate() {
        let handled = e.handle_message(
            Instant::from_millis(2900 + i as u64),
            "aci:strategy",
            &report(source, 25.0),
        );
        assert_eq!(handled, Ok(Handled::RateReport { recorded: true }));
    }
    e.handle_timeout(Instant::from_secs(3));
    drain(&mut e);
    assert_eq!(e.stats().write_rate, 75.0);
    assert_eq!(e.stats().reporting_instances, 3);
    assert_eq!(
        e.strategy(),
        Strategy::Eager,
        "75 writes/s in the fleet, none here"
    );

    // A follower that stops reporting ages out after two and a half intervals.
    e.handle_message(Instant::from_secs(5), "aci:strategy", &report("f1", 25.0))
        .unwrap();
    e.handle_message(Instant::from_secs(5), "aci:strategy", &report("f2", 25.0))
        .unwrap();
    e.handle_timeout(Instant::from_secs(6));
    assert_eq!(
        e.stats().reporting_instances,
        3,
        "f3's report from t=2.9 s is 3.1 s old"
    );
    e.handle_message(Instant::from_secs(8), "aci:strategy", &report("f1", 25.0))
        .unwrap();
    e.handle_message(Instant::from_secs(8), "aci:strategy", &report("f2", 25.0))
        .unwrap();
    e.handle_timeout(Instant::from_secs(9));
    assert_eq!(
        e.stats().reporting_instances,
        3,
        "f3 is 6.1 s silent: one lost report"
    );
    e.handle_message(Instant::from_secs(11), "aci:strategy", &report("f1", 25.0))
        .unwrap();
    e.handle_message(Instant::from_secs(11), "aci:strategy", &report("f2", 25.0))
        .unwrap();
    e.handle_timeout(Instant::from_secs(12));
    assert_eq!(e.stats().reporting_instances, 2, "f3 is 9.1 s silent: out");
    assert_eq!(e.stats().write_rate, 50.0);
}

#[test]
fn one_lost_report_around_a_tick_changes_nothing() {
    // Reports keep their timer's phase, and land about when the controller
    // ticks: jitter puts one 1 ms before a tick, the next is lost, the one
    // after lands 1 ms after its tick — where the one before is 6.001 s old.
    let mut e = engine_with(controller_config());
    let mut tick = Instant::from_secs(3);
    let ms = aci_core::Duration::from_millis(1);
    for i in 0..6u64 {
        let late = i == 4;
        if i != 3 && !late {
            e.handle_message(
                tick.saturating_sub(ms),
                "aci:strategy",
                &report("writer", 200.0),
            )
            .unwrap();
        }
        e.handle_timeout(tick);
        drain(&mut e);
        if late {
            e.handle_message(tick + ms, "aci:strategy", &report("writer", 200.0))
                .unwrap();
        }
        assert_eq!(
            e.strategy(),
            Strategy::Eager,
            "tick {i}: rate {}",
            e.stats().write_rate
        );
        tick += aci_core::Duration::from_secs(3);
    }
}

#[test]
fn followers_ignore_reports_and_bad_reports_are_rejected() {
    let mut e = follower();
    let handled = e.handle_message(Instant::ZERO, "aci:strategy", &report("f1", 5.0));
    assert_eq!(handled, Ok(Handled::RateReport { recorded: false }));
    let negative = e.handle_message(Instant::ZERO, "aci:strategy", &report("f1", -5.0));
    assert_eq!(negative.unwrap_err().reason, RejectReason::WrongType);
    let anonymous = br#"{"action": "rate_report", "write_rate": 5.0}"#;
    assert_eq!(
        e.handle_message(Instant::ZERO, "aci:strategy", anonymous)
            .unwrap_err()
            .reason,
        RejectReason::MissingField
    );
    let wrong_channel = e.handle_message(Instant::ZERO, "aci:invalidation", &report("f1", 5.0));
    assert_eq!(
        wrong_channel.unwrap_err().reason,
        RejectReason::WrongChannel
    );
}

#[test]
fn timestamps_follow_the_wall_clock_pairing() {
    let mut e = forced(Strategy::Eager);
    e.set_unix_time(Instant::from_secs(1), 1_700_000_000.0);
    write(&mut e, Instant::from_millis(3500), "k").unwrap();
    let ts = drain(&mut e)[0].json().unwrap()["timestamp"]
        .as_f64()
        .unwrap();
    assert_eq!(ts, 1_700_000_002.5);
}

#[test]
fn min_dwell_holds_back_the_controller() {
    let config = Config::builder()
        .role(Role::Controller)
        .high_threshold(5.0)
        .low_threshold(1.0)
        .min_dwell(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut e = engine_with(config);
    for i in 0..100 {
        write(&mut e, Instant::from_millis(i * 10), "k").unwrap();
    }
    e.handle_timeout(Instant::from_secs(3));
    assert_eq!(
        e.strategy(),
        Strategy::Ttl,
        "started 3 s ago, dwell is 10 s"
    );
    drain(&mut e);
    for i in 0..100 {
        write(&mut e, Instant::from_millis(10_000 + i * 10), "k").unwrap();
    }
    e.handle_timeout(Instant::from_secs(12));
    assert_eq!(e.strategy(), Strategy::Eager);
}

#[test]
fn engine_size_is_fixed_and_reported() {
    let size = std::mem::size_of::<Engine>();
    println!("size_of::<Engine>() = {size} bytes");
    // Documented in BENCHMARKS.md: 89 KiB, whatever the load.
    assert!(size < 100 * 1024, "{size}");
}

#[test]
fn deletes_are_announced_in_every_strategy() {
    for strategy in Strategy::ALL {
        let mut e = forced(strategy);
        e.handle_delete(Instant::from_millis(1), "user:42").unwrap();
        let effects = drain(&mut e);
        assert_eq!(effects.len(), 1, "{strategy}");
        assert_eq!(effects[0].published_keys().unwrap(), ["user:42"]);
        assert_eq!(effects[0].json().unwrap()["strategy"], strategy.as_str());
        assert_eq!(
            e.stats().total_writes,
            0,
            "a delete is not a write for the rate"
        );
    }
}

#[test]
fn writes_of_many_keys_announce_as_one_message_in_eager_and_join_the_batch_otherwise() {
    let keys = ["a", "b", "a", "c"];
    let mut eager = forced(Strategy::Eager);
    assert_eq!(
        eager.handle_write_many(Instant::from_millis(1), &keys),
        Ok(4)
    );
    let effects = drain(&mut eager);
    let sent = publishes(&effects);
    assert_eq!(sent.len(), 1, "one invalidation for the whole call");
    assert_eq!(sent[0].published_keys().unwrap(), ["a", "b", "c"]);

    let mut ttl = follower();
    assert_eq!(ttl.handle_write_many(Instant::from_millis(1), &keys), Ok(4));
    assert!(drain(&mut ttl).is_empty());

    let mut batched = forced(Strategy::Batched);
    assert_eq!(
        batched.handle_write_many(Instant::from_millis(1), &keys),
        Ok(4)
    );
    assert!(
        publishes(&drain(&mut batched)).is_empty(),
        "sent with the batch"
    );

    let long = "k".repeat(100_000);
    let refused = eager.handle_write_many(Instant::from_millis(2), &["x", &long]);
    assert!(matches!(refused, Err(WriteError::KeyTooLong { .. })));
    assert!(drain(&mut eager).is_empty(), "nothing announced");
}
