//! `FaultyTransport`: each stage (pass, delay, drop, duplicate, fail) on the
//! in-memory transport, then real caches put through the faults, on the
//! in-memory transport and on a real redis-server (the harness's own).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use aci_cache::transports::{
    MemoryTransport, Outgoing, Received, RedisTransport, Subscription, Transport,
};
use aci_cache::{AdaptiveCache, Strategy};
use aci_sim::faults::{Faults, Outage};
use aci_sim::faulty::FaultyTransport;
use support::{shared_url, unique_namespace};

const CHANNEL: &str = "news";

fn publish(redis: &MemoryTransport, payload: &[u8]) {
    redis
        .publish(&[Outgoing {
            channel: CHANNEL,
            payload,
        }])
        .expect("the in-memory server is up");
}

/// Everything the subscription yields within `window`.
fn drain(sub: &mut impl Subscription, window: Duration) -> Vec<Received> {
    let until = Instant::now() + window;
    let mut got = Vec::new();
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match sub.recv(left) {
            Ok(Some(m)) => got.push(m),
            Ok(None) => break,
            Err(e) => panic!("the subscription failed: {e}"),
        }
    }
    got
}

fn ms(n: u64) -> aci_core::Duration {
    aci_core::Duration::from_millis(n)
}

#[test]
fn without_faults_everything_passes_through() {
    let redis = MemoryTransport::new();
    let t = FaultyTransport::new(redis.clone(), Faults::none(), 0, 1);
    let mut sub = t.subscribe(&[CHANNEL]).expect("subscribe");
    t.set("k", b"v1", Duration::from_secs(10), &[])
        .expect("set");
    assert_eq!(t.get("k").expect("get").as_deref(), Some(&b"v1"[..]));
    assert_eq!(redis.get("k").expect("get").as_deref(), Some(&b"v1"[..]));
    for i in 0..20u8 {
        publish(&redis, &[i]);
    }
    let got: Vec<u8> = drain(&mut sub, Duration::from_millis(100))
        .iter()
        .map(|m| m.payload[0])
        .collect();
    assert_eq!(got, (0..20).collect::<Vec<u8>>(), "all, once, in order");
    assert!(t.delete("k", &[]).expect("delete"));
    assert_eq!(redis.get("k").expect("get"), None);
}

#[test]
fn loss_drops_messages_as_the_seed_says() {
    let faults = Faults {
        loss: 0.3,
        ..Faults::none()
    };
    let run = |seed| {
        let redis = MemoryTransport::new();
        let t = FaultyTransport::new(redis.clone(), faults.clone(), 0, seed);
        let mut sub = t.subscribe(&[CHANNEL]).expect("subscribe");
        for i in 0..200u8 {
            publish(&redis, &[i]);
        }
        drain(&mut sub, Duration::from_millis(200))
            .iter()
            .map(|m| m.payload[0])
            .collect::<Vec<u8>>()
    };
    let a = run(11);
    assert!(
        (100..180).contains(&a.len()),
        "about 70% of 200 arrive: {}",
        a.len()
    );
    assert!(a.windows(2).all(|w| w[0] < w[1]), "no latency: in order");
    assert_eq!(run(11), a, "same seed, same messages lost");
    assert_ne!(run(12), a, "another seed loses others");
}

#[test]
fn duplication_delivers_twice() {
    let redis = MemoryTransport::new();
    let faults = Faults {
        duplication: 1.0,
        ..Faults::none()
    };
    let t = FaultyTransport::new(redis.clone(), faults, 0, 3);
    let mut sub = t.subscribe(&[CHANNEL]).expect("subscribe");
    publish(&redis, b"once");
    let got = drain(&mut sub, Duration::from_millis(100));
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| &m.payload[..] == b"once"));
}

#[test]
fn latency_delays_messages_and_commands() {
    let redis = MemoryTransport::new();
    let faults = Faults {
        latency_min: ms(40),
        latency_mean_extra: ms(20),
        latency_max: ms(80),
        ..Faults::none()
    };
    let t = FaultyTransport::new(redis.clone(), faults, 0, 5);
    let mut sub = t.subscribe(&[CHANNEL]).expect("subscribe");

    let sent = Instant::now();
    publish(&redis, b"late");
    let got = sub.recv(Duration::from_secs(2)).expect("recv");
    let took = sent.elapsed();
    assert_eq!(got.map(|m| m.payload), Some(b"late"[..].into()));
    assert!(took >= Duration::from_millis(40), "one hop: {took:?}");

    let start = Instant::now();
    t.get("absent").expect("get");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(80), "two hops: {took:?}");
}

