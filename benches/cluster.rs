//! The cache on a Redis Cluster this binary starts (3 masters + 3 replicas
//! on free loopback ports), each figure beside its plain-cluster baseline
//! measured in the same run, in alternating blocks:
//! - a miss (`GET` + `PTTL` + near-cache fill) vs a plain cluster `GET`;
//! - an eager `set` vs a plain cluster `SET`, with the key on the node that
//!   carries the invalidation channel (one round trip: vs both commands
//!   pipelined to that node by hand) and on another node (two: vs `SET`
//!   then `SPUBLISH` by hand);
//! - invalidation delivery A → B with the channel on each master, p50/p99.
//!
//! `cargo bench --bench cluster --features cluster`.
#![allow(missing_docs, reason = "a benchmark binary")]

#[path = "../tests/support/mod.rs"]
mod support;
#[allow(dead_code, reason = "shared with the e2e benchmark")]
#[path = "shared/timing.rs"]
mod timing;

use std::time::{Duration, Instant};

use aci_cache::transports::RedisClusterTransport;
use aci_cache::{AdaptiveCache, Builder, Strategy};
use support::cluster::{slot_of, RedisCluster};
use timing::{interleaved, median, percentile, row};

type Cache = AdaptiveCache<RedisClusterTransport>;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("cluster: run with `cargo bench --bench cluster --features cluster`");
        return;
    }
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let client = redis::cluster::ClusterClient::new(urls.clone()).unwrap();
    let mut plain = client.get_connection().unwrap();
    println!("| measurement | aci-cache | plain cluster client (same run) | ratio |");
    println!("|---|---|---|---|");

    // Misses: a reader whose near cache never holds the keys (each read
    // a different key), against a plain GET of the same keys.
    let ns = "bench-miss";
    let writer = cache(&urls, ns, Strategy::Ttl);
    for i in 0..8_000 {
        writer.set(&key(i), "v").unwrap();
    }
    let reader = cache(&urls, ns, Strategy::Ttl);
    let (ours, base) = interleaved(
        20,
        200,
        |i| {
            reader.get(&key(i)).unwrap();
        },
        |i| {
            let _: Option<Vec<u8>> = redis::cmd("GET")
                .arg(format!("aci:{ns}:{}", key(4_000 + i)))
                .query(&mut plain)
                .unwrap();
        },
    );
    row("miss (GET + PTTL + fill)", median(&ours), median(&base));

    // Eager sets: the key's master is the channel's, or another one.
    let ns = "bench-set";
    let eager = cache(&urls, ns, Strategy::Eager);
    let channel = eager
        .instance()
        .settings()
        .core()
        .invalidation_channel()
        .to_owned();
    let channel_master = cluster.master_of_slot(slot_of(&channel));
    let same = keys_where(ns, 500, |slot| {
        cluster.master_of_slot(slot) == channel_master
    });
    let other = keys_where(ns, 500, |slot| {
        cluster.master_of_slot(slot) != channel_master
    });
    for (label, keys) in [
        ("set, eager, key on the channel's node", &same),
        ("set, eager, key on another node", &other),
    ] {
        let (ours, base) = interleaved(
            20,
            100,
            |i| eager.set(&keys[i % keys.len()], "v").unwrap(),
            |i| {
                redis::cmd("SET")
                    .arg(format!("aci:{ns}:{}", keys[i % keys.len()]))
                    .arg("v")
                    .arg("PX")
                    .arg(10_000)
                    .query::<()>(&mut plain)
                    .unwrap()
            },
        );
        row(label, median(&ours), median(&base));
        // The same by hand: `SET`, then once acknowledged `SPUBLISH` of a
        // message of the same size: the two round trips eager needs.
        let payload = format!(
            r#"{{"action": "invalidate", "keys": ["aci:{ns}:{}"], "strategy": "eager", "timestamp": 1795689266.4763556, "source": "0123456789ab"}}"#,
            keys[0]
        );
        let (ours, base) = interleaved(
            20,
            100,
            |i| eager.set(&keys[i % keys.len()], "v").unwrap(),
            |i| {
                redis::cmd("SET")
                    .arg(format!("aci:{ns}:{}", keys[i % keys.len()]))
                    .arg("v")
                    .arg("PX")
                    .arg(10_000)
                    .query::<()>(&mut plain)
                    .unwrap();
                redis::cmd("SPUBLISH")
                    .arg(&channel)
                    .arg(&payload)
                    .query::<i64>(&mut plain)
                    .unwrap();
            },
        );
        row(
            &format!("{label}, vs SET then SPUBLISH by hand"),
            median(&ours),
            median(&base),
        );
        if keys == &same {
            // One master owns key and channel: the floor is both commands
            // pipelined on one connection to it, one round trip.
            let mut node = redis::Client::open(cluster.url_of(channel_master))
                .unwrap()
                .get_connection()
                .unwrap();
            let (ours, base) = interleaved(
                20,
                100,
                |i| eager.set(&keys[i % keys.len()], "v").unwrap(),
                |i| {
                    redis::pipe()
                        .cmd("SET")
                        .arg(format!("aci:{ns}:{}", keys[i % keys.len()]))
                        .arg("v")
                        .arg("PX")
                        .arg(10_000)
                        .ignore()
                        .cmd("SPUBLISH")
                        .arg(&channel)
                        .arg(&payload)
                        .ignore()
                        .query::<()>(&mut node)
                        .unwrap();
                },
            );
            row(
                &format!("{label}, vs SET + SPUBLISH pipelined to that master by hand"),
                median(&ours),
                median(&base),
            );
        }
    }
    let ttl = cache(&urls, ns, Strategy::Ttl);
    let (ours, base) = interleaved(
        20,
        100,
        |i| ttl.set(&other[i % other.len()], "v").unwrap(),
        |i| {
            redis::cmd("SET")
                .arg(format!("aci:{ns}:{}", other[i % other.len()]))
                .arg("v")
                .arg("PX")
                .arg(10_000)
                .query::<()>(&mut plain)
                .unwrap()
        },
    );
    row("set, ttl", median(&ours), median(&base));

    // Delivery A → B: a bucket channel on each master in turn.
    let ns = "bench-delivery";
    let sharded = |b: Builder| b.naming(aci_cache::Naming::Sharded { buckets: 16 });
    let a = cache_with(&urls, ns, Strategy::Eager, sharded);
    let b = cache_with(&urls, ns, Strategy::Eager, sharded);
    let config = a.instance().settings().core().clone();
    for master in cluster.masters() {
        let key = (0..)
            .map(|i| format!("d{i}"))
            .find(|k| {
                let channel = config.invalidation_channel_of(config.bucket_of(k));
                cluster.master_of_slot(slot_of(&channel)) == master
            })
            .unwrap();
        let samples = delivery(&a, &b, &key, 1_000);
        println!(
            "| delivery A→B until B reads the new value, channel on master :{master}, p50 / p99 | {:.1} µs / {:.1} µs | — | — |",
            timing::micros(median(&samples)),
            timing::micros(percentile(&samples, 0.99)),
        );
    }
}

