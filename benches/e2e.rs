//! End-to-end figures against a real redis-server that this binary starts on a
//! free loopback port (or `REDIS_URL`), each beside a baseline measured in the
//! same run: plain `GET` / `SET` through the `redis` crate.
//!
//! `cargo bench --bench e2e` prints a table; BENCHMARKS.md records one run.
//! `… -- --bench --hits-only` stops after the hit rows (for `perf record`).
#![allow(missing_docs, reason = "a benchmark binary")]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aci_cache::transports::RedisTransport;
use aci_cache::{AdaptiveCache, Builder, Strategy};

#[path = "shared/hit_rate.rs"]
mod hit_rate;
#[path = "shared/timing.rs"]
mod timing;
use timing::{interleaved, median, micros, percentile, row};

const KEYS: usize = 100_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count = args.iter().position(|a| a == "--count").map(|at| {
        let what = args.get(at + 1).cloned().unwrap_or_default();
        let n: usize = args
            .get(at + 2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000);
        (what, n)
    });
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must stay quick.
    if count.is_none() && !args.iter().any(|a| a == "--bench") {
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
    if let Some((what, n)) = count {
        count_writes(&url, &mut conn, &what, n);
        return;
    }

    println!("| measurement | aci-cache | baseline (same run) | ratio |");
    println!("|---|---|---|---|");

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

    // Hits beside the bare map, same keys and values, alternating rounds.
    let raw: quick_cache::sync::Cache<String, bytes::Bytes> =
        quick_cache::sync::Cache::new(2 * KEYS);
    for i in 0..KEYS {
        raw.insert(key(i), bytes::Bytes::from(value(i)));
    }
    for (label, span) in [("1k hot keys", 1_000), ("100k keys, uniform", KEYS)] {
        for threads in [1, 2] {
            let (ours, bare) = hit_rate::compare(
                threads,
                span,
                key,
                |k| {
                    std::hint::black_box(cache.get(k).unwrap());
                },
                |k| {
                    std::hint::black_box(raw.get(k));
                },
            );
            println!(
                "| near-cache hits/s, {label}, {threads} thread(s) | {:.1} M/s ({:.0} ns) | bare quick_cache: {:.1} M/s | {:.3}× |",
                ours / 1e6,
                threads as f64 * 1e9 / ours,
                bare / 1e6,
                ours / bare
            );
        }
    }
    drop(raw);
    assert_eq!(cache.stats().cache_misses, 0, "every read above was a hit");
    if args.iter().any(|a| a == "--hits-only") {
        return;
    }

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

    // Delivery and first reads, on a quiet machine and then on one kept
    // busy by a CPU hog on every core (as a production host often is).
    for busy in [false, true] {
        let hog = busy.then(Hog::start);
        let label = if busy { "busy" } else { "quiet" };
        let delivery = invalidation_delivery(&url);
        let floor = bare_delivery(&url);
        println!(
            "| invalidation delivery A→B until B reads the new value, p50 / p99, {label} | {:.1} µs / {:.1} µs | bare PUBLISH → subscriber thread → GET: {:.1} µs / {:.1} µs | {:.3}× (p99) |",
            micros(percentile(&delivery, 0.50)),
            micros(percentile(&delivery, 0.99)),
            micros(percentile(&floor, 0.50)),
            micros(percentile(&floor, 0.99)),
            percentile(&delivery, 0.99).as_secs_f64() / percentile(&floor, 0.99).as_secs_f64(),
        );
        let (stale, reads) = first_reads_after_writes(&url);
        let (peer_stale, peer_reads) = first_reads_cache_aio(&url);
        println!("| first read on B right after A's acknowledged eager write, {label} | {stale} of {reads} stale | redis-rs cache-aio (server-assisted tracking): {peer_stale} of {peer_reads} stale | — |");
        drop(hog);
    }

    let sustained = sustained_writes(&url, &mut conn);
    println!(
        "| sustained writes, 2 threads × 10 s, default controller | {:.0} writes/s, worst set {:.1} ms, ends {} | plain SET: {:.0} writes/s, worst {:.1} ms | {:.3}× |",
        sustained.ours.rate,
        sustained.ours.worst.as_secs_f64() * 1e3,
        sustained.strategy,
        sustained.plain.rate,
        sustained.plain.worst.as_secs_f64() * 1e3,
        sustained.ours.rate / sustained.plain.rate,
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
        // Nothing expires during the run: the hit figures measure hits,
        // not refills (with the 10 s default, the later ones were misses).
        .default_ttl(Duration::from_secs(3_600))
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

/// A writes in eager mode; the time until B, which had the old value
/// cached, reads the new one. B's reads are near-cache hits until the
/// invalidation lands, then one `GET` (included: the figure is what a
/// reader sees, a round trip above the delivery itself). Polled through
/// `get` rather than `stats`, whose lock the delivery needs too.
fn invalidation_delivery(url: &str) -> Vec<Duration> {
    let a = follower(url, "bench-delivery", Strategy::Eager);
    let b = follower(url, "bench-delivery", Strategy::Eager);
    a.set("k", "0").unwrap();
    (1..2_000)
        .map(|i| {
            let (old, new) = ((i - 1).to_string(), i.to_string());
            // B holds the old value in its near cache: a read that is a hit.
            loop {
                let hits = b.stats().cache_hits;
                let value = b.get_string("k").unwrap();
                if value.as_deref() == Some(old.as_str()) && b.stats().cache_hits > hits {
                    break;
                }
                std::thread::yield_now();
            }
            let start = Instant::now();
            a.set("k", &new).unwrap();
            // Yield rather than spin: on 2 cores a spinning waiter would
            // starve the threads that deliver the message.
            while b.get_string("k").unwrap().as_deref() != Some(new.as_str()) {
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

/// Threads that spin on every core until dropped: a busy host.
struct Hog {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Hog {
    fn start() -> Hog {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..cores)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Hog { stop, threads }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A writes eagerly; right after each acknowledged write, B (which had
/// the old value cached) reads once. How many of those reads were stale.
fn first_reads_after_writes(url: &str) -> (usize, usize) {
    let a = follower(url, "bench-first-read", Strategy::Eager);
    let b = follower(url, "bench-first-read", Strategy::Eager);
    let reads = 1_000;
    let mut stale = 0;
    for i in 0..reads {
        let key = format!("fr:{}", i % 50);
        a.set(&key, format!("old{i}")).unwrap();
        // B holds the old value in its near cache: a read that is a hit.
        loop {
            let hits = b.stats().cache_hits;
            let value = b.get_string(&key).unwrap();
            if value == Some(format!("old{i}")) && b.stats().cache_hits > hits {
                break;
            }
            std::thread::yield_now();
        }
        a.set(&key, format!("new{i}")).unwrap();
        if b.get_string(&key).unwrap() != Some(format!("new{i}")) {
            stale += 1;
        }
    }
    (stale, reads)
}

/// The floor under a delivery: a bare `redis` subscriber thread that only
/// records what it received; the publisher waits until it has, then reads
/// the key once (as B's `get` does). No cache, no decoding.
fn bare_delivery(url: &str) -> Vec<Duration> {
    let seen = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut sub = support::raw(url);
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let reader = {
        let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut pubsub = sub.as_pubsub();
            pubsub.subscribe("bench-bare").unwrap();
            pubsub
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            ready_tx.send(()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(msg) = pubsub.get_message() {
                    let n: u64 = msg.get_payload().unwrap_or(0);
                    seen.store(n, Ordering::Release);
                }
            }
        })
    };
    ready.recv().unwrap();
    let mut conn = support::raw(url);
    let samples = (1..2_000u64)
        .map(|i| {
            let start = Instant::now();
            let _: u64 = redis::cmd("PUBLISH")
                .arg("bench-bare")
                .arg(i)
                .query(&mut conn)
                .unwrap();
            while seen.load(Ordering::Acquire) != i {
                std::thread::yield_now();
            }
            let _: Option<Vec<u8>> = redis::cmd("GET").arg("k").query(&mut conn).unwrap();
            start.elapsed()
        })
        .collect();
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    samples
}

/// The same first reads through redis-rs's client-side cache (RESP3
/// server-assisted tracking, `cache-aio`): A writes with a plain
/// connection, B reads through a caching connection.
fn first_reads_cache_aio(url: &str) -> (usize, usize) {
    use redis::caching::CacheConfig;
    use redis::AsyncConnectionConfig;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let reads = 1_000;
    runtime.block_on(async {
        let resp3 = format!("{url}?protocol=resp3");
        let client = redis::Client::open(resp3.as_str()).unwrap();
        let config = AsyncConnectionConfig::new().set_cache_config(CacheConfig::new());
        let mut b = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap();
        let mut a = redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let mut stale = 0;
        for i in 0..reads {
            let key = format!("peer-fr:{}", i % 50);
            let (old, new) = (format!("old{i}"), format!("new{i}"));
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(&old)
                .query_async(&mut a)
                .await
                .unwrap();
            // B holds the old value in its client-side cache: a read that hits.
            loop {
                let before = b.get_cache_statistics().map_or(0, |s| s.hit);
                let value: Option<String> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut b)
                    .await
                    .unwrap();
                let hit = b.get_cache_statistics().map_or(0, |s| s.hit) > before;
                if value.as_deref() == Some(old.as_str()) && hit {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(&new)
                .query_async(&mut a)
                .await
                .unwrap();
            let value: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut b)
                .await
                .unwrap();
            if value.as_deref() != Some(new.as_str()) {
                stale += 1;
            }
        }
        (stale, reads)
    })
}

struct Run {
    rate: f64,
    worst: Duration,
}

struct Sustained {
    ours: Run,
    plain: Run,
    strategy: Strategy,
}

/// Two threads write as fast as they can for 10 s, through a cache with
/// the default controller (it elects itself and switches as the rate
/// climbs), then with plain `SET`s: throughput and the slowest single call.
fn sustained_writes(url: &str, _conn: &mut redis::Connection) -> Sustained {
    const FOR: Duration = Duration::from_secs(10);
    let cache = Builder::new()
        .namespace("bench-sustained")
        .connect(url)
        .unwrap();
    let ours = hammer(FOR, |t, i| {
        cache.set(&format!("s:{t}:{}", i % 1_000), "v").unwrap()
    });
    let strategy = cache.strategy();
    let conns: Vec<std::sync::Mutex<redis::Connection>> = (0..2)
        .map(|_| std::sync::Mutex::new(support::raw(url)))
        .collect();
    let plain = hammer(FOR, |t, i| {
        let _: () = redis::cmd("SET")
            .arg(format!("plain-s:{t}:{}", i % 1_000))
            .arg("v")
            .arg("PX")
            .arg(10_000)
            .query(&mut *conns[t].lock().unwrap())
            .unwrap();
    });
    Sustained {
        ours,
        plain,
        strategy,
    }
}

fn hammer(run_for: Duration, write: impl Fn(usize, usize) + Sync) -> Run {
    let start = Instant::now();
    let results: Vec<(usize, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let write = &write;
                s.spawn(move || {
                    let (mut n, mut worst) = (0, Duration::ZERO);
                    while start.elapsed() < run_for {
                        let began = Instant::now();
                        write(t, n);
                        worst = worst.max(began.elapsed());
                        n += 1;
                    }
                    (n, worst)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let writes: usize = results.iter().map(|r| r.0).sum();
    Run {
        rate: writes as f64 / start.elapsed().as_secs_f64(),
        worst: results.iter().map(|r| r.1).max().unwrap_or_default(),
    }
}

/// `n` writes of one kind and nothing else, for `valgrind --tool=callgrind`:
/// the client's instructions per write (Redis runs outside valgrind). A
/// strategy name (`ttl`, `batched`, `eager`) writes through a cache pinned
/// to it; `command` is a bare `SET … PX`, `plain` the same as a pipeline of
/// one, `pipeline` a hand-written `SET` + `PUBLISH`.
fn count_writes(url: &str, conn: &mut redis::Connection, what: &str, n: usize) {
    let payload = r#"{"action": "invalidate", "keys": ["aci:bench-set:user:00000000001"], "strategy": "eager", "timestamp": 1795689266.4763556, "source": "0123456789ab"}"#;
    match what {
        // What the timed `set` rows compare against: one command, no pipeline.
        "command" => {
            for i in 0..n {
                let _: () = redis::cmd("SET")
                    .arg(format!("aci:bench-set:{}", key(i % 500)))
                    .arg("v")
                    .arg("PX")
                    .arg(10_000)
                    .query(conn)
                    .unwrap();
            }
        }
        "plain" | "pipeline" => {
            for i in 0..n {
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(format!("aci:bench-set:{}", key(i % 500)))
                    .arg("v")
                    .arg("PX")
                    .arg(10_000)
                    .ignore();
                if what == "pipeline" {
                    pipe.cmd("PUBLISH")
                        .arg("aci:bench-set:invalidation")
                        .arg(payload)
                        .ignore();
                }
                let _: () = pipe.query(conn).unwrap();
            }
        }
        strategy => {
            let strategy = Strategy::ALL
                .into_iter()
                .find(|s| s.to_string() == strategy)
                .expect("ttl, batched, eager, command, plain or pipeline");
            let writer = follower(url, "bench-set", strategy);
            for i in 0..n {
                writer.set(&key(i % 500), "v").unwrap();
            }
        }
    }
}
