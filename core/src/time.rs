//! Time as plain numbers: the core never reads a clock.
//!
//! [`Instant`] is nanoseconds from an origin the caller chooses (process start,
//! a simulator's zero); [`Duration`] is a span in nanoseconds. Both are `u64`
//! newtypes with saturating arithmetic, so no input can overflow or panic.
//! [`MonotonicClamp`] turns a possibly non-monotonic stream of `now` values into
//! a monotonic one and counts the regressions it absorbed.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A span of time in nanoseconds (saturating, never negative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Duration(u64);

/// A standard duration, saturating at `u64::MAX` nanoseconds (584 years).
///
/// ```
/// let d: aci_core::Duration = core::time::Duration::from_millis(1500).into();
/// assert_eq!(d, aci_core::Duration::from_millis(1500));
/// let back: core::time::Duration = d.into();
/// assert_eq!(back, core::time::Duration::from_millis(1500));
/// ```
impl From<core::time::Duration> for Duration {
    fn from(d: core::time::Duration) -> Self {
        Duration(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl From<Duration> for core::time::Duration {
    fn from(d: Duration) -> Self {
        core::time::Duration::from_nanos(d.0)
    }
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);
    /// The longest representable span (about 584 years).
    pub const MAX: Duration = Duration(u64::MAX);

    /// A span of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: u64) -> Self {
        Duration(nanos)
    }
    /// A span of `micros` microseconds (saturating).
    pub const fn from_micros(micros: u64) -> Self {
        Duration(micros.saturating_mul(NANOS_PER_MICRO))
    }
    /// A span of `millis` milliseconds (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Duration(millis.saturating_mul(NANOS_PER_MILLI))
    }
    /// A span of `secs` seconds (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Duration(secs.saturating_mul(NANOS_PER_SEC))
    }
    /// A span of `secs` seconds given as a float, as the original's configuration
    /// takes them. Negative and NaN give zero, huge values saturate.
    pub fn from_secs_f64(secs: f64) -> Self {
        let nanos = secs * NANOS_PER_SEC as f64;
        // `as` saturates for floats: NaN -> 0, negative -> 0, too big -> u64::MAX.
        Duration(nanos as u64)
    }
    /// The span in nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// The span in whole milliseconds (truncated).
    pub const fn as_millis(self) -> u64 {
        self.0 / NANOS_PER_MILLI
    }
    /// The span in seconds as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }
    /// `self + rhs`, saturating at [`Duration::MAX`].
    pub const fn saturating_add(self, rhs: Duration) -> Duration {
        Duration(self.0.saturating_add(rhs.0))
    }
    /// `self - rhs`, saturating at zero.
    pub const fn saturating_sub(self, rhs: Duration) -> Duration {
        Duration(self.0.saturating_sub(rhs.0))
    }
    /// `self * n`, saturating at [`Duration::MAX`].
    pub const fn saturating_mul(self, n: u64) -> Duration {
        Duration(self.0.saturating_mul(n))
    }
    /// Whether the span is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, rhs: Duration) -> Duration {
        self.saturating_add(rhs)
    }
}

impl fmt::Display for Duration {
    /// Human units: `850ns`, `12.5µs`, `3ms`, `2.5s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n < NANOS_PER_MICRO {
            write!(f, "{n}ns")
        } else if n < NANOS_PER_MILLI {
            write!(f, "{}µs", n as f64 / NANOS_PER_MICRO as f64)
        } else if n < NANOS_PER_SEC {
            write!(f, "{}ms", n as f64 / NANOS_PER_MILLI as f64)
        } else {
            write!(f, "{}s", n as f64 / NANOS_PER_SEC as f64)
        }
    }
}

/// A point in time: nanoseconds since an origin chosen by whoever drives the core.
///
/// There is deliberately no `Instant::now()`: the facade and the transports
/// read the OS clock, the simulator owns a virtual one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);
    /// The latest representable instant; used as "never".
    pub const MAX: Instant = Instant(u64::MAX);

    /// The instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }
    /// The instant `micros` microseconds after the origin (saturating).
    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros.saturating_mul(NANOS_PER_MICRO))
    }
    /// The instant `millis` milliseconds after the origin (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(NANOS_PER_MILLI))
    }
    /// The instant `secs` seconds after the origin (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Instant(secs.saturating_mul(NANOS_PER_SEC))
    }
    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
    /// `self + d`, saturating at [`Instant::MAX`].
    pub const fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }
    /// `self - d`, saturating at the origin.
    pub const fn saturating_sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(d.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        self.saturating_add(rhs)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = self.saturating_add(rhs);
    }
}

impl Sub for Instant {
    type Output = Duration;
    /// Saturating: an earlier minus a later instant is zero.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Display for Instant {
    /// Seconds since the origin with nanosecond precision: `t=12.000000500s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t={}.{:09}s",
            self.0 / NANOS_PER_SEC,
            self.0 % NANOS_PER_SEC
        )
    }
}

/// Makes a stream of `now` values monotonic: a value older than the latest one
/// seen is replaced by the latest and counted, never a panic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonotonicClamp {
    latest: Instant,
    clamped: u64,
}

impl MonotonicClamp {
    /// A clamp that has seen nothing yet.
    pub const fn new() -> Self {
        MonotonicClamp {
            latest: Instant::ZERO,
            clamped: 0,
        }
    }
    /// `now`, or the latest instant seen if `now` is older (then counted).
    pub fn observe(&mut self, now: Instant) -> Instant {
        if now < self.latest {
            self.clamped = self.clamped.saturating_add(1);
            self.latest
        } else {
            self.latest = now;
            now
        }
    }
    /// The latest instant seen.
    pub const fn latest(&self) -> Instant {
        self.latest
    }
    /// How many `now` values went backwards and were clamped.
    pub const fn clamped(&self) -> u64 {
        self.clamped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Instant::ZERO - Instant::from_secs(1), Duration::ZERO);
        assert_eq!(Duration::from_secs(u64::MAX), Duration::MAX);
        assert_eq!(Duration::from_secs_f64(-1.0), Duration::ZERO);
        assert_eq!(Duration::from_secs_f64(f64::NAN), Duration::ZERO);
        assert_eq!(Duration::from_secs_f64(2.5), Duration::from_millis(2500));
    }

    #[test]
    fn clamp_counts_regressions() {
        let mut c = MonotonicClamp::new();
        assert_eq!(c.observe(Instant::from_secs(5)), Instant::from_secs(5));
        assert_eq!(c.observe(Instant::from_secs(3)), Instant::from_secs(5));
        assert_eq!(c.observe(Instant::from_secs(6)), Instant::from_secs(6));
        assert_eq!(c.clamped(), 1);
    }

    #[test]
    fn display_is_readable() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(Duration::from_millis(2500).to_string(), "2.5s");
        assert_eq!(Duration::from_nanos(850).to_string(), "850ns");
        assert_eq!(Instant::from_millis(12_001).to_string(), "t=12.001000000s");
    }
}
