//! The controller election, input by input: the lease requests an instance
//! makes, how it acts on the answers, and which decisions it accepts.

mod common;

use aci_core::engine::Timer;
use aci_core::{
    Config, Duration, Engine, Handled, Instant, LeaseOp, LeaseReply, RejectReason, Role, Strategy,
};
use common::{drain, Owned};

const STRATEGY: &str = "aci:strategy";

fn auto(id: &str, config: Config) -> Engine {
    let mut e = Engine::new(config, id).unwrap();
    e.start(Instant::ZERO);
    e
}

fn lease_ops(effects: &[Owned]) -> Vec<LeaseOp> {
    effects
        .iter()
        .filter_map(|e| match e {
            Owned::Lease { op, .. } => Some(*op),
            _ => None,
        })
        .collect()
}

fn decisions(effects: &[Owned]) -> Vec<serde_json::Value> {
    effects
        .iter()
        .filter_map(Owned::json)
        .filter(|j| j["action"] == "strategy_update")
        .collect()
}

fn decision(strategy: &str, source: &str, term: Option<u64>) -> Vec<u8> {
    let term = term.map_or(String::new(), |t| format!(r#", "term": {t}"#));
    format!(
        r#"{{"action": "strategy_update", "strategy": "{strategy}", "write_rate": 1.0, "timestamp": 1.0, "source": "{source}"{term}}}"#
    )
    .into_bytes()
}

/// An engine that asked for the lease at start and was told `holder` has it.
fn elected(id: &str, holder: &str, term: u64) -> Engine {
    let mut e = auto(id, Config::default());
    e.handle_timeout(Instant::ZERO);
    let asked = lease_ops(&drain(&mut e));
    assert_eq!(asked, [LeaseOp::Acquire { min_term: 0 }]);
    e.handle_lease(Instant::ZERO, LeaseReply::Held { term, holder });
    e
}

#[test]
fn auto_is_the_default_and_asks_for_the_lease_at_once() {
    let mut e = auto("me", Config::default());
    assert_eq!(e.role(), Role::Auto);
    assert!(!e.is_controller(), "not before the store says so");
    assert_eq!(e.timer(Timer::Lease), Some(Instant::ZERO));
    e.handle_timeout(Instant::ZERO);
    let effects = drain(&mut e);
    assert_eq!(
        effects,
        [Owned::Lease {
            op: LeaseOp::Acquire { min_term: 0 },
            ttl: Duration::from_millis(4500),
        }]
    );
    assert_eq!(e.timer(Timer::Lease), Some(Instant::from_secs(3)));
}

#[test]
fn the_winner_decides_at_once_with_its_term_and_renews_every_interval() {
    let mut e = elected("me", "me", 4);
    assert!(e.is_controller());
    assert_eq!(e.lease_term(), Some(4));
    let effects = drain(&mut e);
    let sent = decisions(&effects);
    assert_eq!(sent.len(), 1, "{effects:?}");
    assert_eq!(sent[0]["term"], 4);
    assert_eq!(sent[0]["source"], "me");
    assert_eq!(
        e.timer(Timer::LeaseExpiry),
        Some(Instant::from_millis(4500))
    );
    assert_eq!(
        e.timer(Timer::RateReport),
        None,
        "a controller reports to nobody"
    );
    assert_eq!(e.stats().leases_won, 1);

    e.handle_timeout(Instant::from_secs(3));
    let effects = drain(&mut e);
    assert_eq!(lease_ops(&effects), [LeaseOp::Renew { term: 4 }]);
    assert_eq!(decisions(&effects).len(), 1, "the tick's decision");
    // Confirmed late: the lease counts from when the renewal was sent.
    e.handle_lease(
        Instant::from_millis(3400),
        LeaseReply::Held {
            term: 4,
            holder: "me",
        },
    );
    assert_eq!(
        e.timer(Timer::LeaseExpiry),
        Some(Instant::from_millis(7500))
    );
    assert_eq!(e.stats().leases_won, 1, "a renewal is not a new win");
}

#[test]
fn an_unconfirmed_lease_is_given_up_before_anyone_else_can_win_it() {
    let mut e = elected("me", "me", 1);
    drain(&mut e);
    e.handle_timeout(Instant::from_secs(3));
    drain(&mut e);
    e.handle_lease(Instant::from_millis(3100), LeaseReply::Failed);
    assert!(e.is_controller(), "still surely ours until 4.5 s");
    e.handle_timeout(Instant::from_millis(4500));
    assert!(!e.is_controller());
    assert_eq!(e.stats().leases_lost, 1);
    assert_eq!(e.stats().lease_failures, 1);
    // It asks again at once: if the lease is still its own, it keeps it.
    let effects = drain(&mut e);
    assert!(
        decisions(&effects).is_empty(),
        "no decision without a lease"
    );
    assert_eq!(lease_ops(&effects), [LeaseOp::Acquire { min_term: 1 }]);
}

#[test]
fn a_refused_renewal_steps_down_at_once() {
    let mut e = elected("me", "me", 1);
    drain(&mut e);
    e.handle_timeout(Instant::from_secs(3));
    drain(&mut e);
    e.handle_lease(
        Instant::from_secs(3),
        LeaseReply::Held {
            term: 2,
            holder: "other",
        },
    );
    assert!(!e.is_controller());
    assert_eq!(e.known_controller(), Some((2, "other")));
    assert_eq!(e.timer(Timer::ControllerTick), None);
    assert!(
        e.timer(Timer::RateReport).is_some(),
        "it reports its rate again"
    );
}

#[test]
fn a_candidate_follows_the_holder_and_rejects_everyone_else() {
    let mut e = elected("me", "boss", 3);
    assert!(!e.is_controller());
    drain(&mut e);
    let at = Instant::from_secs(1);
    e.handle_message(at, STRATEGY, &decision("eager", "boss", Some(3)))
        .unwrap();
    assert_eq!(e.strategy(), Strategy::Eager);

    let reject = |e: &mut Engine, payload: Vec<u8>| {
        e.handle_message(at, STRATEGY, &payload).unwrap_err().reason
    };
    assert_eq!(
        reject(&mut e, decision("ttl", "intruder", Some(3))),
        RejectReason::NotTheController
    );
    assert_eq!(
        reject(&mut e, decision("ttl", "old-boss", Some(2))),
        RejectReason::StaleTerm
    );
    assert_eq!(
        reject(&mut e, decision("ttl", "python", None)),
        RejectReason::NoTerm
    );
    assert_eq!(e.strategy(), Strategy::Eager, "none of them was applied");
    let rejected = e.stats().rejected;
    assert_eq!(rejected.get(RejectReason::NotTheController), 1);
    assert_eq!(rejected.get(RejectReason::StaleTerm), 1);
    assert_eq!(rejected.get(RejectReason::NoTerm), 1);

    // A newer term may be a new election, or a forgery: the store is asked
    // (the candidate's own request, sent early), and the decision waits.
    let handled = e
        .handle_message(at, STRATEGY, &decision("batched", "heir", Some(4)))
        .unwrap();
    assert_eq!(handled, Handled::DecisionVerifying);
    assert_eq!(
        e.strategy(),
        Strategy::Eager,
        "not before the store says so"
    );
    assert_eq!(
        lease_ops(&drain(&mut e)),
        [LeaseOp::Acquire { min_term: 3 }],
        "a heard term never raises the floor"
    );
    e.handle_lease(
        at,
        LeaseReply::Held {
            term: 4,
            holder: "heir",
        },
    );
    assert_eq!(e.strategy(), Strategy::Batched);
    assert_eq!(e.known_controller(), Some((4, "heir")));
    assert_eq!(
        reject(&mut e, decision("ttl", "boss", Some(3))),
        RejectReason::StaleTerm,
        "the deposed controller can no longer steer"
    );
}

#[test]
fn termless_decisions_are_followed_when_no_controller_is_elected_or_by_choice() {
    // A follower that never heard of a lease: the original's fleet.
    let mut plain = auto(
        "me",
        Config::builder().is_controller(false).build().unwrap(),
    );
    plain
        .handle_message(Instant::ZERO, STRATEGY, &decision("eager", "python", None))
        .unwrap();
    assert_eq!(plain.strategy(), Strategy::Eager);

    // With an elected controller, only by choice.
    let config = Config::builder()
        .accept_termless_decisions(true)
        .build()
        .unwrap();
    let mut e = auto("me", config);
    e.handle_timeout(Instant::ZERO);
    drain(&mut e);
    e.handle_lease(
        Instant::ZERO,
        LeaseReply::Held {
            term: 1,
            holder: "boss",
        },
    );
    e.handle_message(
        Instant::ZERO,
        STRATEGY,
        &decision("batched", "python", None),
    )
    .unwrap();
    assert_eq!(e.strategy(), Strategy::Batched);
}

#[test]
fn a_silent_controller_is_forgotten() {
    let mut e = elected("me", "boss", 5);
    drain(&mut e);
    // Nothing heard for lease_ttl + interval (7.5 s): the store may have
    // restarted empty and counted terms from 1 again. Such a lower term is
    // verified like a newer one.
    let later = Instant::from_secs(8);
    let handled = e
        .handle_message(later, STRATEGY, &decision("eager", "fresh", Some(1)))
        .unwrap();
    assert_eq!(handled, Handled::DecisionVerifying);
    assert_eq!(
        lease_ops(&drain(&mut e)),
        [LeaseOp::Acquire { min_term: 5 }]
    );
    e.handle_lease(
        later,
        LeaseReply::Held {
            term: 1,
            holder: "fresh",
        },
    );
    assert_eq!(e.strategy(), Strategy::Eager);
    assert_eq!(e.known_controller(), Some((1, "fresh")));
}

#[test]
fn a_heard_newer_term_deposes_the_holder_only_when_the_store_confirms_it() {
    let at = Instant::from_secs(1);
    // A forgery: the store still names us.
    let mut e = elected("me", "me", 1);
    drain(&mut e);
    e.handle_message(at, STRATEGY, &decision("ttl", "heir", Some(2)))
        .unwrap();
    assert!(e.is_controller(), "a heard term deposes nobody");
    assert_eq!(lease_ops(&drain(&mut e)), [LeaseOp::Renew { term: 1 }]);
    e.handle_lease(
        at,
        LeaseReply::Held {
            term: 1,
            holder: "me",
        },
    );
    assert!(e.is_controller());
    assert_eq!(e.stats().leases_lost, 0);
    assert_eq!(e.stats().rejected.get(RejectReason::UnconfirmedTerm), 1);

    // A real successor (our lease was lost in the store): we step down and follow.
    let mut e = elected("me", "me", 1);
    drain(&mut e);
    e.handle_message(at, STRATEGY, &decision("eager", "heir", Some(2)))
        .unwrap();
    drain(&mut e);
    e.handle_lease(
        at,
        LeaseReply::Held {
            term: 2,
            holder: "heir",
        },
    );
    assert!(!e.is_controller());
    assert_eq!(e.strategy(), Strategy::Eager);
    assert_eq!(e.stats().leases_lost, 1);
}

#[test]
fn stopping_releases_the_lease() {
    let mut e = elected("me", "me", 7);
    drain(&mut e);
    e.stop(Instant::from_secs(1));
    assert_eq!(lease_ops(&drain(&mut e)), [LeaseOp::Release { term: 7 }]);
    assert!(!e.is_controller());
    // The answer to a release, or any late answer, changes nothing.
    e.handle_lease(Instant::from_secs(1), LeaseReply::Vacant);
    assert!(!e.is_controller());
}

#[test]
fn a_store_without_leases_makes_an_auto_instance_a_termless_controller() {
    let mut e = auto("me", Config::default());
    e.handle_timeout(Instant::ZERO);
    drain(&mut e);
    e.handle_lease(Instant::ZERO, LeaseReply::Unsupported);
    assert!(e.is_controller());
    assert_eq!(e.timer(Timer::Lease), None, "it does not ask again");
    e.handle_timeout(Instant::from_secs(3));
    let sent = decisions(&drain(&mut e));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].get("term").is_none());
}

