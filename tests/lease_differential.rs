//! The lease as Redis runs it (the Lua scripts) and as the in-process stores
//! run it (`lease_step`, which the simulator trusts) answer the same random
//! sequences of operations the same way, corrupted counters and foreign
//! values included. Expiry is explicit (a `DEL` of the lease), so no real
//! time is involved.

mod support;

use std::time::Duration;

use aci_cache::transports::lease::{lease_step, LeaseState, LeaseWrite};
use aci_cache::transports::{RedisTransport, Transport};
use aci_core::{LeaseOp, MAX_TERM};
use proptest::prelude::*;
use redis::Commands;
use support::{raw, shared_url, unique_namespace};

const TTL: Duration = Duration::from_secs(60);
const HOLDERS: [&str; 3] = ["a", "b", "node:7"];

#[derive(Clone, Debug)]
enum Step {
    Op(usize, LeaseOp),
    /// The lease expires.
    Expire,
    /// Someone writes the term counter by hand.
    Counter(String),
    /// Someone writes a value that is not a lease into the lease key.
    Foreign(String),
}

fn term() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0..6u64,
        1 => Just(MAX_TERM - 1),
        1 => Just(MAX_TERM),
        1 => Just(MAX_TERM + 1),
        1 => Just(u64::MAX),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let holder = 0..HOLDERS.len();
    prop_oneof![
        4 => (holder.clone(), term()).prop_map(|(h, t)| Step::Op(h, LeaseOp::Acquire { min_term: t })),
        3 => (holder.clone(), 0..6u64).prop_map(|(h, t)| Step::Op(h, LeaseOp::Renew { term: t })),
        2 => (holder.clone(), 0..6u64).prop_map(|(h, t)| Step::Op(h, LeaseOp::Release { term: t })),
        2 => holder.prop_map(|h| Step::Op(h, LeaseOp::Query)),
        2 => Just(Step::Expire),
        1 => prop_oneof![
            Just("9007199254740991".to_owned()),
            Just("9007199254740992".to_owned()),
            Just("99999999999999999999".to_owned()),
            Just("-4".to_owned()),
            Just("junk".to_owned()),
            (0..10u64).prop_map(|n| n.to_string()),
        ].prop_map(Step::Counter),
        1 => prop_oneof![
            Just("0:a".to_owned()),
            Just("9007199254740992:a".to_owned()),
            Just("x:y".to_owned()),
            Just("plain".to_owned()),
        ].prop_map(Step::Foreign),
    ]
}

/// The in-process store: the live lease and the counter.
#[derive(Default)]
struct Model {
    live: Option<(u64, String)>,
    counter: u64,
}

impl Model {
    fn run(&mut self, holder: &str, op: LeaseOp) -> LeaseState {
        let live = self.live.as_ref().map(|(t, h)| (*t, h.as_str()));
        let (write, answer) = lease_step(live, &mut self.counter, holder, op);
        match write {
            LeaseWrite::Grant(term) => self.live = Some((term, holder.to_owned())),
            LeaseWrite::Delete => self.live = None,
            LeaseWrite::Keep | LeaseWrite::Extend => {}
        }
        answer
    }
}

/// Whether a stored value reads as a lease: `{term}:{holder}`, term in range.
fn is_lease(value: &str) -> bool {
    value.split_once(':').is_some_and(|(term, _)| {
        term.bytes().all(|b| b.is_ascii_digit())
            && term
                .parse::<u64>()
                .is_ok_and(|t| (1..=MAX_TERM).contains(&t))
    })
}

fn counter_value(text: &str) -> u64 {
    // What the model's u64 counter holds for a hand-written value: anything
    // that is not a number in range is repaired alike by both stores.
    text.parse::<u64>().unwrap_or(u64::MAX)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn redis_scripts_and_lease_step_agree(steps in proptest::collection::vec(step(), 1..40)) {
        let redis = RedisTransport::open(shared_url()).unwrap();
        let mut conn = raw(&shared_url());
        let key = format!("aci:{}:lease", unique_namespace("differential"));
        let counter_key = format!("{key}:term");
        let mut model = Model::default();
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Op(h, op) => {
                    let holder = HOLDERS[*h];
                    let expected = model.run(holder, *op);
                    let actual = match *op {
                        LeaseOp::Acquire { min_term } => redis.lease_acquire(&key, holder, TTL, min_term),
                        LeaseOp::Renew { term } => redis.lease_renew(&key, holder, term, TTL),
                        LeaseOp::Release { term } => redis.lease_release(&key, holder, term).map(|()| LeaseState::Vacant),
                        LeaseOp::Query => redis.lease_query(&key),
                        _ => unreachable!(),
                    }.unwrap();
                    if !matches!(op, LeaseOp::Release { .. }) {
                        prop_assert_eq!(&actual, &expected, "step {}: {:?}", i, step);
                    }
                    if let LeaseState::Held { term, .. } = actual {
                        prop_assert!((1..=MAX_TERM).contains(&term));
                    }
                }
                Step::Expire => {
                    let _: () = conn.del(&key).unwrap();
                    model.live = None;
                }
                Step::Counter(text) => {
                    let _: () = conn.set(&counter_key, text).unwrap();
                    model.counter = counter_value(text);
                }
                Step::Foreign(text) => {
                    let _: () = conn.set(&key, text).unwrap();
                    model.live = None;
                }
            }
            // The stored lease, read as a lease (a foreign value is none), is the model's.
            let stored: Option<String> = conn.get(&key).unwrap();
            let expected = model.live.as_ref().map(|(t, h)| format!("{t}:{h}"));
            prop_assert_eq!(stored.filter(|v| is_lease(v)), expected, "lease after step {}: {:?}", i, step);
        }
        let _: () = conn.del(&[&key, &counter_key]).unwrap();
    }
}
