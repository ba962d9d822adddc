//! The async cache on a real Redis Cluster this binary starts, beside a
//! blocking instance: freshness on every shard, every strategy's bound, and
//! the fleet's recovery after the control slot's master is killed.
#![cfg(all(feature = "cluster", feature = "tokio"))]

mod support;

use std::time::{Duration, Instant};

use aci_cache::transports::RedisClusterAsyncTransport;
use aci_cache::{AsyncAdaptiveCache, Builder, Strategy};
use support::cluster::{slot_of, RedisCluster};
use support::unique_namespace;

type Cache = AsyncAdaptiveCache<RedisClusterAsyncTransport>;

async fn cache_on(urls: &[String], ns: &str, tune: impl FnOnce(Builder) -> Builder) -> Cache {
    let cache = tune(Builder::new().namespace(ns).is_controller(false))
        .into_async()
        .connect_cluster(urls)
        .await
        .expect("connect to the test cluster");
    assert!(cache.is_subscribed());
    cache
}

async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

/// Keys whose stored form lands on each master.
fn keys_on_every_master(cluster: &RedisCluster, ns: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for master in cluster.masters() {
        let key = (0..)
            .map(|i| format!("user:{i}"))
            .find(|k| cluster.master_of_slot(slot_of(&format!("aci:{ns}:{k}"))) == master)
            .unwrap();
        keys.push(key);
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_and_blocking_instances_stay_fresh_on_every_shard() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let urls = cluster.urls();
    let ns = unique_namespace("async-cluster");
    let a = cache_on(&urls, &ns, |b| b).await;
    let b = cache_on(&urls, &ns, |b| b).await;
    a.force_strategy(Some(Strategy::Eager)).await.unwrap();
    b.force_strategy(Some(Strategy::Eager)).await.unwrap();
    let keys = keys_on_every_master(&cluster, &ns);
    // A blocking instance in the same fleet writes too.
    let blocking = {
        let (urls, ns) = (urls.clone(), ns.clone());
        tokio::task::spawn_blocking(move || {
            let c = Builder::new()
                .namespace(&ns)
                .is_controller(false)
                .connect_cluster(&urls)
                .unwrap();
            c.force_strategy(Some(Strategy::Eager)).unwrap();
            c
        })
        .await
        .unwrap()
    };
    for round in 0..5 {
        for key in &keys {
            let value = format!("a{round}");
            a.set(key, &value).await.unwrap();
            assert!(
                eventually(Duration::from_secs(1), async || {
                    b.get_string(key).await.unwrap().as_deref() == Some(value.as_str())
                })
                .await,
                "round {round}: {key} stale on B after A's write"
            );
            let value = format!("blocking{round}");
            let (c, k, v) = (blocking.clone(), key.clone(), value.clone());
            tokio::task::spawn_blocking(move || c.set(&k, &v).unwrap())
                .await
                .unwrap();
            assert!(
                eventually(Duration::from_secs(1), async || {
                    b.get_string(key).await.unwrap().as_deref() == Some(value.as_str())
                })
                .await,
                "round {round}: {key} stale on B after the blocking write"
            );
        }
    }
    assert!(b.stats().messages_received >= 30);
    let _ = tokio::task::spawn_blocking(move || drop(blocking)).await;
    a.stop().await;
    b.stop().await;
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_fleet_recovers_from_a_killed_control_master() {
    let mut cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let urls = cluster.urls();
    let ns = unique_namespace("async-failover");
    let auto = |b: Builder| {
        b.role(aci_cache::Role::Auto)
            .controller_interval(Duration::from_millis(300))
    };
    let fleet = vec![
        cache_on(&urls, &ns, auto).await,
        cache_on(&urls, &ns, auto).await,
        cache_on(&urls, &ns, auto).await,
    ];
    assert!(
        eventually(Duration::from_secs(5), async || {
            fleet.iter().all(|c| c.stats().term >= 1)
                && fleet.iter().filter(|c| c.stats().is_controller).count() == 1
        })
        .await
    );
    let old = fleet.iter().map(|c| c.stats().term).max().unwrap();
    let lease = fleet[0].instance().settings().core().lease_key().to_owned();
    let control = cluster.master_of_slot(slot_of(&lease));
    let killed = Instant::now();
    cluster.node(control).kill();
    let recovered = eventually(Duration::from_secs(30), async || {
        let stats: Vec<_> = fleet.iter().map(|c| c.stats()).collect();
        let term = stats.iter().map(|s| s.term).max().unwrap_or(0);
        stats.iter().filter(|s| s.is_controller).count() == 1
            && term > old
            && stats.iter().all(|s| s.term == term && s.subscribed)
    })
    .await;
    let view: Vec<_> = fleet
        .iter()
        .map(|c| {
            (
                c.stats().term,
                c.stats().is_controller,
                c.stats().subscribed,
            )
        })
        .collect();
    assert!(recovered, "not recovered: {view:?}, old term {old}");
    eprintln!("async fleet recovered in {:?}", killed.elapsed());
    for cache in fleet {
        cache.stop().await;
    }
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
}
