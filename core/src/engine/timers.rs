//! The engine's timers: a fixed table indexed by [`Timer`].

use crate::time::Instant;

/// A deadline the engine keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timer {
    /// The controller's next decision.
    ControllerTick,
    /// The batch buffer's next flush.
    BatchFlush,
    /// A follower's next report of its write rate to the controller.
    RateReport,
    /// A candidate's next request for the controller lease, or the
    /// holder's next renewal.
    Lease,
    /// When the lease held stops being surely ours, unless renewed.
    LeaseExpiry,
    /// When the store may be asked again about a term heard on the channel
    /// (at most once per `controller_interval`).
    Verify,
}

impl Timer {
    pub(crate) const COUNT: usize = 6;
    /// In the order due timers are handled: a lease that ran out is given up
    /// before a decision could be made on it.
    const ALL: [Timer; Self::COUNT] = [
        Timer::LeaseExpiry,
        Timer::Lease,
        Timer::Verify,
        Timer::ControllerTick,
        Timer::BatchFlush,
        Timer::RateReport,
    ];
}

/// Deadlines by timer; `None` is disarmed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Timers([Option<Instant>; Timer::COUNT]);

impl Timers {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.0[timer as usize] = Some(at);
    }
    pub(crate) fn arm_if_idle(&mut self, timer: Timer, at: Instant) {
        self.0[timer as usize].get_or_insert(at);
    }
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.0[timer as usize] = None;
    }
    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.0[timer as usize]
    }
    pub(crate) fn clear(&mut self) {
        *self = Timers::default();
    }
    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
    /// Disarms and returns a timer whose deadline is at or before `now`.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Option<Timer> {
        let timer = Timer::ALL
            .into_iter()
            .find(|t| self.0[*t as usize].is_some_and(|at| at <= now))?;
        self.stop(timer);
        Some(timer)
    }
}
