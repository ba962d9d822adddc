//! The background thread: subscription, incoming messages, engine timers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aci_core::LeaseOp;
use aci_transports::{Subscription, Transport, TransportError};

use super::Shared;
use crate::instance::{Dispatch, Outbound};
use crate::subscription_guard::{OnLost, SubscriptionGuard};

/// Longest wait between two checks of the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// Runs until stopped, starting on `first`, the subscription `start` made.
/// `_guard` is dropped last, after the subscription, however this ends.
pub(super) fn run<T: Transport>(
    shared: &Arc<Shared<T>>,
    first: T::Subscription,
    _guard: SubscriptionGuard<Shared<T>>,
) {
    let instance = &shared.instance;
    let channels = instance.settings().channels();
    let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
    let mut subscription: Option<T::Subscription> = Some(first);
    // When to try subscribing again, on the instance's schedule.
    let mut retry_at = None;
    #[cfg(feature = "metrics")]
    let mut exporter = crate::metrics::Exporter::new();

    while !shared.stop.load(Ordering::SeqCst) {
        #[cfg(feature = "metrics")]
        exporter.maybe_export(instance.settings().instance_id(), || instance.stats());
        if subscription.is_none() {
            if let Some(at) = retry_at.take() {
                sleep_unless_stopped(shared, shared.clock.to_std(at));
                continue;
            }
            match shared.transport.subscribe_delivering(
                &channels,
                super::direct::Direct::deliver_to(Arc::clone(shared)),
            ) {
                Ok(s) => {
                    subscription = Some(s);
                    instance.subscribed();
                    tracing::debug!(?channels, "subscribed");
                }
                Err(e) => {
                    let now = shared.clock.now();
                    let at = instance.subscription_lost(now);
                    let retry_in = Duration::from(at - now);
                    tracing::warn!(error = %e, ?retry_in, "cannot subscribe");
                    retry_at = Some(at);
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
                Err(TransportError::ChannelLost { channel }) => {
                    instance.channel_lost(&channel);
                    // Make before break: a new subscription to every
                    // channel, then the old one dropped, so that only the
                    // lost channel went unheard for a while.
                    match shared.transport.subscribe_delivering(
                        &channels,
                        super::direct::Direct::deliver_to(Arc::clone(shared)),
                    ) {
                        Ok(fresh) => {
                            drop(subscription.replace(fresh));
                            instance.channel_restored(&channel, shared.clock.now());
                            tracing::info!(%channel, "channel lost and subscribed again; dropped what it covers");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, %channel, "channel lost; cannot subscribe again; dropping the near cache");
                            subscription = None;
                            retry_at = Some(instance.subscription_lost(shared.clock.now()));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "subscription lost; dropping the near cache");
                    subscription = None;
                    retry_at = Some(instance.subscription_lost(shared.clock.now()));
                }
            }
        }
        let deferred = std::mem::take(
            &mut *shared
                .deferred
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for outbound in deferred {
            publish(shared, outbound);
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
        let _retry_at = self.instance.subscription_lost(self.clock.now());
    }
}

/// Carries out what the engine asked for: publishes, runs the lease call
/// and reports its answer, in the instance's order ([`Dispatch`]).
fn publish<T: Transport>(shared: &Shared<T>, outbound: Outbound) {
    let (instance, t) = (&shared.instance, &shared.transport);
    let mut dispatch = Dispatch::new(outbound);
    loop {
        if let Some(messages) = dispatch.messages() {
            let result = t.publish(&messages);
            dispatch.published(instance, result);
        }
        let Some(call) = dispatch.lease() else {
            return;
        };
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
                continue;
            }
            _ => return,
        };
        dispatch.answered(instance, answer, shared.clock.now());
    }
}

fn sleep_unless_stopped<T>(shared: &Shared<T>, until: Instant) {
    while !shared.stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(10)));
    }
}
