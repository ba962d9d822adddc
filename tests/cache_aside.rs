//! `get_or_load`: one load per key per instance, never overwriting a value
//! written meanwhile, a loader's error typed with nothing stored; and the
//! handle a cache is (cheap clones that share it, a readable `Debug`).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use aci_cache::transports::{MemoryTransport, Transport};
use aci_cache::{AdaptiveCache, Error, Strategy};

fn cache(redis: &MemoryTransport) -> AdaptiveCache<MemoryTransport> {
    AdaptiveCache::builder()
        .namespace("aside")
        .is_controller(false)
        .transport(redis.clone())
        .unwrap()
}

#[test]
fn concurrent_callers_share_one_load() {
    let redis = MemoryTransport::new();
    let cache = cache(&redis);
    let loads = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(8));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (cache, loads, start) = (cache.clone(), Arc::clone(&loads), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                cache.get_or_load("user:1", || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    "Alice"
                })
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(&caller.join().unwrap().unwrap()[..], b"Alice");
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "one load for eight callers"
    );
    assert_eq!(
        redis.get("aci:aside:user:1").unwrap().as_deref(),
        Some(&b"Alice"[..])
    );
    // Cached: neither Redis nor the loader is asked again.
    let gets = redis.gets();
    let again = cache.get_or_load("user:1", || -> &str { panic!("loaded twice") });
    assert_eq!(&again.unwrap()[..], b"Alice");
    assert_eq!(redis.gets(), gets);
}

#[test]
fn a_value_written_while_loading_is_not_overwritten() {
    let redis = MemoryTransport::new();
    let loader_side = cache(&redis);
    let writer = cache(&redis);
    let got = loader_side
        .get_or_load("price", || {
            // Someone writes the key while our database read runs.
            writer.set("price", "new").unwrap();
            "stale-from-db"
        })
        .unwrap();
    assert_eq!(&got[..], b"new", "the value written meanwhile wins");
    assert_eq!(
        redis.get("aci:aside:price").unwrap().as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(
        loader_side.get_string("price").unwrap().as_deref(),
        Some("new")
    );
}

#[test]
fn a_failed_load_is_typed_stores_nothing_and_waiters_load_for_themselves() {
    let redis = MemoryTransport::new();
    let cache = cache(&redis);
    let leader_started = Arc::new(Barrier::new(2));
    let leader = {
        let (cache, started) = (cache.clone(), Arc::clone(&leader_started));
        std::thread::spawn(move || {
            cache.get_or_try_load("order:9", || {
                started.wait();
                std::thread::sleep(Duration::from_millis(150));
                Err::<&str, _>(std::io::Error::other("database down"))
            })
        })
    };
    leader_started.wait();
    // Waits on the leader's load, which fails; then loads itself.
    let follower = cache.get_or_try_load("order:9", || Ok::<_, std::io::Error>("shipped"));
    assert_eq!(&follower.unwrap()[..], b"shipped");
    match leader.join().unwrap() {
        Err(Error::Load { key, source }) => {
            assert_eq!(key, "order:9");
            let io = source
                .downcast_ref::<std::io::Error>()
                .expect("the loader's own error");
            assert_eq!(io.to_string(), "database down");
        }
        other => panic!("the failed load answered {other:?}"),
    }
    let alone = cache.get_or_try_load("order:10", || Err::<&str, _>("no such order"));
    assert!(matches!(alone, Err(Error::Load { .. })));
    assert_eq!(
        redis.get("aci:aside:order:10").unwrap(),
        None,
        "nothing stored"
    );
    assert_eq!(cache.get("order:10").unwrap(), None, "nothing cached");
}

#[test]
fn loading_needs_a_running_cache_and_a_reachable_redis() {
    let redis = MemoryTransport::new();
    let cache = cache(&redis);
    redis.set_available(false);
    let down = cache.get_or_load("k", || -> &str { panic!("loaded although Redis is down") });
    assert!(down.unwrap_err().is_unavailable());
    redis.set_available(true);
    cache.stop();
    assert!(matches!(
        cache.get_or_load("k", || "v"),
        Err(Error::Stopped)
    ));
}

#[test]
fn clones_share_one_cache_until_the_last_is_dropped() {
    let redis = MemoryTransport::new();
    let first = cache(&redis);
    let second = first.clone();
    second.set("k", "v").unwrap();
    assert_eq!(first.stats().cache_hits, 0);
    assert_eq!(first.get_string("k").unwrap().as_deref(), Some("v"));
    assert_eq!(
        second.stats().cache_hits,
        1,
        "one near cache, one set of counters"
    );
    assert_eq!(redis.subscriptions(), 1);
    drop(first);
    assert!(
        second.is_subscribed(),
        "a clone's drop does not stop the cache"
    );
    let shown = format!("{second:?}");
    assert!(
        shown.starts_with("AdaptiveCache { instance_id: ") && shown.contains("running: true"),
        "{shown}"
    );
    let third = second.clone();
    third.stop();
    assert!(
        matches!(second.get("k"), Err(Error::Stopped)),
        "stop stops every clone"
    );
    drop((second, third));
    // The in-memory server notices a closed subscription when it publishes.
    let ping = aci_cache::transports::Outgoing {
        channel: "aci:aside:invalidation",
        payload: b"{}",
    };
    redis.publish(&[ping]).unwrap();
    assert_eq!(redis.subscriptions(), 0);
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_callers_share_one_load_and_a_cancelled_leader_hands_it_on() {
    use aci_cache::AsyncAdaptiveCache;
    let redis = MemoryTransport::new();
    let cache = AsyncAdaptiveCache::builder()
        .is_controller(false)
        .transport(redis.clone())
        .await
        .unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (cache, loads) = (cache.clone(), Arc::clone(&loads));
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_load("k", || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    "v"
                })
                .await
        }));
    }
    for task in tasks {
        assert_eq!(&task.await.unwrap().unwrap()[..], b"v");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);

    // The leader is cancelled mid-load: the waiter loads instead of failing.
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_load("slow", || async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "never"
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.get_or_load("slow", || async { "mine" }).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    let got = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter is not stuck")
        .unwrap()
        .unwrap();
    assert_eq!(&got[..], b"mine");
    assert!(format!("{cache:?}").starts_with("AsyncAdaptiveCache { "));
    cache.stop().await;
}