#[test]
fn an_outage_fails_commands_and_ends_the_subscription() {
    let redis = MemoryTransport::new();
    let faults = Faults {
        outages: vec![Outage {
            instance: 1,
            at: 0.3,
            duration: 0.4,
        }],
        ..Faults::none()
    };
    let cut = FaultyTransport::new(redis.clone(), faults.clone(), 1, 9);
    let other = FaultyTransport::new(redis.clone(), faults, 0, 9);
    let mut sub = cut
        .subscribe(&[CHANNEL])
        .expect("subscribe before the outage");
    publish(&redis, b"before");
    assert_eq!(drain(&mut sub, Duration::from_millis(50)).len(), 1);

    while !cut.is_cut_off() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = cut
        .set("k", b"v", Duration::from_secs(10), &[])
        .expect_err("cut off");
    assert!(err.is_unavailable(), "{err}");
    assert!(cut.subscribe(&[CHANNEL]).is_err());
    let closed = sub.recv(Duration::from_millis(100));
    assert!(
        matches!(
            closed,
            Err(aci_cache::transports::TransportError::SubscriptionClosed)
        ),
        "{closed:?}"
    );
    // Instance 0's link is not cut.
    other
        .set("k", b"v", Duration::from_secs(10), &[])
        .expect("the other instance still reaches the server");

    while cut.is_cut_off() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut sub = cut
        .subscribe(&[CHANNEL])
        .expect("subscribe after the outage");
    assert_eq!(cut.get("k").expect("get").as_deref(), Some(&b"v"[..]));
    publish(&redis, b"after");
    assert_eq!(drain(&mut sub, Duration::from_millis(50)).len(), 1);
}

/// A started cache in `namespace`, forced eager (every write invalidates at once).
fn cache<T: Transport>(transport: T, namespace: &str, id: &str) -> AdaptiveCache<T> {
    let cache = aci_cache::Builder::new()
        .namespace(namespace)
        .instance_id(id)
        .role(aci_cache::Role::Follower)
        .local_ttl(Duration::from_secs(1))
        .transport(transport)
        .expect("valid settings, started");
    cache
        .force_strategy(Some(Strategy::Eager))
        .expect("force eager");
    let since = Instant::now();
    while !cache.is_subscribed() {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "{id} never subscribed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    cache
}

fn redis() -> RedisTransport {
    RedisTransport::open(shared_url()).expect("the test redis-server")
}

/// Lost invalidations: the reader serves the old value, but never for
/// longer than local_ttl — the bound the design promises under loss.
fn lost_invalidations_are_stale_for_at_most_local_ttl<T: Transport>(connect: impl Fn() -> T) {
    let ns = unique_namespace("lossy");
    let writer = cache(connect(), &ns, "writer");
    let lossy = Faults {
        loss: 1.0,
        ..Faults::none()
    };
    let reader = cache(FaultyTransport::new(connect(), lossy, 0, 1), &ns, "reader");

    writer.set("k", "v1").expect("set");
    assert_eq!(reader.get_string("k").expect("get").as_deref(), Some("v1"));
    let written = Instant::now();
    writer.set("k", "v2").expect("set");
    // The eager invalidation never reaches the reader: it still serves v1…
    assert_eq!(reader.get_string("k").expect("get").as_deref(), Some("v1"));
    // …until its entry expires.
    loop {
        let value = reader.get_string("k").expect("get");
        if value.as_deref() == Some("v2") {
            break;
        }
        assert!(
            // local_ttl (1 s), generously for a loaded machine: the
            // simulator checks the bound itself, in virtual time.
            written.elapsed() < Duration::from_secs(5),
            "stale beyond local_ttl: {value:?} after {:?}",
            written.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    writer.stop();
    reader.stop();
}

/// A partition: the cut-off cache drops its near cache (it would miss
/// invalidations), fails its reads, then comes back consistent.
fn a_partitioned_cache_drops_its_near_cache_and_recovers<T: Transport>(connect: impl Fn() -> T) {
    let ns = unique_namespace("partition");
    let faults = Faults {
        outages: vec![Outage {
            instance: 0,
            at: 1.0,
            duration: 0.6,
        }],
        ..Faults::none()
    };
    let writer = cache(connect(), &ns, "writer");
    let reader = cache(FaultyTransport::new(connect(), faults, 0, 2), &ns, "reader");

    writer.set("k", "v1").expect("set");
    assert_eq!(reader.get_string("k").expect("get").as_deref(), Some("v1"));
    while !reader.transport().is_cut_off() {
        std::thread::sleep(Duration::from_millis(5));
    }
    writer
        .set("k", "v2")
        .expect("the writer still reaches Redis");
    let since = Instant::now();
    while reader.is_subscribed() {
        assert!(
            since.elapsed() < Duration::from_secs(1),
            "the loss went unnoticed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Not the old v1 from the near cache: it was dropped.
    let cut_off = reader.get_string("k");
    assert!(cut_off.is_err(), "{cut_off:?}");

    while reader.transport().is_cut_off() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let since = Instant::now();
    while !reader.is_subscribed() {
        assert!(
            since.elapsed() < Duration::from_secs(2),
            "never resubscribed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(reader.get_string("k").expect("get").as_deref(), Some("v2"));
    assert!(reader.stats().subscription_losses >= 1);
    writer.stop();
    reader.stop();
}

#[test]
fn in_memory_lost_invalidations_are_stale_for_at_most_local_ttl() {
    let server = MemoryTransport::new();
    lost_invalidations_are_stale_for_at_most_local_ttl(|| server.clone());
}

#[test]
fn redis_lost_invalidations_are_stale_for_at_most_local_ttl() {
    lost_invalidations_are_stale_for_at_most_local_ttl(redis);
}

#[test]
fn in_memory_a_partitioned_cache_drops_its_near_cache_and_recovers() {
    let server = MemoryTransport::new();
    a_partitioned_cache_drops_its_near_cache_and_recovers(|| server.clone());
}

#[test]
fn redis_a_partitioned_cache_drops_its_near_cache_and_recovers() {
    a_partitioned_cache_drops_its_near_cache_and_recovers(redis);
}
