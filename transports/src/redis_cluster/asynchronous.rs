//! Redis Cluster for tokio: the blocking cluster transport, each call run on
//! tokio's blocking pool, and the sharded subscriber's readers sending
//! straight into a tokio channel.
//!
//! Why not the `redis` crate's async cluster client: measured on this
//! machine it surfaced `ASK` / `MOVED` to callers during a slot migration
//! and did not keep sharded subscriptions alive after a slot move or a
//! failover (`../shared/DESIGN.md`, "Redis Cluster"). The blocking path
//! handles both and is tested on a real cluster; here it costs one hand-off
//! to a pooled thread per call (see BENCHMARKS.md, "Redis Cluster").

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::subscription::{ClusterSubscription, Sink};
use super::{PubSubMode, RedisClusterTransport};
use crate::{
    AsyncSubscription, AsyncTransport, LeaseState, Outgoing, Received, Transport, TransportError,
};

/// [`RedisClusterTransport`] for async code (features `cluster` and
/// `tokio`). Every call runs the blocking transport on tokio's blocking
/// pool, so it needs a tokio runtime; it fails after the timeout like the
/// blocking one.
///
/// ```no_run
/// # async fn demo() -> Result<(), aci_transports::TransportError> {
/// use aci_transports::{AsyncTransport, RedisClusterAsyncTransport};
/// let cluster = RedisClusterAsyncTransport::open(["redis://127.0.0.1:7001"])?;
/// cluster.set("greeting", b"hello", std::time::Duration::from_secs(10), &[]).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RedisClusterAsyncTransport {
    inner: Arc<RedisClusterTransport>,
}

impl RedisClusterAsyncTransport {
    /// A transport for the cluster that `seeds` belong to (see
    /// [`RedisClusterTransport::open`]).
    pub fn open<I, S>(seeds: I) -> Result<Self, TransportError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self::from_blocking(RedisClusterTransport::open(seeds)?))
    }

    /// The async face of a blocking cluster transport.
    pub fn from_blocking(inner: RedisClusterTransport) -> Self {
        RedisClusterAsyncTransport {
            inner: Arc::new(inner),
        }
    }

    /// Sets how long any operation may take (default 1 s).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.map(|t| t.with_timeout(timeout))
    }

    /// Sets how messages travel (default [`PubSubMode::Sharded`]).
    pub fn with_pubsub(self, mode: PubSubMode) -> Self {
        self.map(|t| t.with_pubsub(mode))
    }

    /// The blocking transport underneath.
    pub fn blocking(&self) -> &RedisClusterTransport {
        &self.inner
    }

    fn map(self, f: impl FnOnce(RedisClusterTransport) -> RedisClusterTransport) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => Self::from_blocking(f(inner)),
            // Shared already (a clone is in use): settings are fixed.
            Err(inner) => RedisClusterAsyncTransport { inner },
        }
    }

    /// Runs `op` on the blocking transport, on tokio's blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&RedisClusterTransport) -> Result<T, TransportError> + Send + 'static,
    ) -> Result<T, TransportError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || op(&inner))
            .await
            .map_err(|e| TransportError::Backend(Box::new(e)))?
    }
}

/// Owned copies of messages to publish, for a call on another thread.
fn owned(messages: &[Outgoing<'_>]) -> Vec<(String, Vec<u8>)> {
    messages
        .iter()
        .map(|m| (m.channel.to_owned(), m.payload.to_vec()))
        .collect()
}

fn outgoing(messages: &[(String, Vec<u8>)]) -> Vec<Outgoing<'_>> {
    messages
        .iter()
        .map(|(channel, payload)| Outgoing { channel, payload })
        .collect()
}

impl AsyncTransport for RedisClusterAsyncTransport {
    type Subscription = ClusterAsyncSubscription;

    async fn get(&self, key: &str) -> Result<Option<Bytes>, TransportError> {
        let key = key.to_owned();
        self.run(move |t| t.get(&key)).await
    }

    async fn get_with_ttl(
        &self,
        key: &str,
    ) -> Result<Option<(Bytes, Option<Duration>)>, TransportError> {
        let key = key.to_owned();
        self.run(move |t| t.get_with_ttl(&key)).await
    }

