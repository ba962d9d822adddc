//! Near-cache hits beside the bare map they sit on, same keys, same values,
//! same run: throughput on one thread and two, hot keys and uniform keys.
//!
//! `cargo bench --bench hits` prints a table; `… -- --count ours|bare N`
//! runs N hits and nothing else, for `valgrind --tool=callgrind` (see
//! BENCHMARKS.md for the instructions-per-hit figure); `… -- --clock`
//! prints what one read of each clock a hit could use costs.
#![allow(missing_docs, reason = "a benchmark binary")]

use std::time::Duration;

use aci_cache::transports::MemoryTransport;
use aci_cache::{AdaptiveCache, Builder, Strategy};
use bytes::Bytes;

#[path = "shared/hit_rate.rs"]
mod hit_rate;

const KEYS: usize = 100_000;

type Bare = quick_cache::sync::Cache<String, Bytes>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--count") {
        let which = args.get(at + 1).map_or("ours", String::as_str);
        let n: usize = args
            .get(at + 2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        count(which, n);
        return;
    }
    if args.iter().any(|a| a == "--clock") {
        clock_reads();
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must stay quick.
    if !args.iter().any(|a| a == "--bench") {
        println!("hits: run with `cargo bench --bench hits`");
        return;
    }
    let (ours, bare) = filled(KEYS);
    println!("| keys | threads | aci-cache hits/s | bare quick_cache hits/s (same run) | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for (label, span) in [("1k hot", 1_000), ("100k uniform", KEYS)] {
        for threads in [1, 2] {
            let (a, b) = hit_rate::compare(
                threads,
                span,
                key,
                |k| {
                    std::hint::black_box(ours.get(k).unwrap());
                },
                |k| {
                    std::hint::black_box(bare.get(k));
                },
            );
            println!(
                "| {label} | {threads} | {:.1} M/s | {:.1} M/s | {:.2}× |",
                a / 1e6,
                b / 1e6,
                a / b
            );
        }
    }
}

/// Our cache (eager, subscribed, every key cached) and the bare map with
/// the same keys and values.
fn filled(keys: usize) -> (AdaptiveCache<MemoryTransport>, Bare) {
    let ours = Builder::new()
        .namespace("hits")
        .is_controller(false)
        .near_cache_max_entries(2 * keys)
        // Long enough that nothing expires during the run: a hit, not a
        // refill, is what is measured.
        .default_ttl(Duration::from_secs(3_600))
        .transport(MemoryTransport::new())
        .unwrap();
    ours.force_strategy(Some(Strategy::Eager)).unwrap();
    let bare = Bare::new(2 * keys);
    for i in 0..keys {
        ours.set(&key(i), value(i)).unwrap();
        bare.insert(key(i), Bytes::from(value(i)));
    }
    assert_eq!(ours.stats().near_cache_entries, keys, "every key cached");
    (ours, bare)
}

/// `n` hits over 1k keys on one thread, and nothing else to count.
fn count(which: &str, n: usize) {
    let (ours, bare) = filled(1_000);
    let keys: Vec<String> = (0..1_000).map(key).collect();
    for i in 0..n {
        let k = &keys[i % keys.len()];
        if which == "bare" {
            std::hint::black_box(bare.get(k.as_str()));
        } else {
            std::hint::black_box(ours.get(k).unwrap());
        }
    }
}

fn key(i: usize) -> String {
    format!("user:{i:011}")
}

fn value(i: usize) -> String {
    format!("{{\"id\": {i:08}, \"name\": \"abc\"}}")
}

/// Nanoseconds per read of the coarse clock the hit path reads, and of
/// `std::time::Instant`, best of five runs of 20 M reads.
fn clock_reads() {
    fn per_read(read: impl Fn() -> u64) -> f64 {
        const N: u64 = 20_000_000;
        (0..5)
            .map(|_| {
                let start = std::time::Instant::now();
                let mut sum = 0u64;
                for _ in 0..N {
                    sum = sum.wrapping_add(std::hint::black_box(read()));
                }
                std::hint::black_box(sum);
                start.elapsed().as_nanos() as f64 / N as f64
            })
            .fold(f64::MAX, f64::min)
    }
    let origin = coarsetime::Instant::now_without_cache_update();
    let coarse = per_read(|| {
        coarsetime::Instant::now_without_cache_update()
            .duration_since(origin)
            .as_nanos()
    });
    let std_origin = std::time::Instant::now();
    let std = per_read(|| std_origin.elapsed().as_nanos() as u64);
    println!("coarse clock (coarsetime, as the hit reads it): {coarse:.1} ns per read");
    println!("std::time::Instant: {std:.1} ns per read");
}
