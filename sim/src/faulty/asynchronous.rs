//! The same faults around an [`AsyncTransport`], for `AsyncAdaptiveCache`:
//! delays are `tokio::time` sleeps, everything else is the blocking
//! wrapper's link.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aci_cache::transports::{
    AsyncSubscription, AsyncTransport, LeaseState, Outgoing, Received, TransportError,
};
use bytes::Bytes;

use super::{FaultyTransport, InFlight, Link, OUTAGE_CHECK};

/// A command as a round trip through the faulty link, asynchronously.
async fn command<R>(
    link: &Link,
    run: impl Future<Output = Result<R, TransportError>>,
) -> Result<R, TransportError> {
    pause(link.hop()?).await;
    let answer = run.await?;
    pause(link.hop()?).await;
    Ok(answer)
}

async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

impl<T: AsyncTransport> AsyncTransport for FaultyTransport<T> {
    type Subscription = FaultyAsyncSubscription<T::Subscription>;

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, TransportError>> + Send {
        command(&self.link, self.inner.get(key))
    }

    fn get_with_ttl(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(Bytes, Option<Duration>)>, TransportError>> + Send
    {
        command(&self.link, self.inner.get_with_ttl(key))
    }

    fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        command(&self.link, self.inner.set(key, value, ttl, then))
    }

    fn delete(
        &self,
        key: &str,
        then: &[Outgoing<'_>],
    ) -> impl Future<Output = Result<bool, TransportError>> + Send {
        command(&self.link, self.inner.delete(key, then))
    }

    fn publish(
        &self,
        messages: &[Outgoing<'_>],
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        command(&self.link, self.inner.publish(messages))
    }

    async fn subscribe(&self, channels: &[&str]) -> Result<Self::Subscription, TransportError> {
        let inner = command(&self.link, self.inner.subscribe(channels)).await?;
        Ok(FaultyAsyncSubscription {
            inner,
            link: Arc::clone(&self.link),
            in_flight: InFlight::default(),
        })
    }

    fn flush_db(&self) -> impl Future<Output = Result<(), TransportError>> + Send {
        command(&self.link, self.inner.flush_db())
    }

    fn close(&self) {
        self.inner.close();
    }

    fn scan_prefix(
        &self,
        cursor: u64,
        prefix: &str,
        count: usize,
    ) -> impl Future<Output = Result<(u64, Vec<String>), TransportError>> + Send {
        command(&self.link, self.inner.scan_prefix(cursor, prefix, count))
    }

    fn unlink(
        &self,
        keys: &[String],
        then: &[Outgoing<'_>],
    ) -> impl Future<Output = Result<u64, TransportError>> + Send {
        command(&self.link, self.inner.unlink(keys, then))
    }

    fn lease_acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        min_term: u64,
    ) -> impl Future<Output = Result<LeaseState, TransportError>> + Send {
        command(
            &self.link,
            self.inner.lease_acquire(key, holder, ttl, min_term),
        )
    }

    fn lease_renew(
        &self,
        key: &str,
        holder: &str,
        term: u64,
        ttl: Duration,
    ) -> impl Future<Output = Result<LeaseState, TransportError>> + Send {
        command(&self.link, self.inner.lease_renew(key, holder, term, ttl))
    }

    fn lease_query(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<LeaseState, TransportError>> + Send {
        command(&self.link, self.inner.lease_query(key))
    }

    fn lease_release(
        &self,
        key: &str,
        holder: &str,
        term: u64,
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        command(&self.link, self.inner.lease_release(key, holder, term))
    }
}

/// An async subscription whose messages cross the faulty link. Cancel-safe,
/// as the trait asks: a message taken from the backend is parked in the
/// subscription before anything else can be dropped.
#[derive(Debug)]
pub struct FaultyAsyncSubscription<S> {
    inner: S,
    link: Arc<Link>,
    in_flight: InFlight,
}

impl<S: AsyncSubscription> AsyncSubscription for FaultyAsyncSubscription<S> {
    async fn recv(&mut self) -> Result<Received, TransportError> {
        loop {
            if self.in_flight.ended(&self.link) {
                return Err(TransportError::SubscriptionClosed);
            }
            let now = Instant::now();
            if let Some(message) = self.in_flight.due(now) {
                return Ok(message);
            }
            let wait = self.in_flight.next().map_or(OUTAGE_CHECK, |due| {
                due.saturating_duration_since(now).min(OUTAGE_CHECK)
            });
            let received = tokio::select! {
                message = self.inner.recv() => Some(message?),
                () = tokio::time::sleep(wait) => None,
            };
            if let Some(message) = received {
                self.in_flight.arrive(&self.link, message);
            }
        }
    }
}
