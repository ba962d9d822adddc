//! What `stop()` does, and what ends a near cache: issue 11, findings 5 and
//! 7, and the rule that a subscription ended by anything (stop, a panic, a
//! runtime shutting down) takes the near cache with it.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aci_cache::transports::{
    MemoryTransport, Outgoing, Received, Subscription, Transport, TransportError,
};
#[cfg(feature = "tokio")]
use aci_cache::AsyncAdaptiveCache;
use aci_cache::{AdaptiveCache, Builder, Error};
use bytes::Bytes;
use redis::Commands;
use support::{eventually, raw, RedisServer};

fn memory_cache(transport: MemoryTransport) -> AdaptiveCache<MemoryTransport> {
    Builder::new()
        .is_controller(false)
        .transport(transport)
        .unwrap()
}

#[test]
fn after_stop_every_call_that_reaches_redis_fails_typed_until_start() {
    let cache = memory_cache(MemoryTransport::new());
    cache.set("k", "v").unwrap();
    cache.stop();
    assert!(matches!(cache.get("k"), Err(Error::Stopped)));
    assert!(matches!(cache.get_string("k"), Err(Error::Stopped)));
    assert!(matches!(cache.set("k", "w"), Err(Error::Stopped)));
    assert!(matches!(
        cache.set_with_ttl("k", "w", Duration::from_secs(1)),
        Err(Error::Stopped)
    ));
    assert!(matches!(cache.delete("k"), Err(Error::Stopped)));
    assert!(matches!(cache.flush(), Err(Error::Stopped)));
    assert!(matches!(cache.force_strategy(None), Err(Error::Stopped)));
    assert!(!cache.is_subscribed());
    let _ = cache.stats(); // still answers
    cache.stop(); // twice is fine
    cache.start().unwrap();
    assert_eq!(cache.get_string("k").unwrap().as_deref(), Some("v"));
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn after_stop_the_async_cache_fails_typed_until_start() {
    let cache = Builder::new()
        .is_controller(false)
        .into_async()
        .transport(MemoryTransport::new())
        .await
        .unwrap();
    cache.set("k", "v").await.unwrap();
    cache.stop().await;
    assert!(matches!(cache.get("k").await, Err(Error::Stopped)));
    assert!(matches!(cache.set("k", "w").await, Err(Error::Stopped)));
    assert!(matches!(cache.delete("k").await, Err(Error::Stopped)));
    assert!(matches!(cache.flush().await, Err(Error::Stopped)));
    assert!(matches!(
        cache.force_strategy(None).await,
        Err(Error::Stopped)
    ));
    cache.start().await.unwrap();
    assert_eq!(cache.get_string("k").await.unwrap().as_deref(), Some("v"));
}

#[cfg(feature = "tokio")]
#[test]
fn a_runtime_that_shuts_down_takes_the_near_cache_with_it() {
    // Finding 7: the task holding the subscription is dropped with its
    // runtime; the cache must not keep serving from memory.
    let transport = MemoryTransport::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache: AsyncAdaptiveCache<MemoryTransport> = runtime.block_on(async {
        let cache = Builder::new()
            .is_controller(false)
            .into_async()
            .transport(transport.clone())
            .await
            .unwrap();
        cache.set("k", "v").await.unwrap();
        assert_eq!(cache.get_string("k").await.unwrap().as_deref(), Some("v"));
        cache
    });
    assert!(cache.is_subscribed());
    assert_eq!(cache.stats().near_cache_entries, 1);
    drop(runtime);
    assert!(!cache.is_subscribed(), "still says subscribed");
    assert_eq!(cache.stats().near_cache_entries, 0, "still holds values");
    // Reads go to the store (and see its newest value), never to memory.
    transport
        .set("k", b"newer", Duration::from_secs(10), &[])
        .unwrap();
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let read = other.block_on(cache.get_string("k")).unwrap();
    assert_eq!(read.as_deref(), Some("newer"));
}

/// A memory transport whose subscription panics on demand.
#[derive(Clone, Default)]
struct Panicky {
    inner: MemoryTransport,
    panic: Arc<AtomicBool>,
}

struct PanickySubscription {
    inner: <MemoryTransport as Transport>::Subscription,
    panic: Arc<AtomicBool>,
}

impl Subscription for PanickySubscription {
    fn recv(&mut self, timeout: Duration) -> Result<Option<Received>, TransportError> {
        assert!(
            !self.panic.load(Ordering::SeqCst),
            "a bug in a transport (expected by the test)"
        );
        self.inner.recv(timeout.min(Duration::from_millis(10)))
    }
}

impl Transport for Panicky {
    type Subscription = PanickySubscription;
    fn get(&self, key: &str) -> Result<Option<Bytes>, TransportError> {
        self.inner.get(key)
    }
    fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError> {
        self.inner.set(key, value, ttl, then)
    }
    fn delete(&self, key: &str, then: &[Outgoing<'_>]) -> Result<bool, TransportError> {
        self.inner.delete(key, then)
    }
    fn publish(&self, messages: &[Outgoing<'_>]) -> Result<(), TransportError> {
        self.inner.publish(messages)
    }
    fn subscribe(&self, channels: &[&str]) -> Result<PanickySubscription, TransportError> {
        Ok(PanickySubscription {
            inner: self.inner.subscribe(channels)?,
            panic: Arc::clone(&self.panic),
        })
    }
    fn flush_db(&self) -> Result<(), TransportError> {
        self.inner.flush_db()
    }
}

#[test]
fn a_worker_that_panics_takes_the_near_cache_with_it() {
    let transport = Panicky::default();
    let cache = Builder::new()
        .is_controller(false)
        .transport(transport.clone())
        .unwrap();
    cache.set("k", "v").unwrap();
    assert_eq!(cache.stats().near_cache_entries, 1);
    transport.panic.store(true, Ordering::SeqCst);
    let ended = eventually(Duration::from_secs(10), || !cache.is_subscribed());
    assert!(ended.is_some(), "the dead worker left the cache subscribed");
    assert_eq!(cache.stats().near_cache_entries, 0);
}

/// Clients connected to `conn`'s server, other than `conn` itself.
fn clients(conn: &mut redis::Connection) -> usize {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(conn).unwrap();
    list.lines().count().saturating_sub(1)
}

#[test]
fn stop_closes_every_connection_pooled_ones_included() {
    // Finding 5, on a server of this test's own so that counts are exact.
    if support::skip_without_own_servers("stop_closes_every_connection_pooled_ones_included") {
        return;
    }
    let server = RedisServer::start();
    let mut admin = raw(&server.url());
    let fleet: Vec<_> = (0..20)
        .map(|i| {
            let cache = Builder::new().connect(&server.url()).unwrap();
            cache.set(&format!("k{i}"), "v").unwrap();
            let _ = cache.get(&format!("other{i}")).unwrap();
            cache
        })
        .collect();
    assert!(clients(&mut admin) >= 20);
    for cache in &fleet {
        cache.stop();
    }
    let closed = eventually(Duration::from_secs(5), || clients(&mut admin) == 0);
    println!(
        "connections left after stop(): {} (closed after {closed:?})",
        clients(&mut admin)
    );
    assert!(closed.is_some(), "{} connections left", clients(&mut admin));
    // A stopped cache does not reconnect behind the user's back.
    assert!(matches!(fleet[0].get("k0"), Err(Error::Stopped)));
    assert_eq!(clients(&mut admin), 0);
    let _: () = admin.set("probe", "x").unwrap();
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_stop_closes_every_connection() {
    if support::skip_without_own_servers("async_stop_closes_every_connection") {
        return;
    }
    let server = RedisServer::start();
    let mut admin = raw(&server.url());
    let mut fleet = Vec::new();
    for i in 0..20 {
        let cache = AsyncAdaptiveCache::builder()
            .connect(&server.url())
            .await
            .unwrap();
        cache.set(&format!("k{i}"), "v").await.unwrap();
        fleet.push(cache);
    }
    assert!(clients(&mut admin) >= 20);
    for cache in &fleet {
        cache.stop().await;
    }
    let closed = eventually(Duration::from_secs(5), || clients(&mut admin) == 0);
    println!(
        "async: connections left after stop(): {}",
        clients(&mut admin)
    );
    assert!(closed.is_some(), "{} connections left", clients(&mut admin));
}

#[test]
fn counters_count_only_what_happened() {
    // Finding 4: during an outage, failed writes are neither writes, nor in
    // the rate, nor invalidations sent; the near cache in use is dropped
    // once, not once per failed attempt to resubscribe.
    let transport = MemoryTransport::new();
    let cache = memory_cache(transport.clone());
    assert!(eventually(Duration::from_secs(10), || cache.is_subscribed()).is_some());
    cache
        .force_strategy(Some(aci_cache::Strategy::Eager))
        .unwrap();
    for i in 0..10 {
        cache.set(&format!("k{i}"), "v").unwrap();
    }
    let before = cache.stats();
    assert_eq!(before.total_writes, 10);
    assert_eq!(before.invalidations_sent, 10);
    transport.set_available(false);
    for i in 0..10 {
        assert!(cache.set(&format!("k{i}"), "w").is_err());
    }
    // Let the worker fail to resubscribe a few times.
    let lost = eventually(Duration::from_secs(10), || !cache.is_subscribed());
    assert!(lost.is_some());
    std::thread::sleep(Duration::from_millis(300));
    let during = cache.stats();
    assert_eq!(during.total_writes, 10, "failed writes counted");
    assert_eq!(
        during.invalidations_sent, 10,
        "failed writes counted as sent"
    );
    assert_eq!(
        during.full_drops - before.full_drops,
        1,
        "one drop per loss"
    );
    assert_eq!(during.subscription_losses, 1);
    transport.set_available(true);
    assert!(eventually(Duration::from_secs(10), || cache.is_subscribed()).is_some());
    cache.set("k0", "x").unwrap();
    assert_eq!(cache.stats().total_writes, 11);
    assert_eq!(cache.stats().invalidations_sent, 11);
}

#[test]
fn a_ttl_redis_cannot_keep_is_a_typed_error_and_writes_nothing() {
    // Issue 12, finding 7: u64::MAX ms failed only in Redis, with a raw
    // "value is not an integer or out of range".
    let transport = MemoryTransport::new();
    let cache = memory_cache(transport.clone());
    for ttl in [
        Duration::from_millis(u64::MAX),
        Duration::ZERO,
        Duration::from_micros(999),
    ] {
        let err = cache.set_with_ttl("k", "v", ttl).unwrap_err();
        assert!(matches!(err, Error::InvalidTtl { .. }), "{ttl:?}: {err}");
    }
    assert_eq!(transport.get("k").unwrap(), None);
    assert_eq!(cache.stats().total_writes, 0);
    // Config floors: a 1 ns controller interval would flood Redis.
    let err = Builder::new()
        .controller_interval(Duration::from_nanos(1))
        .transport(MemoryTransport::new())
        .expect_err("refused");
    assert!(err.to_string().contains("controller_interval"), "{err}");
}

#[test]
fn the_largest_value_kept_is_a_setting_and_larger_ones_are_counted() {
    // Issue 12, finding 8: a 50 MB value was never kept although under the
    // 64 MiB bound, and nothing said why.
    let big = vec![7u8; 50 * 1000 * 1000];
    let cache = Builder::new()
        .is_controller(false)
        .near_cache_max_bytes(256 << 20)
        .near_cache_max_value_bytes(64 << 20)
        .transport(MemoryTransport::new())
        .unwrap();
    cache.set("big", &big).unwrap();
    let hits = cache.stats().cache_hits;
    assert_eq!(cache.get("big").unwrap().map(|v| v.len()), Some(big.len()));
    assert_eq!(
        cache.stats().cache_hits,
        hits + 1,
        "the 50 MB value was not kept"
    );
    assert_eq!(cache.stats().near_cache_oversized, 0);

    // The default keeps values up to 1 MiB; a larger one is read from the
    // store every time, and counted.
    let cache = memory_cache(MemoryTransport::new());
    cache.set("two-mb", vec![1u8; 2 << 20]).unwrap();
    let _ = cache.get("two-mb").unwrap();
    let stats = cache.stats();
    assert_eq!(stats.cache_hits, 0);
    assert!(stats.near_cache_oversized >= 2, "{stats:?}");
    // A bound the near cache cannot honour is refused, with the field named.
    let err = Builder::new()
        .near_cache_max_value_bytes(64 << 20)
        .transport(MemoryTransport::new())
        .expect_err("refused");
    assert!(
        err.to_string().contains("near_cache_max_value_bytes"),
        "{err}"
    );
}
