//! The facade's clock: the OS monotonic clock, mapped onto core's `Instant`.

use std::time::{Instant as StdInstant, SystemTime, UNIX_EPOCH};

use aci_core::Instant;

/// Reads the OS clock for the engine: nanoseconds since the clock was made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: StdInstant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            origin: StdInstant::now(),
        }
    }

    /// Now, as the engine counts time.
    pub(crate) fn now(&self) -> Instant {
        self.at(StdInstant::now())
    }

    /// An OS instant, as the engine counts time.
    pub(crate) fn at(&self, t: StdInstant) -> Instant {
        let nanos = t.saturating_duration_since(self.origin).as_nanos();
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The OS instant of an engine instant.
    pub(crate) fn to_std(self, t: Instant) -> StdInstant {
        self.origin + std::time::Duration::from_nanos(t.as_nanos())
    }

    /// Unix seconds now, for message timestamps.
    pub(crate) fn unix_now() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}