fn cache(urls: &[String], ns: &str, strategy: Strategy) -> Cache {
    cache_with(urls, ns, strategy, |b| b)
}

fn cache_with(
    urls: &[String],
    ns: &str,
    strategy: Strategy,
    tune: impl FnOnce(Builder) -> Builder,
) -> Cache {
    let cache = tune(Builder::new().namespace(ns).is_controller(false))
        .default_ttl(Duration::from_secs(3_600))
        .connect_cluster(urls)
        .unwrap();
    cache.force_strategy(Some(strategy)).unwrap();
    cache
}

fn key(i: usize) -> String {
    format!("user:{i:011}")
}

/// `n` keys whose stored form's slot passes `wanted`.
fn keys_where(ns: &str, n: usize, wanted: impl Fn(u16) -> bool) -> Vec<String> {
    (0..)
        .map(key)
        .filter(|k| wanted(slot_of(&format!("aci:{ns}:{k}"))))
        .take(n)
        .collect()
}

/// A writes `key` eagerly; the time until B, which held the old value,
/// reads the new one (one `GET` included, as in the e2e benchmark).
fn delivery(a: &Cache, b: &Cache, key: &str, n: usize) -> Vec<Duration> {
    a.set(key, "0").unwrap();
    (1..=n)
        .map(|i| {
            let (old, new) = ((i - 1).to_string(), i.to_string());
            loop {
                let hits = b.stats().cache_hits;
                let value = b.get_string(key).unwrap();
                if value.as_deref() == Some(old.as_str()) && b.stats().cache_hits > hits {
                    break;
                }
                std::thread::yield_now();
            }
            let start = Instant::now();
            a.set(key, &new).unwrap();
            while b.get_string(key).unwrap().as_deref() != Some(new.as_str()) {
                std::thread::yield_now();
            }
            start.elapsed()
        })
        .collect()
}
