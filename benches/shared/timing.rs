//! Timing helpers shared by the end-to-end benchmarks: samples of an
//! operation, ours and a baseline alternating in blocks, percentiles, and a
//! table row with their ratio.

use std::time::{Duration, Instant};

/// `rounds` blocks of `per_round` samples of `baseline` then of `ours`,
/// alternating, so that a busy spell slows both alike; returns (ours,
/// baseline).
pub(crate) fn interleaved(
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

pub(crate) fn sample(n: usize, mut op: impl FnMut(usize)) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let start = Instant::now();
            op(i);
            start.elapsed()
        })
        .collect()
}

pub(crate) fn median(samples: &[Duration]) -> Duration {
    percentile(samples, 0.5)
}

pub(crate) fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub(crate) fn row(what: &str, ours: Duration, baseline: Duration) {
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
