//! The background thread: subscription, incoming messages, engine timers.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aci_core::LeaseOp;
use aci_transports::{Subscription, Transport};

use super::Shared;
use crate::instance::Outbound;
use crate::subscription_guard::{OnLost, SubscriptionGuard};

/// Longest wait between two checks of the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// First retry delay after the subscription fails.
const BACKOFF_START: Duration = Duration::from_millis(50);
/// Retry delays double up to this, so a returning server is noticed within it.
const BACKOFF_CAP: Duration = Duration::from_millis(500);

/// Runs until stopped, starting on `first`, the subscription `start` made.
/// `_guard` is dropped last, after the subscription, however this ends.
pub(super) fn run<T: Transport>(
    shared: &Shared<T>,
    first: T::Subscription,
    _guard: SubscriptionGuard<Shared<T>>,
) {
    let instance = &shared.instance;
    let config = instance.settings().core.clone();
    let channels = [config.invalidation_channel(), config.strategy_channel()];
    let mut subscription: Option<T::Subscription> = Some(first);
    let mut backoff = BACKOFF_START;
    #[cfg(feature = "metrics")]
    let mut exporter = crate::metrics::Exporter::new();

    while !shared.stop.load(Ordering::SeqCst) {
        #[cfg(feature = "metrics")]
        exporter.maybe_export(instance.settings().instance_id(), || instance.stats());
        if subscription.is_none() {
            match shared.transport.subscribe(&channels) {
                Ok(s) => {
                    subscription = Some(s);
                    backoff = BACKOFF_START;
                    instance.subscribed();
                    tracing::debug!(?channels, "subscribed");
                }
                Err(e) => {
                    instance.subscription_lost(shared.clock.now());
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot subscribe");
                    sleep_unless_stopped(shared, backoff);
                    backoff = (backoff * 2).min(BACKOFF_CAP);
                    continue;
                }
            }
        }

        let wait = instance.next_deadline().map_or(POLL, |d| {
            shared
                .clock
                .to_std(d)
                .saturating_duration_since(Instant::now())
                .min(POLL)
        });
        if let Some(s) = subscription.as_mut() {
            match s.recv(wait) {
                Ok(Some(message)) => publish(
                    shared,
                    instance.handle_message(&message.channel, &message.payload, shared.clock.now()),
                ),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "subscription lost; dropping the near cache");
                    subscription = None;
                    instance.subscription_lost(shared.clock.now());
                }
            }
        }
        // The coarse clock may lag the sleep by a tick: a deadline whose time
        // has come by the precise clock is due.
        if let Some(due) = instance
            .next_deadline()
            .filter(|d| shared.clock.to_std(*d) <= Instant::now())
        {
            publish(shared, instance.handle_timeout(shared.clock.now().max(due)));
        }
    }

    publish(shared, instance.stop(shared.clock.now()));
    drop(subscription);
    #[cfg(feature = "metrics")]
    crate::metrics::export(instance.settings().instance_id(), &instance.stats());
}

impl<T> OnLost for Shared<T> {
    fn subscription_lost(&self) {
        self.instance.subscription_lost(self.clock.now());
    }
}

/// Publishes what the engine asked for, runs its lease operation and
/// reports the answer, until nothing is left (a won lease publishes a decision).
fn publish<T: Transport>(shared: &Shared<T>, mut outbound: Outbound) {
    // Bounded: a lease answer leads to a decision, never to another request.
    for _ in 0..4 {
        if outbound.has_messages() {
            match shared.transport.publish(&outbound.as_outgoing()) {
                Ok(()) => shared.instance.record_published(&outbound),
                // The subscription breaks too when Redis does: every instance then
                // drops its near cache, which covers what this message would have said.
                Err(e) => tracing::warn!(error = %e, "could not publish"),
            }
        }
        let Some(call) = outbound.take_lease() else {
            return;
        };
        let t = &shared.transport;
        let answer = match call.op {
            LeaseOp::Acquire { min_term } => {
                t.lease_acquire(&call.key, &call.holder, call.ttl, min_term)
            }
            LeaseOp::Renew { term } => t.lease_renew(&call.key, &call.holder, term, call.ttl),
            LeaseOp::Query => t.lease_query(&call.key),
            LeaseOp::Release { term } => {
                if let Err(e) = t.lease_release(&call.key, &call.holder, term) {
                    tracing::debug!(error = %e, "could not release the lease; it will expire");
                }
                return;
            }
            _ => return,
        };
        outbound = shared.instance.handle_lease(answer, shared.clock.now());
    }
}

fn sleep_unless_stopped<T>(shared: &Shared<T>, total: Duration) {
    let until = Instant::now() + total;
    while !shared.stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(10)));
    }
}