#[test]
fn answers_nobody_asked_for_are_ignored() {
    let mut e = auto("me", Config::default());
    e.handle_lease(
        Instant::ZERO,
        LeaseReply::Held {
            term: 1,
            holder: "me",
        },
    );
    assert!(!e.is_controller());
    assert!(drain(&mut e).is_empty());
}

#[test]
fn malformed_terms_are_rejected() {
    let mut e = auto(
        "me",
        Config::builder().is_controller(false).build().unwrap(),
    );
    for term in ["0", "-1", "1.5", "1e3", "\"3\"", "9007199254740992", "NaN"] {
        let payload = format!(
            r#"{{"action": "strategy_update", "strategy": "eager", "source": "x", "term": {term}}}"#
        );
        let rejected = e
            .handle_message(Instant::ZERO, STRATEGY, payload.as_bytes())
            .unwrap_err();
        assert_eq!(rejected.reason, RejectReason::WrongType, "term {term}");
    }
    assert_eq!(e.strategy(), Strategy::Ttl);
}

/// The store's side of the lease, as the Redis scripts keep it.
#[derive(Default)]
struct Store {
    lease: Option<(u64, String, Instant)>,
    counter: u64,
}

impl Store {
    fn answer(&mut self, now: Instant, holder: &str, op: LeaseOp, ttl: Duration) -> (u64, String) {
        if self.lease.as_ref().is_some_and(|l| l.2 <= now) {
            self.lease = None;
        }
        match (op, &mut self.lease) {
            (_, Some((term, id, expires))) if id == holder => {
                *expires = now + ttl;
                (*term, id.clone())
            }
            (_, Some((term, id, _))) => (*term, id.clone()),
            (LeaseOp::Acquire { min_term }, None) => {
                self.counter = (self.counter + 1).max(min_term + 1);
                self.lease = Some((self.counter, holder.to_owned(), now + ttl));
                (self.counter, holder.to_owned())
            }
            _ => (0, String::new()),
        }
    }
}

