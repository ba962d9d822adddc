//! End-to-end figures against a real redis-server that this binary starts on a
//! free loopback port (or `REDIS_URL`), each beside a baseline measured in the
//! same run: plain `GET` / `SET` through the `redis` crate.
//!
//! `cargo bench --bench e2e` prints a table; BENCHMARKS.md records one run.
#![allow(missing_docs, reason = "a benchmark binary")]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aci_cache::transports::RedisTransport;
use aci_cache::{AdaptiveCache, Builder, Strategy};

const KEYS: usize = 100_000;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("e2e: run with `cargo bench --bench e2e`");
        return;
    }
    let server = std::env::var("REDIS_URL")
        .is_err()
        .then(support::RedisServer::start);
    let url = server.as_ref().map_or_else(
        || std::env::var("REDIS_URL").unwrap_or_default(),
        |s| s.url(),
    );
    let mut conn = support::raw(&url);
    let _: () = redis::cmd("FLUSHDB").query(&mut conn).expect("flushdb");

    println!("| measurement | aci-cache | baseline (same run) | ratio |");
    println!("|---|---|---|---|");

    let plain_get = median(&sample(2_000, |i| {
        let _: Option<Vec<u8>> = redis::cmd("GET")
            .arg(format!("plain:{}", i % 100))
            .query(&mut conn)
            .unwrap();
    }));

    let cache = follower(&url, "bench", Strategy::Eager);
    let rss_before = rss_bytes();
    for i in 0..KEYS {
        cache.set(&key(i), value(i)).unwrap();
    }
    let rss_after = rss_bytes();
    let stats = cache.stats();
    assert_eq!(
        stats.near_cache_entries, KEYS,
        "every written key is in the near cache"
    );

    // Near-cache hits over 100k keys, in batches of 1,000 (a clock read per batch).
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let hit_batches: Vec<Duration> = (0..2_000)
        .map(|_| {
            let keys: Vec<String> = (0..1_000)
                .map(|_| key(next(&mut rng) as usize % KEYS))
                .collect();
            let start = Instant::now();
            for k in &keys {
                std::hint::black_box(cache.get(k).unwrap());
            }
            start.elapsed() / 1_000
        })
        .collect();
    let hit = median(&hit_batches);
    row("near-cache hit, p50 over 100k keys", hit, plain_get);
    let hot_batches: Vec<Duration> = (0..2_000)
        .map(|_| {
            let keys: Vec<String> = (0..1_000)
                .map(|_| key(next(&mut rng) as usize % 1_000))
                .collect();
            let start = Instant::now();
            for k in &keys {
                std::hint::black_box(cache.get(k).unwrap());
            }
            start.elapsed() / 1_000
        })
        .collect();
    row(
        "near-cache hit, p50 over 1k hot keys",
        median(&hot_batches),
        plain_get,
    );

    // The backing map alone, same keys and values: what the near cache adds to it.
    let raw: quick_cache::sync::Cache<String, bytes::Bytes> =
        quick_cache::sync::Cache::new(2 * KEYS);
    for i in 0..KEYS {
        raw.insert(key(i), bytes::Bytes::from(value(i)));
    }
    let raw_batches: Vec<Duration> = (0..2_000)
        .map(|_| {
            let keys: Vec<String> = (0..1_000)
                .map(|_| key(next(&mut rng) as usize % KEYS))
                .collect();
            let start = Instant::now();
            for k in &keys {
                std::hint::black_box(raw.get(k.as_str()));
            }
            start.elapsed() / 1_000
        })
        .collect();
    row(
        "near-cache hit vs bare quick_cache get, 100k keys",
        hit,
        median(&raw_batches),
    );
    drop(raw);

    let throughput = |threads: usize| hit_throughput(&cache, threads);
    let one = throughput(1);
    let two = throughput(2);
    println!(
        "| near-cache hits/s, 1 thread / 2 threads | {:.1} M/s / {:.1} M/s | plain GET, 1 connection: {:.3} M/s | {:.2}× scaling |",
        one / 1e6,
        two / 1e6,
        1.0 / plain_get.as_secs_f64() / 1e6,
        two / one
    );

    // Misses: a second instance has an empty near cache; each read is one GET + fill.
    let cold = follower(&url, "bench", Strategy::Eager);
    let (miss, get) = interleaved(
        20,
        250,
        |i| {
            std::hint::black_box(cold.get(&key(i)).unwrap());
        },
        |i| {
            let _: Option<Vec<u8>> = redis::cmd("GET")
                .arg(format!("aci:bench:{}", key(i)))
                .query(&mut conn)
                .unwrap();
        },
    );
    row("miss (GET + near-cache fill)", median(&miss), median(&get));

    for strategy in Strategy::ALL {
        let writer = follower(&url, "bench-set", strategy);
        let (ours, plain) = interleaved(
            20,
            150,
            |i| writer.set(&key(i % 500), "v").unwrap(),
            |i| {
                let _: () = redis::cmd("SET")
                    .arg(format!("plain:{}", i % 500))
                    .arg("v")
                    .arg("PX")
                    .arg(10_000)
                    .query(&mut conn)
                    .unwrap();
            },
        );
        row(&format!("set, {strategy}"), median(&ours), median(&plain));
        if strategy == Strategy::Eager {
            // The same two commands sent by hand: what Redis itself charges for
            // the PUBLISH (and for waking the subscribers, here the writer's own).
            let channel = "aci:bench-set:invalidation";
            let payload = r#"{"action": "invalidate", "keys": ["aci:bench-set:user:00000000001"], "strategy": "eager", "timestamp": 1795689266.4763556, "source": "0123456789ab"}"#;
            let (ours, piped) = interleaved(
                20,
                150,
                |i| writer.set(&key(i % 500), "v").unwrap(),
                |i| {
                    let _: () = redis::pipe()
                        .cmd("SET")
                        .arg(format!("aci:bench-set:{}", key(i % 500)))
                        .arg("v")
                        .arg("PX")
                        .arg(10_000)
                        .ignore()
                        .cmd("PUBLISH")
                        .arg(channel)
                        .arg(payload)
                        .ignore()
                        .query(&mut conn)
                        .unwrap();
                },
            );
            row(
                "set, eager vs SET+PUBLISH pipelined by hand",
                median(&ours),
                median(&piped),
            );
        }
    }

    let delivery = invalidation_delivery(&url);
    println!(
        "| invalidation delivery A→B, p50 / p99 | {:.1} µs / {:.1} µs | — | — |",
        micros(percentile(&delivery, 0.50)),
        micros(percentile(&delivery, 0.99)),
    );

    println!(
        "| memory per near-cache entry (16 B key, 32 B value) | {} B charged; {} B of process RSS | — | — |",
        stats.near_cache_bytes / KEYS as u64,
        rss_after.saturating_sub(rss_before) / KEYS as u64,
    );
    drop(server);
}

