//! Names on one server and on a Redis Cluster, and invalidations spread
//! over buckets: one message per bucket, received on any bucket's channel,
//! a lost channel dropping only its bucket.

mod common;

use std::collections::BTreeMap;

use aci_core::engine::Timer;
use aci_core::naming::{Naming, MAX_BUCKETS};
use aci_core::{
    BucketDrop, Config, ConfigError, DropReason, Duration, Engine, Handled, Instant, RejectReason,
    Strategy,
};
use common::{drain, write, Owned};

fn config(naming: Naming) -> Config {
    Config::builder()
        .namespace("ns")
        .is_controller(false)
        .naming(naming)
        .build()
        .unwrap()
}

fn engine(naming: Naming, strategy: Strategy) -> Engine {
    let mut engine = Engine::new(config(naming), "me").unwrap();
    engine.start(Instant::ZERO);
    engine.force_strategy(Instant::ZERO, Some(strategy));
    drain(&mut engine);
    engine
}

/// Published invalidations as `channel -> keys`, every key once.
fn by_channel(effects: &[Owned]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for effect in effects {
        if let (Owned::Publish { channel, .. }, Some(keys)) = (effect, effect.published_keys()) {
            out.entry(channel.clone()).or_default().extend(keys);
        }
    }
    out
}

#[test]
fn one_server_keeps_the_originals_names() {
    let c = config(Naming::Server);
    assert_eq!(c.invalidation_channel(), "aci:ns:invalidation");
    assert_eq!(c.strategy_channel(), "aci:ns:strategy");
    assert_eq!(c.lease_key(), "aci:ns:lease");
    assert_eq!(c.key_prefix(), "aci:ns:");
    assert_eq!(c.naming().buckets(), 1);
    assert_eq!(
        c.invalidation_channels().collect::<Vec<_>>(),
        ["aci:ns:invalidation"]
    );
}

#[test]
fn a_cluster_tags_the_control_plane_and_never_the_data_keys() {
    let c = config(Naming::Sharded { buckets: 1 });
    assert_eq!(c.lease_key(), "aci:{ns}:lease");
    assert_eq!(c.strategy_channel(), "aci:{ns}:strategy");
    assert_eq!(c.invalidation_channel(), "aci:{ns}:invalidation");
    assert_eq!(c.key_prefix(), "aci:ns:", "data keys are not one slot");

    let c = config(Naming::Sharded { buckets: 3 });
    assert_eq!(
        c.invalidation_channels().collect::<Vec<_>>(),
        [
            "aci:{ns/0}:invalidation",
            "aci:{ns/1}:invalidation",
            "aci:{ns/2}:invalidation"
        ]
    );
    assert_eq!(c.invalidation_channel(), "aci:{ns/0}:invalidation");

    // Classic: the original's channels (Python followers listen there),
    // only the lease tagged so that its script runs in one slot.
    let c = config(Naming::Classic);
    assert_eq!(c.invalidation_channel(), "aci:ns:invalidation");
    assert_eq!(c.strategy_channel(), "aci:ns:strategy");
    assert_eq!(c.lease_key(), "aci:{ns}:lease");

    // No namespace: the prefix is the tag.
    let c = Config::builder()
        .naming(Naming::Sharded { buckets: 2 })
        .build()
        .unwrap();
    assert_eq!(c.lease_key(), "aci:{aci}:lease");
    assert_eq!(
        c.invalidation_channel_of(1).as_str(),
        "aci:{aci/1}:invalidation"
    );
    assert_eq!(c.key_prefix(), "");
}

#[test]
fn cluster_names_refuse_braces_and_bucket_counts_out_of_range() {
    for (builder, field) in [
        (
            Config::builder()
                .namespace("a{b")
                .naming(Naming::Sharded { buckets: 1 }),
            "namespace",
        ),
        (
            Config::builder()
                .channel_prefix("x}")
                .naming(Naming::Classic),
            "channel_prefix",
        ),
        (
            Config::builder().naming(Naming::Sharded { buckets: 0 }),
            "naming",
        ),
        (
            Config::builder().naming(Naming::Sharded {
                buckets: MAX_BUCKETS + 1,
            }),
            "naming",
        ),
    ] {
        let err: ConfigError = builder.build().unwrap_err();
        assert_eq!(err.field(), field, "{err}");
    }
    // On one server a brace is just a character, as it was.
    assert!(Config::builder().namespace("a{b").build().is_ok());
    assert!(Config::builder()
        .naming(Naming::Sharded {
            buckets: MAX_BUCKETS
        })
        .build()
        .is_ok());
}

#[test]
fn only_a_buckets_own_channel_names_it() {
    let c = config(Naming::Sharded { buckets: 4 });
    for bucket in 0..4 {
        let name = c.invalidation_channel_of(bucket);
        assert_eq!(c.bucket_of_channel(&name), Some(bucket));
    }
    for odd in [
        "aci:{ns/4}:invalidation",
        "aci:{ns/01}:invalidation",
        "aci:{ns/-1}:invalidation",
        "aci:{ns/+1}:invalidation",
        "aci:{ns/}:invalidation",
        "aci:{ns/99999}:invalidation",
        "aci:{ns}:invalidation",
        "aci:{other/1}:invalidation",
        "aci:ns:invalidation",
        "aci:{ns/1}:strategy",
        "aci:{ns/1}:invalidation ",
    ] {
        assert_eq!(c.bucket_of_channel(odd), None, "{odd}");
    }
}

