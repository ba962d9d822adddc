//! One lost channel of a subscription (a cluster slot moved): from the loss
//! until the channel is heard again, nothing it covers is cached — only
//! that bucket's keys when invalidations are spread over buckets — and what
//! it covers is dropped again once it is back. The instance layer is driven
//! by hand: explicit ordering, no threads, no sleeps.

use aci_cache::instance::{Fill, Instance, Lookup};
use aci_cache::{Builder, Naming};
use aci_core::Instant;
use bytes::Bytes;

fn instance(buckets: u16) -> Instance {
    let settings = Builder::new()
        .namespace("ns")
        .is_controller(false)
        .naming(Naming::Sharded { buckets })
        .settings()
        .unwrap();
    let instance = Instance::new(settings).unwrap();
    instance.start(Instant::ZERO, 0.0);
    instance.subscribed();
    instance
}

fn fill(lookup: Lookup) -> Fill {
    match lookup {
        Lookup::Fill(fill) => fill,
        Lookup::Hit(_) => panic!("a hit, expected a read"),
        Lookup::Wait(_) => panic!("joined a read in flight"),
    }
}

/// Reads `key` from "Redis" (`v`) through the instance; whether it then
/// answers from the near cache.
fn read_then_cached(instance: &Instance, key: &str, now: Instant) -> bool {
    let read = fill(instance.lookup(key, now));
    instance
        .finish_fill(read, Ok(Some(Bytes::from_static(b"v"))), now)
        .unwrap();
    is_hit(instance, key, now)
}

fn is_hit(instance: &Instance, key: &str, now: Instant) -> bool {
    match instance.lookup(key, now) {
        Lookup::Hit(_) => true,
        Lookup::Fill(read) => {
            drop(read);
            false
        }
        Lookup::Wait(_) => false,
    }
}

#[test]
fn a_lost_bucket_channel_stops_caching_its_bucket_only_until_it_is_back() {
    let b = instance(4);
    let config = b.settings().core().clone();
    let now = Instant::from_millis(1);
    let keys: Vec<String> = (0..32).map(|i| format!("k{i}")).collect();
    for key in &keys {
        assert!(read_then_cached(&b, key, now), "{key} cached");
    }
    let lost = config.bucket_of(&keys[0]);
    let channel = config.invalidation_channel_of(lost).to_string();
    let (ours, others): (Vec<&String>, Vec<&String>) =
        keys.iter().partition(|k| config.bucket_of(k) == lost);
    assert!(!ours.is_empty() && !others.is_empty());

    // A read of the lost bucket that began before the loss.
    let early_key = (0..)
        .map(|i| format!("early{i}"))
        .find(|k| config.bucket_of(k) == lost)
        .unwrap();
    let early = fill(b.lookup(&early_key, now));

    b.channel_lost(&channel);
    for key in &others {
        assert!(
            is_hit(&b, key, now),
            "{key}: other buckets were heard throughout"
        );
    }
    for key in &ours {
        assert!(
            !read_then_cached(&b, key, now),
            "{key}: its channel is down, nothing of its bucket is cached"
        );
    }
    // Condemned: it may have read a value whose invalidation is now missed.
    b.finish_fill(early, Ok(Some(Bytes::from_static(b"old"))), now)
        .unwrap();
    assert!(
        !is_hit(&b, &early_key, now),
        "a read begun before the loss is not cached"
    );

    b.channel_restored(&channel, now);
    for key in &others {
        assert!(is_hit(&b, key, now), "{key} kept");
    }
    for key in &ours {
        assert!(read_then_cached(&b, key, now), "{key} cached again");
    }
    assert_eq!(b.stats().subscription_losses, 1);
}

#[test]
fn a_lost_control_channel_stops_all_caching_until_it_is_back() {
    let b = instance(4);
    let config = b.settings().core().clone();
    let now = Instant::from_millis(1);
    assert!(read_then_cached(&b, "k", now));
    b.channel_lost(config.strategy_channel());
    assert!(!is_hit(&b, "k", now), "everything dropped");
    assert!(
        !read_then_cached(&b, "k", now),
        "and nothing cached meanwhile"
    );
    b.channel_restored(config.strategy_channel(), now);
    assert!(read_then_cached(&b, "k", now));

    // With one invalidation channel, losing it is losing everything.
    let one = instance(1);
    let only = one.settings().core().invalidation_channel().to_owned();
    assert!(read_then_cached(&one, "k", now));
    one.channel_lost(&only);
    assert!(!read_then_cached(&one, "k", now));
    one.channel_restored(&only, now);
    assert!(read_then_cached(&one, "k", now));
}

#[test]
fn resubscribing_after_a_failed_channel_recovery_hears_every_bucket() {
    let b = instance(4);
    let config = b.settings().core().clone();
    let now = Instant::from_millis(1);
    let channel = config
        .invalidation_channel_of(config.bucket_of("k"))
        .to_string();
    b.channel_lost(&channel);
    // Subscribing again failed: the whole subscription is lost, then back.
    let _retry_at = b.subscription_lost(now);
    b.subscribed();
    assert!(read_then_cached(&b, "k", now), "no bucket stays deaf");
}
