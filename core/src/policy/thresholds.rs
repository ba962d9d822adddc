//! The original's table, damped: the default policy.
//!
//! # The rule
//!
//! The original's table, for a rate `r` and thresholds `low < high`:
//! `r > high` → eager, `r < low` → ttl, otherwise batched.
//!
//! We evaluate that table twice, with the thresholds scaled by `1 + h` ("up")
//! and by `1 − h` ("down"), where `h` is the hysteresis fraction:
//!
//! 1. if `up` is stricter than the current strategy, move to `up`;
//! 2. else if `down` is looser than the current strategy, move to `down`;
//! 3. else stay.
//!
//! So leaving a strategy upwards across a threshold `T` needs `r > T(1+h)` and
//! leaving it downwards needs `r < T(1−h)`; a rate that wanders inside
//! `[T(1−h), T(1+h)]` never causes a switch at `T`. Because `up` is never
//! stricter than `down`, the two moves cannot both apply. With `h = 0` this is
//! exactly the original's table.
//!
//! A move is also held back while the current strategy is younger than
//! `min_dwell` (default 0, which never holds anything back).

use super::Policy;
use crate::strategy::Strategy;
use crate::time::Duration;

impl Policy {
    /// The strategy the original's table gives for `rate`, without damping.
    pub fn table(&self, rate: f64) -> Strategy {
        table(rate, self.low_threshold, self.high_threshold)
    }

    /// The strategy the damped table chooses next, given the measured
    /// `rate`, the `current` strategy and how long it has been in force (see
    /// the [module docs](self)).
    pub fn thresholds(&self, rate: f64, current: Strategy, in_current: Duration) -> Strategy {
        if in_current < self.min_dwell {
            return current;
        }
        let h = self.hysteresis;
        let up = table(
            rate,
            self.low_threshold * (1.0 + h),
            self.high_threshold * (1.0 + h),
        );
        if up > current {
            return up;
        }
        let down = table(
            rate,
            self.low_threshold * (1.0 - h),
            self.high_threshold * (1.0 - h),
        );
        if down < current {
            return down;
        }
        current
    }
}

/// The original's table. A NaN rate is treated as zero.
fn table(rate: f64, low: f64, high: f64) -> Strategy {
    let rate = if rate.is_nan() { 0.0 } else { rate };
    if rate > high {
        Strategy::Eager
    } else if rate < low {
        Strategy::Ttl
    } else {
        Strategy::Batched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(h: f64) -> Policy {
        Policy {
            hysteresis: h,
            ..Policy::default()
        }
    }

    #[test]
    fn original_table_at_zero_hysteresis() {
        let p = policy(0.0);
        for current in Strategy::ALL {
            assert_eq!(p.thresholds(5.0, current, Duration::MAX), Strategy::Ttl);
            assert_eq!(
                p.thresholds(10.0, current, Duration::MAX),
                Strategy::Batched
            );
            assert_eq!(
                p.thresholds(50.0, current, Duration::MAX),
                Strategy::Batched
            );
            assert_eq!(p.thresholds(50.1, current, Duration::MAX), Strategy::Eager);
        }
    }

    #[test]
    fn band_holds_the_current_strategy() {
        let p = policy(0.2);
        // Inside [40, 60] around high = 50: no move between batched and eager.
        assert_eq!(
            p.thresholds(59.0, Strategy::Batched, Duration::MAX),
            Strategy::Batched
        );
        assert_eq!(
            p.thresholds(41.0, Strategy::Eager, Duration::MAX),
            Strategy::Eager
        );
        assert_eq!(
            p.thresholds(61.0, Strategy::Batched, Duration::MAX),
            Strategy::Eager
        );
        assert_eq!(
            p.thresholds(39.0, Strategy::Eager, Duration::MAX),
            Strategy::Batched
        );
        // A big drop goes straight to ttl; a big rise straight to eager.
        assert_eq!(
            p.thresholds(1.0, Strategy::Eager, Duration::MAX),
            Strategy::Ttl
        );
        assert_eq!(
            p.thresholds(500.0, Strategy::Ttl, Duration::MAX),
            Strategy::Eager
        );
    }

    #[test]
    fn dwell_holds_young_strategies() {
        let p = Policy {
            min_dwell: Duration::from_secs(6),
            ..Policy::default()
        };
        assert_eq!(
            p.thresholds(500.0, Strategy::Ttl, Duration::from_secs(5)),
            Strategy::Ttl
        );
        assert_eq!(
            p.thresholds(500.0, Strategy::Ttl, Duration::from_secs(6)),
            Strategy::Eager
        );
    }

    #[test]
    fn nan_rate_is_quiet() {
        assert_eq!(
            Policy::default().thresholds(f64::NAN, Strategy::Eager, Duration::MAX),
            Strategy::Ttl
        );
    }
}