#[test]
fn two_instances_loading_at_once_on_redis_end_with_one_value() {
    let url = support::shared_url();
    let ns = support::unique_namespace("aside");
    // ttl stores with `SET … NX` alone, eager pipelines it with its PUBLISH.
    for strategy in [Strategy::Ttl, Strategy::Eager] {
        let make = || {
            let cache = AdaptiveCache::builder()
                .namespace(&ns)
                .is_controller(false)
                .connect(&url)
                .unwrap();
            cache.force_strategy(Some(strategy)).unwrap();
            cache
        };
        let (a, b) = (make(), make());
        let key = format!("k-{strategy}");
        let start = Arc::new(Barrier::new(2));
        let load = |cache: AdaptiveCache<_>, who: &'static str| {
            let (start, key) = (Arc::clone(&start), key.clone());
            std::thread::spawn(move || {
                cache.get_or_load(&key, || {
                    start.wait();
                    who
                })
            })
        };
        let (ra, rb) = (load(a.clone(), "from-a"), load(b.clone(), "from-b"));
        let (va, vb) = (ra.join().unwrap().unwrap(), rb.join().unwrap().unwrap());
        assert_eq!(va, vb, "{strategy}: both return what Redis holds");
        let mut raw = support::raw(&url);
        let stored: String = redis::Commands::get(&mut raw, format!("aci:{ns}:{key}")).unwrap();
        assert_eq!(stored.as_bytes(), &va[..], "{strategy}");
        let ttl: i64 = redis::Commands::pttl(&mut raw, format!("aci:{ns}:{key}")).unwrap();
        assert!(
            ttl > 0,
            "{strategy}: stored with the default TTL ({ttl} ms)"
        );
    }
}

#[test]
fn batch_calls_with_repeated_keys_neither_hang_nor_cache_a_loser() {
    let redis = MemoryTransport::new();
    let cache = cache(&redis);
    cache.set("a", "1").unwrap();
    let other = AdaptiveCache::builder()
        .namespace("aside")
        .is_controller(false)
        .transport(redis.clone())
        .unwrap();
    // The same key twice: one read, both answered.
    let values = other.get_many(&["a", "a", "b", "b"]).unwrap();
    assert_eq!(values.len(), 4);
    assert_eq!(values[0].as_deref(), Some(&b"1"[..]));
    assert_eq!(values[1], values[0]);
    assert_eq!((values[2].clone(), values[3].clone()), (None, None));
    // Written twice in one call: Redis keeps the last; the near cache keeps neither.
    cache.set_many(&[("k", "first"), ("k", "last")]).unwrap();
    assert_eq!(
        redis.get("aci:aside:k").unwrap().as_deref(),
        Some(&b"last"[..])
    );
    assert_eq!(cache.get_string("k").unwrap().as_deref(), Some("last"));
}