    async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError> {
        let (key, value, then) = (key.to_owned(), value.to_vec(), owned(then));
        self.run(move |t| t.set(&key, &value, ttl, &outgoing(&then)))
            .await
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<bool, TransportError> {
        let (key, value, then) = (key.to_owned(), value.to_vec(), owned(then));
        self.run(move |t| t.set_if_absent(&key, &value, ttl, &outgoing(&then)))
            .await
    }

    async fn get_many_with_ttl(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Option<(Bytes, Option<Duration>)>>, TransportError> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.run(move |t| {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            t.get_many_with_ttl(&keys)
        })
        .await
    }

    async fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError> {
        let entries: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect();
        let then = owned(then);
        self.run(move |t| {
            let entries: Vec<(&str, &[u8])> = entries
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            t.set_many(&entries, ttl, &outgoing(&then))
        })
        .await
    }

    async fn delete(&self, key: &str, then: &[Outgoing<'_>]) -> Result<bool, TransportError> {
        let (key, then) = (key.to_owned(), owned(then));
        self.run(move |t| t.delete(&key, &outgoing(&then))).await
    }

    async fn publish(&self, messages: &[Outgoing<'_>]) -> Result<(), TransportError> {
        let messages = owned(messages);
        self.run(move |t| t.publish(&outgoing(&messages))).await
    }

    async fn subscribe(
        &self,
        channels: &[&str],
    ) -> Result<ClusterAsyncSubscription, TransportError> {
        let channels: Vec<String> = channels.iter().map(|c| (*c).to_owned()).collect();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let sink: Sink = Arc::new(move |item| tx.send(item).is_ok());
        // Connecting to each node blocks: on the blocking pool too.
        let readers = self
            .run(move |t| {
                let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
                ClusterSubscription::start_into(t, &channels, None, sink)
            })
            .await?;
        Ok(ClusterAsyncSubscription {
            rx,
            _readers: readers,
        })
    }

    async fn flush_db(&self) -> Result<(), TransportError> {
        self.run(|t| t.flush_db()).await
    }

    async fn scan_prefix(
        &self,
        cursor: u64,
        prefix: &str,
        count: usize,
    ) -> Result<(u64, Vec<String>), TransportError> {
        let prefix = prefix.to_owned();
        self.run(move |t| t.scan_prefix(cursor, &prefix, count))
            .await
    }

    async fn unlink(&self, keys: &[String], then: &[Outgoing<'_>]) -> Result<u64, TransportError> {
        let (keys, then) = (keys.to_vec(), owned(then));
        self.run(move |t| t.unlink(&keys, &outgoing(&then))).await
    }

    fn close(&self) {
        self.inner.close();
    }

    async fn lease_acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        min_term: u64,
    ) -> Result<LeaseState, TransportError> {
        let (key, holder) = (key.to_owned(), holder.to_owned());
        self.run(move |t| t.lease_acquire(&key, &holder, ttl, min_term))
            .await
    }

    async fn lease_renew(
        &self,
        key: &str,
        holder: &str,
        term: u64,
        ttl: Duration,
    ) -> Result<LeaseState, TransportError> {
        let (key, holder) = (key.to_owned(), holder.to_owned());
        self.run(move |t| t.lease_renew(&key, &holder, term, ttl))
            .await
    }

    async fn lease_query(&self, key: &str) -> Result<LeaseState, TransportError> {
        let key = key.to_owned();
        self.run(move |t| t.lease_query(&key)).await
    }

    async fn lease_release(
        &self,
        key: &str,
        holder: &str,
        term: u64,
    ) -> Result<(), TransportError> {
        let (key, holder) = (key.to_owned(), holder.to_owned());
        self.run(move |t| t.lease_release(&key, &holder, term))
            .await
    }
}

/// A cluster subscription read asynchronously: the sharded subscriber's
/// reader threads send into a tokio channel.
#[derive(Debug)]
pub struct ClusterAsyncSubscription {
    rx: tokio::sync::mpsc::UnboundedReceiver<Result<Received, TransportError>>,
    /// Stops and joins the readers when dropped.
    _readers: ClusterSubscription,
}

impl AsyncSubscription for ClusterAsyncSubscription {
    async fn recv(&mut self) -> Result<Received, TransportError> {
        // Cancel-safe: `mpsc::UnboundedReceiver::recv` loses nothing.
        self.rx
            .recv()
            .await
            .unwrap_or(Err(TransportError::SubscriptionClosed))
    }
}