#[test]
fn an_eager_write_goes_to_its_keys_bucket() {
    let naming = Naming::Sharded { buckets: 8 };
    let mut e = engine(naming, Strategy::Eager);
    let c = config(naming);
    for key in ["user:1", "user:2", "user:3", "cart:9"] {
        write(&mut e, Instant::from_millis(1), key).unwrap();
        let published = by_channel(&drain(&mut e));
        let expected = c.invalidation_channel_of(c.bucket_of(key)).to_string();
        assert_eq!(
            published,
            BTreeMap::from([(expected, vec![format!("aci:ns:{key}")])])
        );
    }
}

#[test]
fn a_batch_splits_by_bucket_and_only_by_bucket() {
    let naming = Naming::Sharded { buckets: 4 };
    let c = config(naming);
    let mut e = engine(naming, Strategy::Batched);
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    for key in &keys {
        write(&mut e, Instant::from_millis(1), key).unwrap();
    }
    let at = e.timer(Timer::BatchFlush).unwrap();
    e.handle_timeout(at);
    let effects = drain(&mut e);
    let published = by_channel(&effects);
    // One message per bucket that holds a key, each with exactly its keys,
    // in the order they were written.
    assert_eq!(effects.len(), published.len(), "one message per bucket");
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in &keys {
        let channel = c.invalidation_channel_of(c.bucket_of(key)).to_string();
        expected
            .entry(channel)
            .or_default()
            .push(format!("aci:ns:{key}"));
    }
    assert_eq!(published, expected);
    assert!(
        expected.len() > 1,
        "40 keys land in more than one of 4 buckets"
    );
    assert_eq!(e.stats().keys_sent, 40);
    assert_eq!(e.stats().invalidations_sent, expected.len() as u64);
}

/// A batch whose per-bucket messages do not fit the outbox at once goes
/// out over several drains, every key exactly once.
#[test]
fn a_batch_too_big_for_one_drain_resumes_where_it_stopped() {
    let naming = Naming::Sharded {
        buckets: MAX_BUCKETS,
    };
    let mut e = engine(naming, Strategy::Batched);
    // 200 keys of ~60 bytes in mostly distinct buckets: 200 envelopes and
    // 12 KB of keys, more than the outbox holds in one go.
    let keys: Vec<String> = (0..200)
        .map(|i| format!("{i:04}:{}", "x".repeat(56)))
        .collect();
    for key in &keys {
        write(&mut e, Instant::from_millis(1), key).unwrap();
        assert!(drain(&mut e).is_empty());
    }
    let mut now = e.timer(Timer::BatchFlush).unwrap();
    let mut sent: Vec<String> = Vec::new();
    for _ in 0..20 {
        e.handle_timeout(now);
        for keys in by_channel(&drain(&mut e)).into_values() {
            sent.extend(keys);
        }
        if sent.len() >= keys.len() {
            break;
        }
        now += Duration::from_millis(10);
    }
    assert!(
        e.stats().outbox_stalls >= 1,
        "the outbox filled at least once"
    );
    sent.sort();
    let mut expected: Vec<String> = keys.iter().map(|k| format!("aci:ns:{k}")).collect();
    expected.sort();
    assert_eq!(sent, expected, "every key once");
}

#[test]
fn invalidations_arrive_on_any_buckets_channel() {
    let naming = Naming::Sharded { buckets: 4 };
    let c = config(naming);
    let mut e = engine(naming, Strategy::Eager);
    let msg = br#"{"action": "invalidate", "keys": ["aci:ns:a"], "strategy": "eager", "timestamp": 1.0, "source": "x"}"#;
    let on = c.invalidation_channel_of(3);
    assert_eq!(
        e.handle_message(Instant::ZERO, &on, msg),
        Ok(Handled::Invalidation {
            keys: 1,
            foreign: 0
        })
    );
    assert_eq!(drain(&mut e), [Owned::Invalidate(vec!["aci:ns:a".into()])]);
    // A channel that is no bucket of ours is refused, as any foreign channel.
    assert!(e
        .handle_message(Instant::ZERO, "aci:{ns/4}:invalidation", msg)
        .is_err());
    assert!(e
        .handle_message(Instant::ZERO, "aci:ns:invalidation", msg)
        .is_err());
    assert_eq!(e.stats().rejected.get(RejectReason::WrongChannel), 2);
    assert!(drain(&mut e).is_empty());
}

#[test]
fn a_lost_channel_drops_its_bucket_and_a_lost_control_channel_everything() {
    let naming = Naming::Sharded { buckets: 4 };
    let c = config(naming);
    let mut e = engine(naming, Strategy::Eager);
    e.handle_channel_lost(Instant::ZERO, &c.invalidation_channel_of(1));
    assert_eq!(
        drain(&mut e),
        [Owned::InvalidateBucket(BucketDrop {
            bucket: 1,
            buckets: 4,
            reason: DropReason::SubscriptionLost
        })]
    );
    e.handle_channel_lost(Instant::ZERO, c.strategy_channel());
    assert_eq!(
        drain(&mut e),
        [Owned::InvalidateAll(DropReason::SubscriptionLost)]
    );
    // With one invalidation channel, losing it is losing everything.
    let mut one = engine(Naming::Sharded { buckets: 1 }, Strategy::Eager);
    let only = config(Naming::Sharded { buckets: 1 });
    one.handle_channel_lost(Instant::ZERO, only.invalidation_channel());
    assert_eq!(
        drain(&mut one),
        [Owned::InvalidateAll(DropReason::SubscriptionLost)]
    );
}
