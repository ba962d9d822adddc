//! `FaultyTransport` around async transports: the subscription's stages, and
//! `AsyncAdaptiveCache`s put through loss and a partition, on the in-memory
//! transport and on a real redis-server (the harness's own).
#![cfg(feature = "tokio")]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use aci_cache::transports::{
    AsyncSubscription, AsyncTransport, MemoryTransport, Outgoing, RedisAsyncTransport,
    TransportError,
};
use aci_cache::{AsyncAdaptiveCache, Strategy};
use aci_sim::faults::{Faults, Outage};
use aci_sim::faulty::FaultyTransport;
use support::{shared_url, unique_namespace};

const CHANNEL: &str = "news";

async fn publish(server: &MemoryTransport, payload: &[u8]) {
    AsyncTransport::publish(
        server,
        &[Outgoing {
            channel: CHANNEL,
            payload,
        }],
    )
    .await
    .expect("the in-memory server is up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_delayed_duplicated_and_ended_by_an_outage() {
    let server = MemoryTransport::new();
    let faults = Faults {
        latency_min: aci_core::Duration::from_millis(40),
        latency_max: aci_core::Duration::from_millis(40),
        duplication: 1.0,
        outages: vec![Outage {
            instance: 0,
            at: 0.5,
            duration: 0.3,
        }],
        ..Faults::none()
    };
    let t = FaultyTransport::new(server.clone(), faults, 0, 4);
    let mut sub = AsyncTransport::subscribe(&t, &[CHANNEL])
        .await
        .expect("subscribe");
    let sent = Instant::now();
    publish(&server, b"twice").await;
    for _ in 0..2 {
        let got = sub.recv().await.expect("a copy");
        assert_eq!(&got.payload[..], b"twice");
    }
    assert!(sent.elapsed() >= Duration::from_millis(40), "one hop");

    // Cancel-safe: a recv dropped by a timeout loses nothing.
    let early = tokio::time::timeout(Duration::from_millis(5), sub.recv()).await;
    assert!(early.is_err(), "nothing yet");
    publish(&server, b"later").await;
    assert_eq!(&sub.recv().await.expect("later").payload[..], b"later");

    while !t.is_cut_off() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(
        sub.recv().await,
        Err(TransportError::SubscriptionClosed)
    ));
    let err = AsyncTransport::get(&t, "k").await.expect_err("cut off");
    assert!(err.is_unavailable(), "{err}");
}

