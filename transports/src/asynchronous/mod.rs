//! The async seam, for tokio: [`AsyncTransport`] mirrors [`Transport`](crate::Transport).

#[cfg(feature = "redis")]
mod redis;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

#[cfg(feature = "redis")]
pub use self::redis::{RedisAsyncSubscription, RedisAsyncTransport};
use crate::{LeaseState, Outgoing, Received, TransportError};

/// A live subscription, read asynchronously.
pub trait AsyncSubscription: Send {
    /// The next message. Cancel-safe: dropping the future loses nothing. An
    /// error means the subscription is gone; subscribe again.
    fn recv(&mut self) -> impl Future<Output = Result<Received, TransportError>> + Send;
}

/// [`Transport`](crate::Transport) for async code: the same operations, the
/// same promises (bounded by the transport's timeout; messages sent with a
/// write go in the same round trip, after it).
pub trait AsyncTransport: Send + Sync + 'static {
    /// A subscription made by [`AsyncTransport::subscribe`].
    type Subscription: AsyncSubscription + 'static;

    /// Reads `key`; `None` when absent or expired.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, TransportError>> + Send;

    /// [`Transport::get_with_ttl`](crate::Transport::get_with_ttl),
    /// asynchronously; the default calls `get` and cannot tell the time left.
    fn get_with_ttl(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(Bytes, Option<Duration>)>, TransportError>> + Send
    {
        let read = self.get(key);
        async move { Ok(read.await?.map(|value| (value, None))) }
    }

    /// Writes `key` with a time to live, then publishes `then`, in one round trip.
    /// When the data command took effect but publishing `then` failed,
    /// answer [`TransportError::Unpublished`].
    fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Writes `key` only if it holds no value (`SET … NX PX`), then
    /// publishes `then`, in one round trip. Whether it was written. The
    /// default is not atomic: a `get`, then `set` when it found nothing.
    fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> impl Future<Output = Result<bool, TransportError>> + Send {
        async move {
            if self.get(key).await?.is_some() {
                return Ok(false);
            }
            self.set(key, value, ttl, then).await.map(|()| true)
        }
    }

    /// Reads many keys in one round trip, each with its time left, in the
    /// order asked. The default reads them one by one.
    fn get_many_with_ttl(
        &self,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<crate::ValueWithTtl>>, TransportError>> + Send {
        async move {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                out.push(self.get_with_ttl(key).await?);
            }
            Ok(out)
        }
    }

    /// Writes many keys with one time to live, then publishes `then`, in
    /// one round trip; [`TransportError::Unpublished`] when only publishing
    /// failed. The default writes them one by one, then publishes.
    fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        async move {
            for (key, value) in entries {
                self.set(key, value, ttl, &[]).await?;
            }
            self.publish(then)
                .await
                .map_err(|e| TransportError::Unpublished(Box::new(e)))
        }
    }

    /// Deletes `key`, then publishes `then`, in one round trip. Whether it existed.
    /// When the data command took effect but publishing `then` failed,
    /// answer [`TransportError::Unpublished`].
    fn delete(
        &self,
        key: &str,
        then: &[Outgoing<'_>],
    ) -> impl Future<Output = Result<bool, TransportError>> + Send;

    /// Publishes messages, in order.
    fn publish(
        &self,
        messages: &[Outgoing<'_>],
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Subscribes to `channels`; messages published after this resolves are received.
    fn subscribe(
        &self,
        channels: &[&str],
    ) -> impl Future<Output = Result<Self::Subscription, TransportError>> + Send;

    /// Deletes every key of the current database.
    fn flush_db(&self) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// [`Transport::scan_prefix`](crate::Transport::scan_prefix),
    /// asynchronously. The default answers [`TransportError::Unsupported`].
    fn scan_prefix(
        &self,
        cursor: u64,
        prefix: &str,
        count: usize,
    ) -> impl Future<Output = Result<(u64, Vec<String>), TransportError>> + Send {
        let _ = (cursor, prefix, count);
        async { Err(TransportError::Unsupported("scanning keys")) }
    }

    /// [`Transport::unlink`](crate::Transport::unlink), asynchronously.
    /// The default answers [`TransportError::Unsupported`].
    fn unlink(
        &self,
        keys: &[String],
        then: &[Outgoing<'_>],
    ) -> impl Future<Output = Result<u64, TransportError>> + Send {
        let _ = (keys, then);
        async { Err(TransportError::Unsupported("unlinking keys")) }
    }

    /// [`Transport::close`](crate::Transport::close): closes the connections
    /// kept for reuse. The default does nothing.
    fn close(&self) {}

    /// [`Transport::lease_acquire`](crate::Transport::lease_acquire), asynchronously.
    /// The default answers [`TransportError::Unsupported`].
    fn lease_acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        min_term: u64,
    ) -> impl Future<Output = Result<LeaseState, TransportError>> + Send {
        let _ = (key, holder, ttl, min_term);
        async { Err(TransportError::Unsupported("controller leases")) }
    }

    /// [`Transport::lease_renew`](crate::Transport::lease_renew), asynchronously.
    /// The default answers [`TransportError::Unsupported`].
    fn lease_renew(
        &self,
        key: &str,
        holder: &str,
        term: u64,
        ttl: Duration,
    ) -> impl Future<Output = Result<LeaseState, TransportError>> + Send {
        let _ = (key, holder, term, ttl);
        async { Err(TransportError::Unsupported("controller leases")) }
    }

    /// [`Transport::lease_query`](crate::Transport::lease_query),
    /// asynchronously; the default renews term 0, which no lease has.
    fn lease_query(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<LeaseState, TransportError>> + Send {
        self.lease_renew(key, "", 0, Duration::from_millis(1))
    }

    /// [`Transport::lease_release`](crate::Transport::lease_release), asynchronously.
    /// The default answers [`TransportError::Unsupported`].
    fn lease_release(
        &self,
        key: &str,
        holder: &str,
        term: u64,
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        let _ = (key, holder, term);
        async { Err(TransportError::Unsupported("controller leases")) }
    }
}
