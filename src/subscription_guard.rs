//! No subscription, no near cache — whatever ends the worker that holds it.

use crate::clock::Clock;
use crate::instance::Instance;

/// Held by the background thread or task for as long as it runs. However
/// it ends — `stop`, a panic, its tokio runtime shutting down and dropping
/// the task — dropping the guard marks the instance unsubscribed and drops
/// its near cache, so nothing is served that a missed invalidation could
/// have retired.
pub(crate) struct SubscriptionGuard<'a> {
    instance: &'a Instance,
    clock: &'a Clock,
}

impl<'a> SubscriptionGuard<'a> {
    pub(crate) fn new(instance: &'a Instance, clock: &'a Clock) -> Self {
        SubscriptionGuard { instance, clock }
    }
}

impl Drop for SubscriptionGuard<'_> {
    fn drop(&mut self) {
        self.instance.subscription_lost(self.clock.now());
    }
}