/// A started async cache in `namespace`, forced eager.
async fn cache<T: AsyncTransport>(
    transport: T,
    namespace: &str,
    id: &str,
) -> AsyncAdaptiveCache<T> {
    let cache = aci_cache::Builder::new()
        .namespace(namespace)
        .instance_id(id)
        .role(aci_cache::Role::Follower)
        .local_ttl(Duration::from_secs(1))
        .into_async()
        .transport(transport)
        .await
        .expect("valid settings, started");
    cache
        .force_strategy(Some(Strategy::Eager))
        .await
        .expect("force eager");
    let since = Instant::now();
    while !cache.is_subscribed() {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "{id} never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cache
}

async fn lost_invalidations_are_stale_for_at_most_local_ttl<T: AsyncTransport>(
    connect: impl Fn() -> T,
) {
    let ns = unique_namespace("async-lossy");
    let writer = cache(connect(), &ns, "writer").await;
    let lossy = Faults {
        loss: 1.0,
        ..Faults::none()
    };
    let reader = cache(FaultyTransport::new(connect(), lossy, 0, 1), &ns, "reader").await;

    writer.set("k", "v1").await.expect("set");
    let read = reader.get_string("k").await.expect("get");
    assert_eq!(read.as_deref(), Some("v1"));
    let written = Instant::now();
    writer.set("k", "v2").await.expect("set");
    let read = reader.get_string("k").await.expect("get");
    assert_eq!(read.as_deref(), Some("v1"), "the invalidation was lost");
    loop {
        let value = reader.get_string("k").await.expect("get");
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
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    writer.stop().await;
    reader.stop().await;
}

async fn a_partitioned_cache_drops_its_near_cache_and_recovers<T: AsyncTransport>(
    connect: impl Fn() -> T,
) {
    let ns = unique_namespace("async-partition");
    let faults = Faults {
        outages: vec![Outage {
            instance: 0,
            at: 1.0,
            duration: 0.6,
        }],
        ..Faults::none()
    };
    let writer = cache(connect(), &ns, "writer").await;
    let link = FaultyTransport::new(connect(), faults, 0, 2);
    let reader = cache(link, &ns, "reader").await;

    writer.set("k", "v1").await.expect("set");
    let read = reader.get_string("k").await.expect("get");
    assert_eq!(read.as_deref(), Some("v1"));
    while !reader.transport().is_cut_off() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer
        .set("k", "v2")
        .await
        .expect("the writer still reaches Redis");
    let since = Instant::now();
    while reader.is_subscribed() {
        assert!(
            since.elapsed() < Duration::from_secs(1),
            "the loss went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cut_off = reader.get_string("k").await;
    assert!(cut_off.is_err(), "{cut_off:?}");

    while reader.transport().is_cut_off() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let since = Instant::now();
    while !reader.is_subscribed() {
        assert!(
            since.elapsed() < Duration::from_secs(2),
            "never resubscribed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let read = reader.get_string("k").await.expect("get");
    assert_eq!(read.as_deref(), Some("v2"));
    writer.stop().await;
    reader.stop().await;
}

fn redis() -> RedisAsyncTransport {
    RedisAsyncTransport::open(shared_url()).expect("the test redis-server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_lost_invalidations_are_stale_for_at_most_local_ttl() {
    let server = MemoryTransport::new();
    lost_invalidations_are_stale_for_at_most_local_ttl(|| server.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lost_invalidations_are_stale_for_at_most_local_ttl() {
    lost_invalidations_are_stale_for_at_most_local_ttl(redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_a_partitioned_cache_drops_its_near_cache_and_recovers() {
    let server = MemoryTransport::new();
    a_partitioned_cache_drops_its_near_cache_and_recovers(|| server.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_partitioned_cache_drops_its_near_cache_and_recovers() {
    a_partitioned_cache_drops_its_near_cache_and_recovers(redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_read_does_not_fail_the_reads_waiting_on_it() {
    // Issue 11, finding 6: the task leading a shared read is cancelled (a
    // timeout); the tasks waiting on the same key read for themselves.
    let server = MemoryTransport::new();
    AsyncTransport::set(&server, "k", b"value", Duration::from_secs(60), &[])
        .await
        .expect("seed the value");
    let faults = Faults {
        latency_min: aci_core::Duration::from_millis(50),
        latency_max: aci_core::Duration::from_millis(50),
        ..Faults::none()
    };
    let transport = FaultyTransport::new(server.clone(), faults, 0, 7);
    let cache = aci_cache::Builder::new()
        .role(aci_cache::Role::Follower)
        .into_async()
        .transport(transport)
        .await
        .expect("started");
    let cache = std::sync::Arc::new(cache);
    for round in 0..20 {
        // A fresh miss each round: drop the key from the near cache.
        let _ = cache.instance().handle_message(
            "aci:invalidation",
            br#"{"action": "invalidate", "keys": ["k"], "strategy": "eager", "source": "x"}"#,
            aci_core::Instant::from_secs(1),
        );
        let leader = {
            let cache = std::sync::Arc::clone(&cache);
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_millis(20), cache.get("k")).await
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let followers: Vec<_> = (0..4)
            .map(|_| {
                let cache = std::sync::Arc::clone(&cache);
                tokio::spawn(async move { cache.get_string("k").await })
            })
            .collect();
        assert!(
            leader.await.unwrap().is_err(),
            "round {round}: the leader was not cancelled"
        );
        for f in followers {
            let got = f.await.unwrap();
            assert_eq!(
                got.as_ref().ok().and_then(|v| v.as_deref()),
                Some("value"),
                "round {round}: {got:?}"
            );
        }
    }
}
