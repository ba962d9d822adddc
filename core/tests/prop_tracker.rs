//! (a) The bucketed tracker against a naive model holding every timestamp.

use std::collections::VecDeque;

use aci_core::{Duration, Instant, RateTracker};
use proptest::prelude::*;

const B: usize = 50;

/// The original's tracker: every timestamp kept, counted if `t >= now - window`.
struct Naive {
    times: VecDeque<u64>,
    window: u64,
}

impl Naive {
    fn count_in(&self, from: u64, to: u64) -> u64 {
        self.times.iter().filter(|&&t| t >= from && t <= to).count() as u64
    }
}

/// Gaps between writes: bursts, steady traffic, idle gaps, and jumps far ahead.
fn gap() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..1_000_000,                  // < 1 ms
        4 => 0u64..200_000_000,                // < 200 ms
        1 => 1_000_000_000u64..20_000_000_000, // 1-20 s idle
        1 => Just(3_600_000_000_000u64),       // an hour ahead
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matches_the_naive_model_within_one_bucket(
        window_ms in 100u64..20_000,
        gaps in prop::collection::vec(gap(), 1..400),
        query_every in 1usize..20,
        query_lag in 0u64..3_000_000_000,
    ) {
        let window = Duration::from_millis(window_ms);
        let mut tracker = RateTracker::<B>::new(window);
        let width = tracker.bucket_width().as_nanos();
        let mut naive = Naive { times: VecDeque::new(), window: tracker.window().as_nanos() };
        let mut now = 0u64;
        for (i, g) in gaps.iter().enumerate() {
            now += g;
            tracker.record(Instant::from_nanos(now));
            naive.times.push_back(now);
            if i % query_every == 0 {
                let q = now + query_lag;
                let got = tracker.count(Instant::from_nanos(q));
                // What the tracker promises exactly: the writes from the start of
                // the oldest slice in the window up to `q`.
                let oldest_slice_start = (q / width).saturating_sub(B as u64 - 1) * width;
                prop_assert_eq!(got, naive.count_in(oldest_slice_start, q));
                // And so it is within one bucket of the exact sliding count.
                let exact = naive.count_in(q.saturating_sub(naive.window), q);
                let one_bucket = naive.count_in(q.saturating_sub(naive.window), q.saturating_sub(naive.window) + width);
                prop_assert!(exact - got <= one_bucket, "exact {} got {} bucket {}", exact, got, one_bucket);
                let rate = tracker.rate(Instant::from_nanos(q));
                prop_assert!((rate - got as f64 / tracker.window().as_secs_f64()).abs() < 1e-9);
            }
        }
    }
}
