//! The background task: subscription, incoming messages, engine timers.

use std::sync::Arc;
use std::time::Duration;

use aci_core::LeaseOp;
use aci_transports::{AsyncSubscription, AsyncTransport, TransportError};

use super::Shared;
use crate::instance::{Dispatch, Outbound};
use crate::subscription_guard::{OnLost, SubscriptionGuard};

/// How long to sleep when no timer is armed.
const IDLE: Duration = Duration::from_secs(3600);

/// Runs until stopped, starting on `first`, the subscription `start` made.
/// `_guard` is dropped with this future: when it ends, and when its runtime
/// drops it (polled or not).
pub(super) async fn run<T: AsyncTransport>(
    shared: Arc<Shared<T>>,
    first: T::Subscription,
    _guard: SubscriptionGuard<Shared<T>>,
) {
    let instance = &shared.instance;
    let channels = instance.settings().channels();
    let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
    let mut stop = shared.stop.subscribe();
    let mut subscription: Option<T::Subscription> = Some(first);
    // When to try subscribing again, on the instance's schedule.
    let mut retry_at = None;
    #[cfg(feature = "metrics")]
    let mut exporter = crate::metrics::Exporter::new();

    while !*stop.borrow_and_update() {
        #[cfg(feature = "metrics")]
        exporter.maybe_export(instance.settings().instance_id(), || instance.stats());
        if subscription.is_none() {
            if let Some(at) = retry_at.take() {
                let at = tokio::time::Instant::from_std(shared.clock.to_std(at));
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            match shared.transport.subscribe(&channels).await {
                Ok(s) => {
                    subscription = Some(s);
                    instance.subscribed();
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
        let deadline = instance
            .next_deadline()
            .map(|d| tokio::time::Instant::from_std(shared.clock.to_std(d)))
            .unwrap_or_else(|| tokio::time::Instant::now() + IDLE);
        let Some(sub) = subscription.as_mut() else {
            continue;
        };
        tokio::select! {
            received = sub.recv() => match received {
                Ok(message) => publish(&shared, instance.handle_message(&message.channel, &message.payload, shared.clock.now())).await,
                Err(TransportError::ChannelLost { channel }) => {
                    instance.channel_lost(&channel);
                    // Make before break, as the blocking worker does.
                    match shared.transport.subscribe(&channels).await {
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
            },
            _ = tokio::time::sleep_until(deadline) => {
                // The coarse clock may lag the timer by a tick: the deadline is due.
                let now = shared.clock.now().max(instance.next_deadline().unwrap_or_default());
                publish(&shared, instance.handle_timeout(now)).await
            }
            _ = stop.changed() => {}
        }
    }

    publish(&shared, instance.stop(shared.clock.now())).await;
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
async fn publish<T: AsyncTransport>(shared: &Shared<T>, outbound: Outbound) {
    let (instance, t) = (&shared.instance, &shared.transport);
    let mut dispatch = Dispatch::new(outbound);
    loop {
        if let Some(messages) = dispatch.messages() {
            let result = t.publish(&messages).await;
            dispatch.published(instance, result);
        }
        let Some(call) = dispatch.lease() else {
            return;
        };
        let answer = match call.op {
            LeaseOp::Acquire { min_term } => {
                t.lease_acquire(&call.key, &call.holder, call.ttl, min_term)
                    .await
            }
            LeaseOp::Renew { term } => t.lease_renew(&call.key, &call.holder, term, call.ttl).await,
            LeaseOp::Query => t.lease_query(&call.key).await,
            LeaseOp::Release { term } => {
                if let Err(e) = t.lease_release(&call.key, &call.holder, term).await {
                    tracing::debug!(error = %e, "could not release the lease; it will expire");
                }
                continue;
            }
            _ => return,
        };
        dispatch.answered(instance, answer, shared.clock.now());
    }
}
