//! The facade's clock: the OS's coarse monotonic clock, mapped onto core's
//! `Instant`.
//!
//! `std::time::Instant::now()` costs 100–300 ns on virtual machines (the
//! `kvm-clock` path), which would be most of a near-cache hit;
//! `CLOCK_MONOTONIC_COARSE` costs a few nanoseconds and ticks every 1–10 ms,
//! plenty for TTLs and intervals of milliseconds to seconds.

use std::time::{Duration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use aci_core::Instant;

/// Reads the OS clock for the engine and the near cache: nanoseconds since
/// the clock was made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    coarse_origin: coarsetime::Instant,
    std_origin: StdInstant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            coarse_origin: coarsetime::Instant::now_without_cache_update(),
            std_origin: StdInstant::now(),
        }
    }

    /// Now, as the engine counts time (coarse: within one clock tick).
    #[inline(always)]
    pub(crate) fn now(&self) -> Instant {
        // `now_without_cache_update`: `now()` would also write a global
        // shared by every thread, on every hit.
        let elapsed =
            coarsetime::Instant::now_without_cache_update().duration_since(self.coarse_origin);
        Instant::from_nanos(elapsed.as_nanos())
    }

    /// The OS instant of an engine instant, for sleeping until a deadline.
    pub(crate) fn to_std(self, t: Instant) -> StdInstant {
        self.std_origin + Duration::from_nanos(t.as_nanos())
    }

    /// Unix seconds now, for message timestamps.
    pub(crate) fn unix_now() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}
