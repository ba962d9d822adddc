//! Terms heard on the channel are verified with the store, not believed:
//! forged decisions can neither freeze nor steer a fleet (issue 11, findings
//! 1 and 2, replayed against the engine with an explicit store).

mod common;

use aci_core::engine::Timer;
use aci_core::{
    Config, Engine, Handled, Instant, LeaseOp, LeaseReply, RejectReason, Role, Strategy, MAX_TERM,
};
use common::{drain, Owned};

const STRATEGY: &str = "aci:strategy";

fn decision(strategy: &str, source: &str, term: u64) -> Vec<u8> {
    format!(
        r#"{{"action": "strategy_update", "strategy": "{strategy}", "write_rate": 1.0, "timestamp": 1.0, "source": "{source}", "term": {term}}}"#
    )
    .into_bytes()
}

fn lease_ops(engine: &mut Engine) -> Vec<LeaseOp> {
    drain(engine)
        .into_iter()
        .filter_map(|e| match e {
            Owned::Lease { op, .. } => Some(op),
            _ => None,
        })
        .collect()
}

/// A candidate told by the store that `boss` holds term 3, then following
/// its eager decision.
fn follower_of_boss(config: Config) -> Engine {
    let mut e = Engine::new(config, "me").unwrap();
    e.start(Instant::ZERO);
    e.handle_timeout(Instant::ZERO);
    drain(&mut e);
    e.handle_lease(
        Instant::ZERO,
        LeaseReply::Held {
            term: 3,
            holder: "boss",
        },
    );
    e.handle_message(Instant::ZERO, STRATEGY, &decision("eager", "boss", 3))
        .unwrap();
    assert_eq!(e.strategy(), Strategy::Eager);
    drain(&mut e);
    e
}

#[test]
fn the_largest_forged_term_never_becomes_the_floor_of_the_next_grant() {
    // Finding 1: one forged decision with the largest term the decoder
    // accepts, then the controller stops. The next request for the lease
    // asks for a term above what the store confirmed (3), not above 2^53 - 1.
    let mut e = follower_of_boss(Config::default());
    let forged = decision("ttl", "mallory", MAX_TERM);
    let handled = e
        .handle_message(Instant::from_millis(100), STRATEGY, &forged)
        .unwrap();
    assert_eq!(handled, Handled::DecisionVerifying);
    assert_eq!(
        lease_ops(&mut e),
        [LeaseOp::Acquire { min_term: 3 }],
        "the verification is the candidate's own request"
    );
    e.handle_lease(
        Instant::from_millis(101),
        LeaseReply::Held {
            term: 3,
            holder: "boss",
        },
    );
    assert_eq!(
        e.strategy(),
        Strategy::Eager,
        "the forgery was not followed"
    );
    assert_eq!(e.stats().rejected.get(RejectReason::UnconfirmedTerm), 1);
    // The store hands the lease on (boss stopped); the next candidate asks
    // above 3 and the followers accept the term it gets.
    e.handle_timeout(Instant::from_secs(4));
    assert_eq!(lease_ops(&mut e), [LeaseOp::Acquire { min_term: 3 }]);
}

#[test]
fn a_flood_of_forged_newer_terms_does_not_steer_a_forced_follower() {
    // Finding 2: forged "ttl" decisions every 0.4 s with growing terms. A
    // forced follower asks the store (a Query), at most once per interval.
    let config = Config::builder().role(Role::Follower).build().unwrap();
    let mut e = Engine::new(config, "me").unwrap();
    e.start(Instant::ZERO);
    // The store named boss; its decision is followed.
    e.handle_message(Instant::ZERO, STRATEGY, &decision("eager", "boss", 3))
        .unwrap();
    assert_eq!(lease_ops(&mut e), [LeaseOp::Query]);
    e.handle_lease(
        Instant::ZERO,
        LeaseReply::Held {
            term: 3,
            holder: "boss",
        },
    );
    assert_eq!(e.strategy(), Strategy::Eager);

    let mut queries = 0u32;
    let mut now = Instant::ZERO;
    for i in 0..30u64 {
        now = Instant::from_millis(3_000 + 400 * i);
        e.handle_timeout(now);
        let forged = decision("ttl", "mallory", 999 + i);
        e.handle_message(now, STRATEGY, &forged).unwrap();
        // The store answers every query at once: boss still holds term 3.
        for op in lease_ops(&mut e) {
            assert_eq!(op, LeaseOp::Query);
            queries += 1;
            e.handle_lease(
                now,
                LeaseReply::Held {
                    term: 3,
                    holder: "boss",
                },
            );
        }
        // Boss keeps deciding, every 3 s, and is followed throughout.
        if i % 7 == 0 {
            e.handle_message(now, STRATEGY, &decision("eager", "boss", 3))
                .unwrap();
        }
        assert_eq!(e.strategy(), Strategy::Eager, "steered at {now}");
    }
    let elapsed_intervals = (now - Instant::from_secs(3)).as_secs_f64() / 3.0;
    assert!(
        f64::from(queries) <= elapsed_intervals.ceil() + 1.0,
        "{queries} queries in {elapsed_intervals:.1} intervals"
    );
    assert!(e.stats().rejected.get(RejectReason::UnconfirmedTerm) >= 25);
    assert_eq!(e.stats().verifications, u64::from(queries) + 1);
}

