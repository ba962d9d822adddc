//! The sliding-window write rate, in constant memory.
//!
//! The window is a ring of `B` buckets, each counting the writes of one
//! `window / B` slice of time and stamped with the slice it counts. Recording is
//! O(1) (a compare and an add on the hot path, no division); the rate is
//! O(B); memory is the same at 1 or 1,000,000 writes/s. A bucket whose stamp is
//! older than the window is ignored, so long idle gaps and forward clock jumps
//! need no clean-up pass.
//!
//! Exactness: the rate counts the writes in the current slice and the `B - 1`
//! before it, so it may include writes up to one slice older than `window`.
//! It differs from an exact sliding count by at most the writes of one slice.

use crate::time::{Duration, Instant};

/// Buckets in the engine's tracker: 50 slices of 100 ms over the default 5 s window.
pub const DEFAULT_BUCKETS: usize = 50;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bucket {
    /// Which slice (`now / width`) this bucket counts.
    slice: u64,
    count: u32,
}

/// Writes per second over a sliding window, as a fixed ring of `B` buckets.
///
/// ```
/// use aci_core::{Duration, Instant, RateTracker};
/// let mut tracker = RateTracker::<50>::new(Duration::from_secs(5));
/// for i in 0..100 {
///     tracker.record(Instant::from_millis(i * 40)); // 25 writes/s for 4 s
/// }
/// assert_eq!(tracker.rate(Instant::from_secs(4)), 100.0 / 5.0);
/// assert_eq!(tracker.rate(Instant::from_secs(60)), 0.0); // the window has passed
/// ```
#[derive(Clone, Debug)]
pub struct RateTracker<const B: usize = DEFAULT_BUCKETS> {
    buckets: [Bucket; B],
    width_nanos: u64,
    window_secs: f64,
    /// The current slice's bounds, cached so the hot path needs no division.
    current_start: u64,
    current_end: u64,
    current_index: usize,
}

impl<const B: usize> RateTracker<B> {
    const VALID: () = assert!(B > 0, "a rate tracker needs at least one bucket");

    /// A tracker over `window` (rounded up to a multiple of `B` nanoseconds).
    pub fn new(window: Duration) -> Self {
        let () = Self::VALID;
        let width_nanos = window.as_nanos().div_ceil(B as u64).max(1);
        RateTracker {
            buckets: [Bucket::default(); B],
            width_nanos,
            window_secs: Duration::from_nanos(width_nanos.saturating_mul(B as u64)).as_secs_f64(),
            current_start: 1,
            current_end: 0, // empty range: the first record takes the slow path
            current_index: 0,
        }
    }

    /// Counts one write at `now`. A `now` older than the newest slice is counted
    /// in the newest slice rather than lost.
    #[inline]
    pub fn record(&mut self, now: Instant) {
        self.record_n(now, 1);
    }

    /// Counts `n` writes at `now`.
    #[inline]
    pub fn record_n(&mut self, now: Instant, n: u32) {
        let t = now.as_nanos();
        if !(self.current_start <= t && t < self.current_end) {
            self.advance(t);
        }
        let bucket = &mut self.buckets[self.current_index];
        bucket.count = bucket.count.saturating_add(n);
    }

    #[cold]
    fn advance(&mut self, t: u64) {
        let slice = t / self.width_nanos;
        let newest = self.current_start / self.width_nanos;
        if self.current_end != 0 && slice < newest {
            // A regressed clock: keep counting in the newest slice.
            return;
        }
        let index = (slice % B as u64) as usize;
        let bucket = &mut self.buckets[index];
        if bucket.slice != slice || bucket.count == 0 {
            *bucket = Bucket { slice, count: 0 };
        }
        self.current_index = index;
        self.current_start = slice * self.width_nanos;
        self.current_end = self.current_start.saturating_add(self.width_nanos);
    }

    /// Writes in the window ending at `now`.
    pub fn count(&self, now: Instant) -> u64 {
        let slice = now.as_nanos() / self.width_nanos;
        let oldest = slice.saturating_sub(B as u64 - 1);
        self.buckets
            .iter()
            .filter(|b| b.slice >= oldest && b.slice <= slice)
            .map(|b| u64::from(b.count))
            .sum()
    }

    /// Writes per second in the window ending at `now`: the count divided by the
    /// window's length, as the original computes it.
    pub fn rate(&self, now: Instant) -> f64 {
        self.count(now) as f64 / self.window_secs
    }

    /// The window's length after rounding.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.width_nanos.saturating_mul(B as u64))
    }

    /// One bucket's width: the tracker's resolution.
    pub fn bucket_width(&self) -> Duration {
        Duration::from_nanos(self.width_nanos)
    }

    /// Forgets every write.
    pub fn clear(&mut self) {
        *self = Self::new(self.window());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_window_only() {
        let mut t = RateTracker::<10>::new(Duration::from_secs(1));
        for ms in [0, 50, 150, 950] {
            t.record(Instant::from_millis(ms));
        }
        assert_eq!(t.count(Instant::from_millis(999)), 4);
        // At 1.1 s the slices 0.2..1.1 remain: only the write at 950 ms.
        assert_eq!(t.count(Instant::from_millis(1100)), 1);
        assert_eq!(t.count(Instant::from_secs(100)), 0);
    }

    #[test]
    fn long_gap_reuses_buckets() {
        let mut t = RateTracker::<10>::new(Duration::from_secs(1));
        t.record(Instant::from_millis(10));
        // Exactly one ring later: same bucket index, different slice.
        t.record(Instant::from_millis(1010));
        assert_eq!(t.count(Instant::from_millis(1010)), 1);
    }

    #[test]
    fn regressed_clock_counts_in_newest_slice() {
        let mut t = RateTracker::<10>::new(Duration::from_secs(1));
        t.record(Instant::from_millis(500));
        t.record(Instant::from_millis(100));
        assert_eq!(t.count(Instant::from_millis(500)), 2);
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let mut t = RateTracker::<1>::new(Duration::from_secs(1));
        t.record_n(Instant::ZERO, u32::MAX);
        t.record(Instant::ZERO);
        assert_eq!(t.count(Instant::ZERO), u64::from(u32::MAX));
    }

    #[test]
    fn far_future_does_not_overflow() {
        let mut t = RateTracker::<50>::new(Duration::from_secs(5));
        t.record(Instant::MAX);
        assert_eq!(t.count(Instant::MAX), 1);
    }
}