fn follower(url: &str, ns: &str, strategy: Strategy) -> AdaptiveCache<RedisTransport> {
    let cache = Builder::new()
        .namespace(ns)
        .is_controller(false)
        .near_cache_max_entries(2 * KEYS)
        .connect(url)
        .unwrap();
    cache.force_strategy(Some(strategy)).unwrap();
    cache
}

fn key(i: usize) -> String {
    format!("user:{i:011}")
}

fn value(i: usize) -> String {
    format!("{{\"id\": {i:08}, \"name\": \"abc\"}}")
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Samples `ours` and `baseline` in alternating blocks, so that a machine
/// busy for a while slows both alike; returns (ours, baseline).
fn interleaved(
    rounds: usize,
    per_round: usize,
    mut ours: impl FnMut(usize),
    mut baseline: impl FnMut(usize),
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        b.extend(sample(per_round, |i| baseline(r * per_round + i)));
        a.extend(sample(per_round, |i| ours(r * per_round + i)));
    }
    (a, b)
}

fn sample(n: usize, mut op: impl FnMut(usize)) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let start = Instant::now();
            op(i);
            start.elapsed()
        })
        .collect()
}

fn median(samples: &[Duration]) -> Duration {
    percentile(samples, 0.5)
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn row(what: &str, ours: Duration, baseline: Duration) {
    let fmt = |d: Duration| {
        if d < Duration::from_micros(10) {
            format!("{} ns", d.as_nanos())
        } else {
            format!("{:.1} µs", micros(d))
        }
    };
    println!(
        "| {what} | {} | {} | {:.3}× |",
        fmt(ours),
        fmt(baseline),
        ours.as_secs_f64() / baseline.as_secs_f64()
    );
}

fn hit_throughput(cache: &AdaptiveCache<RedisTransport>, threads: usize) -> f64 {
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (stop, total) = (&stop, &total);
            s.spawn(move || {
                let keys: Vec<String> = (0..4096).map(|i| key((i * 24 + t * 7) % KEYS)).collect();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for k in &keys {
                        std::hint::black_box(cache.get(k).unwrap());
                    }
                    n += keys.len() as u64;
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
    });
    total.load(Ordering::Relaxed) as f64
}

/// A writes in eager mode; the time until B has handled the invalidation.
fn invalidation_delivery(url: &str) -> Vec<Duration> {
    let a = follower(url, "bench-delivery", Strategy::Eager);
    let b = Arc::new(follower(url, "bench-delivery", Strategy::Eager));
    (0..2_000)
        .map(|i| {
            let before = b.stats().messages_received;
            let start = Instant::now();
            a.set("k", i.to_string()).unwrap();
            // Yield rather than spin: on 2 cores a spinning waiter would
            // starve the threads that deliver the message.
            while b.stats().messages_received == before {
                std::thread::yield_now();
            }
            start.elapsed()
        })
        .collect()
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