#[test]
fn a_dead_controller_is_replaced_within_three_intervals() {
    let mut store = Store::default();
    let mut fleet: Vec<Engine> = ["a", "b", "c"]
        .iter()
        .map(|id| auto(id, Config::default()))
        .collect();
    let mut alive = [true; 3];
    let step = Duration::from_millis(100);
    let mut now = Instant::ZERO;
    let mut crashed_at = None;
    let mut taken_over = None;
    while now < Instant::from_secs(40) {
        for (i, e) in fleet.iter_mut().enumerate() {
            if !alive[i] {
                continue;
            }
            e.handle_timeout(now);
            let effects = drain(e);
            for op in lease_ops(&effects) {
                let (term, holder) =
                    store.answer(now, e.instance_id(), op, Duration::from_millis(4500));
                if !matches!(op, LeaseOp::Release { .. }) && term > 0 {
                    e.handle_lease(
                        now,
                        LeaseReply::Held {
                            term,
                            holder: &holder,
                        },
                    );
                    drain(e);
                }
            }
        }
        let controllers: Vec<usize> = (0..3)
            .filter(|&i| alive[i] && fleet[i].is_controller())
            .collect();
        assert!(
            controllers.len() <= 1,
            "two controllers at {now}: {controllers:?}"
        );
        if crashed_at.is_none() && now >= Instant::from_secs(10) {
            // The controller dies without releasing anything.
            alive[controllers[0]] = false;
            crashed_at = Some(now);
        }
        let after_crash = crashed_at.is_some_and(|c| now > c);
        if after_crash && taken_over.is_none() && controllers.len() == 1 {
            taken_over = Some(now);
        }
        now += step;
    }
    let took = taken_over.unwrap() - crashed_at.unwrap();
    assert!(took <= Duration::from_secs(9), "takeover took {took}");
}

