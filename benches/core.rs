//! Hot paths of aci-core, with virtual time advanced in the loop.
//!
//! Each group measures our code beside a naive or general-purpose baseline in
//! the same run, so ratios survive a noisy machine:
//! - tracker: bucket ring vs a deque of timestamps (the original's design);
//! - controller tick at 0 to 1M writes/s vs the original's trim-and-count;
//! - decode: ours vs `serde_json::Value`; a timestamp by ryu vs `core::fmt`;
//! - auth: HMAC-SHA256 seal and verify vs the decode they guard.
#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::collections::VecDeque;
use std::hint::black_box;

use aci_core::wire::{decode, encode_invalidation, Limits, MessageKey, Signer};
use aci_core::{Config, Duration, Engine, Instant, RateTracker, Role, Strategy};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// 20,000 writes/s: the rate at which the original stalls for 1.35 s.
const STEP: Duration = Duration::from_micros(50);

fn tracker(c: &mut Criterion) {
    let mut g = c.benchmark_group("tracker");
    g.throughput(Throughput::Elements(1));
    let mut t = RateTracker::<50>::new(Duration::from_secs(5));
    let mut now = Instant::ZERO;
    g.bench_function("record", |b| {
        b.iter(|| {
            now += STEP;
            t.record(black_box(now));
        })
    });
    let mut naive: VecDeque<u64> = VecDeque::new();
    let mut now = 0u64;
    g.bench_function("record_naive_deque", |b| {
        b.iter(|| {
            now += STEP.as_nanos();
            naive.push_back(black_box(now));
            // Keep memory bounded as the original's trim would.
            while naive.front().is_some_and(|&f| f + 5_000_000_000 < now) {
                naive.pop_front();
            }
        })
    });
    let mut full = RateTracker::<50>::new(Duration::from_secs(5));
    for i in 0..100_000u64 {
        full.record(Instant::from_micros(i * 50));
    }
    let at = Instant::from_secs(5);
    g.bench_function("rate", |b| b.iter(|| black_box(full.rate(black_box(at)))));
    g.finish();
}

fn handle_write(c: &mut Criterion) {
    let mut g = c.benchmark_group("handle_write");
    g.throughput(Throughput::Elements(1));
    let keys: Vec<String> = (0..64).map(|i| format!("user:{i}:profile")).collect();
    for strategy in Strategy::ALL {
        let config = Config::builder()
            .role(Role::Follower)
            .build()
            .unwrap_or_default();
        let mut e = Engine::new(config, "bench-instance").expect("valid id");
        e.start(Instant::ZERO);
        e.force_strategy(Instant::ZERO, Some(strategy));
        while e.poll_effect().is_some() {}
        let mut now = Instant::ZERO;
        let mut i = 0usize;
        g.bench_function(strategy.as_str(), |b| {
            b.iter(|| {
                now += STEP;
                i = (i + 1) & 63;
                if e.handle_write(now, black_box(&keys[i])).is_ok() {
                    e.handle_write_acknowledged(now);
                }
                if e.poll_timeout().is_some_and(|d| d <= now) {
                    e.handle_timeout(now);
                }
                while let Some(effect) = e.poll_effect() {
                    let _ = black_box(effect);
                }
            })
        });
    }
    // Every write a new key: inserts, and an early flush every 256 keys
    // (its encoding amortised over the writes that filled it).
    let distinct: Vec<String> = (0..10_000).map(|i| format!("order:{i}:status")).collect();
    let config = Config::builder()
        .role(Role::Follower)
        .build()
        .unwrap_or_default();
    let mut e = Engine::new(config, "bench-instance").expect("valid id");
    e.start(Instant::ZERO);
    e.force_strategy(Instant::ZERO, Some(Strategy::Batched));
    while e.poll_effect().is_some() {}
    let (mut now, mut i) = (Instant::ZERO, 0usize);
    g.bench_function("batched_distinct_keys", |b| {
        b.iter(|| {
            now += STEP;
            i = (i + 1) % distinct.len();
            if e.handle_write(now, black_box(&distinct[i])).is_ok() {
                e.handle_write_acknowledged(now);
            }
            if e.poll_timeout().is_some_and(|d| d <= now) {
                e.handle_timeout(now);
            }
            while let Some(effect) = e.poll_effect() {
                let _ = black_box(effect);
            }
        })
    });
    g.finish();
}

/// A controller whose window is full at `rate` writes/s, just before its tick
/// (forced to control: no lease to win first).
fn loaded_controller(rate: u64) -> (Engine, Instant) {
    let config = Config::builder()
        .role(Role::Controller)
        .build()
        .expect("valid config");
    let mut e = Engine::new(config, "bench-controller").expect("valid id");
    // Start 5 s in, so that the 5 s of writes before the first tick fall
    // after time zero (before, they wrapped around it).
    e.start(Instant::from_nanos(5_000_000_000));
    let tick = e.poll_timeout().expect("controller tick armed");
    let writes = rate * 5;
    for i in 0..writes {
        let at = Instant::from_nanos(
            tick.as_nanos() - 5_000_000_000 + i * 5_000_000_000 / writes.max(1),
        );
        if e.handle_write(at, "k").is_ok() {
            e.handle_write_acknowledged(at);
        }
        while e.poll_effect().is_some() {}
    }
    (e, tick)
}

