//! When to try subscribing again after the subscription was lost or an
//! attempt to make it failed: at once after a loss, then after 50 ms,
//! doubling up to 500 ms, so that a returning server is noticed within half
//! a second without a failing one being hammered.

use aci_core::{Duration, Instant};

/// First delay after a failed attempt.
pub(crate) const START: Duration = Duration::from_millis(50);
/// Delays double up to this.
pub(crate) const CAP: Duration = Duration::from_millis(500);

/// The retry schedule; `Default` is "subscribed".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// The delay after the next failure; `None` while subscribed.
    next: Option<Duration>,
}

impl Backoff {
    /// The subscription is up: the next loss retries at once.
    pub(crate) fn reset(&mut self) {
        self.next = None;
    }

    /// The subscription was lost, or an attempt failed, at `now`: when to
    /// try again.
    pub(crate) fn failed(&mut self, now: Instant) -> Instant {
        match self.next {
            None => {
                self.next = Some(START);
                now
            }
            Some(delay) => {
                self.next = Some((delay + delay).min(CAP));
                now + delay
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_once_then_doubling_to_the_cap_then_at_once_after_success() {
        let mut b = Backoff::default();
        let t = Instant::from_secs(10);
        let delays: Vec<u64> = (0..7).map(|_| (b.failed(t) - t).as_millis()).collect();
        assert_eq!(delays, [0, 50, 100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.failed(t), t);
    }
}