#[test]
fn a_new_controller_decides_no_lower_than_the_rate_its_predecessor_announced() {
    // The old controller did the writing: its writes were in no report, so
    // the heir's table alone reads the fleet as idle.
    let config = Config::builder()
        .high_threshold(50.0)
        .low_threshold(10.0)
        .build()
        .unwrap();
    let mut e = auto("heir", config);
    e.handle_timeout(Instant::ZERO);
    drain(&mut e);
    e.handle_lease(
        Instant::ZERO,
        LeaseReply::Held {
            term: 1,
            holder: "boss",
        },
    );
    let busy = r#"{"action": "strategy_update", "strategy": "eager", "write_rate": 200.0, "timestamp": 1.0, "source": "boss", "term": 1}"#;
    e.handle_message(Instant::from_secs(3), STRATEGY, busy.as_bytes())
        .unwrap();
    assert_eq!(e.strategy(), Strategy::Eager);
    // Boss dies; the lease expires; the heir wins it at its next request.
    e.handle_timeout(Instant::from_secs(6));
    drain(&mut e);
    e.handle_lease(
        Instant::from_secs(6),
        LeaseReply::Held {
            term: 2,
            holder: "heir",
        },
    );
    assert!(e.is_controller());
    let sent = decisions(&drain(&mut e));
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["strategy"], "eager",
        "the heir read the fleet as idle"
    );
}
