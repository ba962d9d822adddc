//! The async cache on a real redis-server, beside blocking instances.
#![cfg(feature = "tokio")]

mod support;

use std::time::{Duration, Instant};

use aci_cache::transports::{MemoryTransport, RedisAsyncTransport, Transport};
use aci_cache::{AsyncAdaptiveCache, Builder, Strategy};
use support::{raw, shared_url, unique_namespace, RedisServer};

type Cache = AsyncAdaptiveCache<RedisAsyncTransport>;

async fn pinned(url: &str, ns: &str, strategy: Strategy) -> Cache {
    let cache = Builder::new()
        .namespace(ns)
        .is_controller(false)
        .batch_interval(Duration::from_millis(200))
        .timeout(Duration::from_millis(300))
        .into_async()
        .connect(url)
        .await
        .unwrap();
    assert!(cache.is_subscribed());
    cache.force_strategy(Some(strategy)).await.unwrap();
    cache
}

async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_and_blocking_instances_form_one_fleet() {
    let url = shared_url();
    let ns = unique_namespace("async-eager");
    let a = pinned(&url, &ns, Strategy::Eager).await;
    let b = pinned(&url, &ns, Strategy::Eager).await;
    let blocking = {
        let (url, ns) = (url.clone(), ns.clone());
        tokio::task::spawn_blocking(move || {
            let c = Builder::new()
                .namespace(&ns)
                .is_controller(false)
                .connect(&url)
                .unwrap();
            c.force_strategy(Some(Strategy::Eager)).unwrap();
            c
        })
        .await
        .unwrap()
    };
    a.set("k", "1").await.unwrap();
    assert_eq!(b.get_string("k").await.unwrap().as_deref(), Some("1"));
    for round in 2..20 {
        let value = round.to_string();
        a.set("k", &value).await.unwrap();
        assert!(
            eventually(Duration::from_millis(50), async || b
                .get_string("k")
                .await
                .unwrap()
                .as_deref()
                == Some(value.as_str()))
            .await,
            "round {round}: async follower stale after 50 ms"
        );
    }
    // A blocking instance's write reaches the async one too.
    tokio::task::block_in_place(|| blocking.set("k", "from-blocking").unwrap());
    assert!(
        eventually(Duration::from_millis(50), async || b
            .get_string("k")
            .await
            .unwrap()
            .as_deref()
            == Some("from-blocking"))
        .await
    );

    // Batched, then all 500 keys present in Redis.
    a.force_strategy(Some(Strategy::Batched)).await.unwrap();
    for i in 0..500 {
        a.set(&format!("item:{i}"), format!("v{i}")).await.unwrap();
    }
    a.stop().await;
    let mut conn = raw(&url);
    for i in 0..500 {
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("aci:{ns}:item:{i}"))
            .query(&mut conn)
            .unwrap();
        assert_eq!(v, Some(format!("v{i}")));
    }
    tokio::task::block_in_place(move || drop(blocking));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_cache_survives_a_redis_restart() {
    if support::skip_without_own_servers("async_cache_survives_a_redis_restart") {
        return;
    }
    let mut server = RedisServer::start();
    let url = server.url();
    let a = pinned(&url, "restart", Strategy::Eager).await;
    let b = pinned(&url, "restart", Strategy::Eager).await;
    a.set("k", "before").await.unwrap();
    assert_eq!(b.get_string("k").await.unwrap().as_deref(), Some("before"));

    tokio::task::block_in_place(|| server.kill());
    let asked = Instant::now();
    assert!(a.set("k", "during").await.unwrap_err().is_unavailable());
    println!("set failed after {:?}", asked.elapsed());
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    assert!(eventually(Duration::from_secs(1), async || !b.is_subscribed()).await);
    assert!(b.get("k").await.unwrap_err().is_unavailable());

    tokio::time::sleep(Duration::from_millis(1500)).await;
    tokio::task::block_in_place(|| server.restart());
    assert!(
        eventually(Duration::from_secs(1), async || a.is_subscribed()
            && b.is_subscribed())
        .await,
        "resubscribed within 1 s of the server's return"
    );
    a.set("k", "after").await.unwrap();
    assert_eq!(b.get_string("k").await.unwrap().as_deref(), Some("after"));
    a.set("k", "after-2").await.unwrap();
    assert!(
        eventually(Duration::from_millis(100), async || b
            .get_string("k")
            .await
            .unwrap()
            .as_deref()
            == Some("after-2"))
        .await
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_async_misses_share_one_read() {
    let memory = MemoryTransport::new();
    memory
        .set("hot", b"v", Duration::from_secs(60), &[])
        .unwrap();
    let cache = std::sync::Arc::new(
        Builder::new()
            .is_controller(false)
            .into_async()
            .transport(memory.clone())
            .await
            .unwrap(),
    );
    let before = memory.gets();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let cache = std::sync::Arc::clone(&cache);
            tokio::spawn(async move { cache.get("hot").await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().as_deref(), Some(&b"v"[..]));
    }
    // The in-memory read is instant, so later tasks may hit the cache; never more than one read.
    assert_eq!(memory.gets() - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_cache_notices_a_frozen_server() {
    if support::skip_without_own_servers("async_cache_notices_a_frozen_server") {
        return;
    }
    let server = RedisServer::start();
    let cache = pinned(&server.url(), "frozen", Strategy::Eager).await;
    cache.set("k", "v").await.unwrap();
    assert_eq!(cache.get_string("k").await.unwrap().as_deref(), Some("v"));
    server.pause();
    assert!(
        eventually(Duration::from_secs(3), async || !cache.is_subscribed()).await,
        "a frozen server went unnoticed"
    );
    assert!(cache.get("k").await.unwrap_err().is_unavailable());
    server.resume();
    assert!(eventually(Duration::from_secs(3), async || cache.is_subscribed()).await);
    cache.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_instances_elect_a_controller_and_replace_it() {
    let ns = unique_namespace("async-elect");
    let interval = Duration::from_millis(400);
    let mut fleet = Vec::new();
    for id in ["x", "y"] {
        let cache = Builder::new()
            .namespace(&ns)
            .instance_id(id)
            .controller_interval(interval)
            .into_async()
            .connect(&shared_url())
            .await
            .unwrap();
        fleet.push(cache);
    }
    let one = async |fleet: &[Cache]| fleet.iter().filter(|c| c.stats().is_controller).count() == 1;
    assert!(eventually(Duration::from_secs(3), async || one(&fleet).await).await);
    let leader = fleet.iter().position(|c| c.stats().is_controller).unwrap();
    let leader = fleet.remove(leader);
    leader.stop().await;
    let heir = &fleet[0];
    assert!(
        eventually(interval * 3, async || heir.stats().is_controller).await,
        "the survivor took over within 3 intervals"
    );
    assert_eq!(heir.stats().term, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_connect_fails_typed_when_redis_refuses_or_is_absent() {
    // Issue 12, findings 3 and 4, for the async cache.
    if support::skip_without_own_servers(
        "async_connect_fails_typed_when_redis_refuses_or_is_absent",
    ) {
        return;
    }
    let server = tokio::task::block_in_place(|| {
        support::RedisServer::start_with(
            &[
                "--requirepass",
                "s3cret",
                "--user",
                "nochannels",
                "on",
                ">pw",
                "~*",
                "resetchannels",
                "+@all",
            ],
            Some(":s3cret"),
        )
    });
    let port = server.url().rsplit(':').next().unwrap().to_owned();
    for url in [
        format!("redis://127.0.0.1:{port}"),
        format!("redis://:nope@127.0.0.1:{port}"),
        format!("redis://nochannels:pw@127.0.0.1:{port}"),
    ] {
        let err = aci_cache::Builder::new()
            .is_controller(false)
            .timeout(Duration::from_millis(300))
            .into_async()
            .connect(&url)
            .await
            .map(|_| ())
            .expect_err(&url);
        assert!(err.is_denied() && !err.is_unavailable(), "{url}: {err}");
    }
    let absent = format!("redis://127.0.0.1:{}", support::another_free_port());
    let err = aci_cache::Builder::new()
        .timeout(Duration::from_millis(300))
        .into_async()
        .connect(&absent)
        .await
        .map(|_| ())
        .expect_err("nothing listens");
    assert!(err.is_unavailable(), "{err}");
    // A frozen server: within the timeout (a loaded machine gets 60% slack).
    server.pause();
    let timeout = Duration::from_millis(500);
    let asked = Instant::now();
    let err = aci_cache::Builder::new()
        .is_controller(false)
        .timeout(timeout)
        .into_async()
        .connect(&format!("redis://:s3cret@127.0.0.1:{port}"))
        .await
        .map(|_| ())
        .expect_err("a frozen server cannot be subscribed to");
    let took = asked.elapsed();
    server.resume();
    assert!(err.is_unavailable(), "{err}");
    assert!(took < timeout * 8 / 5, "took {took:?}");
}
