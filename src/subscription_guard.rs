//! No subscription, no near cache — whatever ends the worker that holds it.

use std::sync::Arc;

/// What a guard calls when it is dropped: the instance loses its
/// subscription (the near cache is dropped and disabled).
pub(crate) trait OnLost {
    fn subscription_lost(&self);
}

/// Made by `start` together with the subscription and moved into the
/// background thread or task, so it ends with it — by `stop`, a panic, or
/// its tokio runtime shutting down and dropping the task, even one never
/// polled. Dropping it marks the instance unsubscribed and drops its near
/// cache, so nothing is served that a missed invalidation could have retired.
pub(crate) struct SubscriptionGuard<S: OnLost>(Arc<S>);

impl<S: OnLost> SubscriptionGuard<S> {
    pub(crate) fn new(shared: &Arc<S>) -> Self {
        SubscriptionGuard(Arc::clone(shared))
    }
}

impl<S: OnLost> Drop for SubscriptionGuard<S> {
    fn drop(&mut self) {
        self.0.subscription_lost();
    }
}