#[test]
fn an_answer_sent_before_the_decision_was_heard_does_not_settle_it() {
    // The candidate's routine request is in flight when the new controller's
    // first decision arrives: its answer may predate the election.
    let mut e = follower_of_boss(Config::default());
    e.handle_timeout(Instant::from_secs(3));
    assert_eq!(lease_ops(&mut e), [LeaseOp::Acquire { min_term: 3 }]);
    let heard = Instant::from_millis(3_010);
    e.handle_message(heard, STRATEGY, &decision("batched", "heir", 4))
        .unwrap();
    assert!(lease_ops(&mut e).is_empty(), "one request at a time");
    // The old answer: boss. Not a refutation; it asks again when allowed.
    e.handle_lease(
        Instant::from_millis(3_020),
        LeaseReply::Held {
            term: 3,
            holder: "boss",
        },
    );
    assert_eq!(e.stats().rejected.get(RejectReason::UnconfirmedTerm), 0);
    let asked = lease_ops(&mut e);
    assert_eq!(asked, [LeaseOp::Acquire { min_term: 3 }]);
    e.handle_lease(
        Instant::from_millis(3_030),
        LeaseReply::Held {
            term: 4,
            holder: "heir",
        },
    );
    assert_eq!(e.strategy(), Strategy::Batched);
}

#[test]
fn a_refuted_term_is_rejected_at_once_and_the_limit_defers_the_next_question() {
    let mut e = follower_of_boss(Config::default());
    let at = Instant::from_millis(500);
    e.handle_message(at, STRATEGY, &decision("ttl", "mallory", 50))
        .unwrap();
    assert_eq!(lease_ops(&mut e).len(), 1);
    let boss = LeaseReply::Held {
        term: 3,
        holder: "boss",
    };
    e.handle_lease(at, boss);
    // The same forgery again: rejected without asking.
    let again = e
        .handle_message(at, STRATEGY, &decision("ttl", "mallory", 50))
        .unwrap_err();
    assert_eq!(again.reason, RejectReason::UnconfirmedTerm);
    assert!(lease_ops(&mut e).is_empty());
    // A new one within the interval waits for the limit (Timer::Verify).
    e.handle_message(at, STRATEGY, &decision("ttl", "mallory", 51))
        .unwrap();
    assert!(lease_ops(&mut e).is_empty());
    assert_eq!(e.timer(Timer::Verify), Some(Instant::from_millis(3_500)));
    e.handle_timeout(Instant::from_millis(3_500));
    let asked = lease_ops(&mut e);
    assert_eq!(asked.len(), 1, "asked when the limit allowed: {asked:?}");
    e.handle_lease(Instant::from_millis(3_500), boss);
    assert_eq!(e.strategy(), Strategy::Eager);
    assert_eq!(e.stats().rejected.get(RejectReason::UnconfirmedTerm), 3);
}

#[test]
fn terms_beyond_the_bound_from_the_store_are_not_believed() {
    let mut e = Engine::new(Config::default(), "me").unwrap();
    e.start(Instant::ZERO);
    e.handle_timeout(Instant::ZERO);
    drain(&mut e);
    e.handle_lease(
        Instant::ZERO,
        LeaseReply::Held {
            term: MAX_TERM + 1,
            holder: "me",
        },
    );
    assert!(!e.is_controller());
    assert_eq!(e.known_controller(), None);
    assert_eq!(e.stats().lease_failures, 1);
}

#[test]
fn a_rebroadcast_of_the_waiting_decision_does_not_postpone_it() {
    // The heir's decision arrives twice before the store answers the
    // question asked on the first: that answer still settles it.
    let mut e = follower_of_boss(Config::default());
    let heard = Instant::from_millis(100);
    e.handle_message(heard, STRATEGY, &decision("batched", "heir", 4))
        .unwrap();
    assert_eq!(lease_ops(&mut e).len(), 1);
    e.handle_message(
        Instant::from_millis(150),
        STRATEGY,
        &decision("batched", "heir", 4),
    )
    .unwrap();
    assert!(
        lease_ops(&mut e).is_empty(),
        "the question is already asked"
    );
    e.handle_lease(
        Instant::from_millis(200),
        LeaseReply::Held {
            term: 4,
            holder: "heir",
        },
    );
    assert_eq!(e.strategy(), Strategy::Batched);
    assert_eq!(e.stats().rejected.get(RejectReason::UnconfirmedTerm), 0);
}
