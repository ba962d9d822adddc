//! Hits per second of a cache beside the bare map, measured in alternating
//! rounds so that a busy spell slows both alike. Shared by the `hits` and
//! `e2e` benchmarks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One round's length.
const ROUND: Duration = Duration::from_millis(200);
/// Rounds of each; the median is reported.
const ROUNDS: usize = 9;

/// Median hits/s of `ours` and of `bare` over keys `0..span`, on `threads`
/// threads, alternating rounds.
pub(crate) fn compare(
    threads: usize,
    span: usize,
    key: impl Fn(usize) -> String + Sync,
    ours: impl Fn(&str) + Sync,
    bare: impl Fn(&str) + Sync,
) -> (f64, f64) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        b.push(throughput(threads, span, &key, &bare));
        a.push(throughput(threads, span, &key, &ours));
    }
    (median(a), median(b))
}

/// Hits per second over one round, each thread reading its own shuffled
/// list of 4,096 keys among the first `span`.
fn throughput(
    threads: usize,
    span: usize,
    key: &(impl Fn(usize) -> String + Sync),
    get: &(impl Fn(&str) + Sync),
) -> f64 {
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (stop, total) = (&stop, &total);
            s.spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (t as u64 + 1);
                let keys: Vec<String> = (0..4096)
                    .map(|_| key(next(&mut rng) as usize % span))
                    .collect();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for k in &keys {
                        get(k);
                    }
                    n += keys.len() as u64;
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(ROUND);
        stop.store(true, Ordering::Relaxed);
    });
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