fn controller_tick(c: &mut Criterion) {
    let mut g = c.benchmark_group("controller_tick");
    for rate in [0u64, 1_000, 20_000, 1_000_000] {
        let (engine, tick) = loaded_controller(rate);
        g.bench_function(format!("{rate}_writes_per_s"), |b| {
            b.iter_batched_ref(
                || engine.clone(),
                |e| {
                    e.handle_timeout(tick);
                    while let Some(effect) = e.poll_effect() {
                        let _ = black_box(effect);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    // The original: a list of timestamps, trimmed with pop(0) and counted.
    for rate in [1_000u64, 20_000] {
        let window: VecDeque<f64> = (0..rate * 6).map(|i| i as f64 / rate as f64).collect();
        g.bench_function(format!("naive_{rate}_writes_per_s"), |b| {
            b.iter_batched_ref(
                || window.clone(),
                |w| {
                    let cutoff = 6.0 - 5.0;
                    while w.front().is_some_and(|&t| t < cutoff) {
                        w.pop_front();
                    }
                    black_box(w.len() as f64 / 5.0)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn wire(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    for n in [1usize, 100] {
        let keys: Vec<String> = (0..n).map(|i| format!("user:{i}:profile")).collect();
        let encode = |out: &mut Vec<u8>| {
            out.clear();
            let _ = encode_invalidation(
                out,
                keys.iter().map(String::as_str),
                Strategy::Batched,
                black_box(1_795_689_266.476_355_6),
                "d0a44428e335",
            );
        };
        let mut out: Vec<u8> = Vec::with_capacity(8192);
        g.bench_function(format!("encode_{n}_keys"), |b| {
            b.iter(|| {
                encode(&mut out);
                black_box(out.len())
            })
        });
        // Encoded here too: a filtered run (`-- wire/decode`) skips the bench above.
        let mut payload = Vec::new();
        encode(&mut payload);
        // Built once, as the engine does: building a `Config` costs more than a decode.
        let limits = Limits::default();
        assert!(decode(&payload, limits).is_ok());
        g.throughput(Throughput::Bytes(payload.len() as u64));
        g.bench_function(format!("decode_{n}_keys"), |b| {
            b.iter(|| {
                let message = decode(black_box(&payload), limits);
                black_box(message.is_ok())
            })
        });
        g.bench_function(format!("decode_{n}_keys_and_walk"), |b| {
            b.iter(|| {
                if let Ok(aci_core::wire::Message::Invalidate(inv)) =
                    decode(black_box(&payload), limits)
                {
                    for k in inv.keys {
                        black_box(k.raw());
                    }
                }
            })
        });
        g.bench_function(format!("serde_json_value_{n}_keys"), |b| {
            b.iter(|| {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(&payload)).is_ok())
            })
        });
        g.throughput(Throughput::Elements(1));
    }
    // A message's timestamp, written as the encoder writes it (ryu) and as
    // it wrote it before (`core::fmt`'s shortest representation).
    let mut text: Vec<u8> = Vec::with_capacity(64);
    let timestamp = 1_795_689_266.476_355_6_f64;
    g.bench_function("timestamp_ryu", |b| {
        let mut buffer = ryu::Buffer::new();
        b.iter(|| {
            text.clear();
            text.extend_from_slice(buffer.format_finite(black_box(timestamp)).as_bytes());
            black_box(text.len())
        })
    });
    g.bench_function("timestamp_core_fmt", |b| {
        use std::io::Write as _;
        b.iter(|| {
            text.clear();
            let _ = write!(text, "{}", black_box(timestamp));
            black_box(text.len())
        })
    });
    g.finish();
}

/// Message authentication beside the decode it guards, in the same run:
/// sealing a 1-key invalidation, verifying it, and decoding it.
fn auth(c: &mut Criterion) {
    let mut g = c.benchmark_group("auth");
    let key = MessageKey::new(b"a 32-byte secret from the vault!").expect("valid key");
    let signer = Signer::new(&[key]).expect("one key");
    let mut plain: heapless::Vec<u8, 1024> = heapless::Vec::new();
    let mut sink = Vec::new();
    let _ = encode_invalidation(
        &mut sink,
        ["user:42:profile"],
        Strategy::Eager,
        1_795_689_266.476_355_6,
        "d0a44428e335",
    );
    plain.extend_from_slice(&sink).expect("fits");
    let mut sealed = plain.clone();
    signer.seal(&mut sealed, 0).expect("fits");
    let limits = Limits::default();
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_1_key", |b| {
        b.iter(|| black_box(decode(black_box(&plain), limits).is_ok()))
    });
    g.bench_function("verify_1_key", |b| {
        b.iter(|| black_box(signer.verify(black_box(&sealed)).is_ok()))
    });
    g.bench_function("seal_1_key", |b| {
        b.iter_batched_ref(
            || plain.clone(),
            |m| black_box(signer.seal(m, 0).is_ok()),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, tracker, handle_write, controller_tick, wire, auth);
criterion_main!(benches);
