//! (e) In batched mode every written key is published exactly once by the
//! next flush, leave or stop; the buffer never exceeds its capacity; every
//! payload stays within `max_message_bytes`.

mod common;

use std::collections::BTreeSet;

use aci_core::batch::BATCH_KEYS;
use aci_core::{Config, Duration, Engine, Instant, Strategy};
use common::{drain, Owned};
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

#[derive(Clone, Debug)]
enum Op {
    Write(String),
    Advance(u64),
    Leave(Strategy),
    Return,
    Stop,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        20 => "[a-e]{1,2}|k[0-9]{1,3}|[é☃\"]{1,3}".prop_map(Op::Write),
        1 => "[x]{3000,9000}".prop_map(Op::Write),
        4 => (0u64..3_000).prop_map(Op::Advance),
        1 => prop::sample::select(vec![Strategy::Ttl, Strategy::Eager]).prop_map(Op::Leave),
        1 => Just(Op::Return),
        1 => Just(Op::Stop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_key_is_published_exactly_once(
        ops in prop::collection::vec(op(), 1..300),
        max_keys in 1usize..50,
        max_bytes in 1024usize..32768,
        namespaced in any::<bool>(),
    ) {
        let config = Config::builder()
            .is_controller(false)
            .max_message_keys(max_keys)
            .max_message_bytes(max_bytes)
            .namespace(if namespaced { "ns" } else { "" })
            .build()
            .unwrap();
        let prefix = config.key_prefix().to_owned();
        let mut e = Engine::new(config, "me").unwrap();
        let mut now = Instant::ZERO;
        e.start(now);
        e.force_strategy(now, Some(Strategy::Batched));
        drain(&mut e);
        // Keys written since they were last published.
        let mut pending: BTreeSet<String> = BTreeSet::new();

        let check = |effects: Vec<Owned>, pending: &mut BTreeSet<String>| -> Result<(), TestCaseError> {
            for effect in effects {
                let batched = effect.json().is_some_and(|j| j["strategy"] == "batched");
                if let Some(keys) = effect.published_keys().filter(|_| batched) {
                    let Owned::Publish { payload, .. } = &effect else { unreachable!() };
                    prop_assert!(payload.len() <= max_bytes, "payload of {} > {}", payload.len(), max_bytes);
                    prop_assert!(keys.len() <= max_keys);
                    let unique: BTreeSet<_> = keys.iter().collect();
                    prop_assert_eq!(unique.len(), keys.len(), "a key twice in one message");
                    for key in keys {
                        let user_key = key.strip_prefix(&prefix).unwrap().to_owned();
                        prop_assert!(pending.remove(&user_key), "{} published but not pending", key);
                    }
                }
            }
            Ok(())
        };

        for op in ops {
            match op {
                Op::Write(key) => {
                    if e.handle_write(now, &key).is_ok() && e.strategy() == Strategy::Batched {
                        pending.insert(key);
                    }
                    check(drain(&mut e), &mut pending)?;
                }
                Op::Advance(ms) => {
                    let target = now + Duration::from_millis(ms);
                    while let Some(deadline) = e.poll_timeout().filter(|d| *d <= target) {
                        now = deadline;
                        e.handle_timeout(now);
                        check(drain(&mut e), &mut pending)?;
                        // A flush tick empties the buffer.
                        prop_assert!(pending.is_empty() || e.buffered_keys() == pending.len());
                    }
                    now = target;
                }
                Op::Leave(to) => {
                    e.force_strategy(now, Some(to));
                    check(drain(&mut e), &mut pending)?;
                    prop_assert!(pending.is_empty(), "leaving batched left {:?}", pending);
                }
                Op::Return => {
                    e.force_strategy(now, Some(Strategy::Batched));
                    check(drain(&mut e), &mut pending)?;
                }
                Op::Stop => {
                    e.stop(now);
                    check(drain(&mut e), &mut pending)?;
                    prop_assert!(pending.is_empty(), "stop left {:?}", pending);
                    e.start(now);
                }
            }
            prop_assert!(e.buffered_keys() <= BATCH_KEYS.min(max_keys));
            prop_assert_eq!(e.buffered_keys(), pending.len());
        }
        e.stop(now);
        check(drain(&mut e), &mut pending)?;
        prop_assert!(pending.is_empty());
    }
}
