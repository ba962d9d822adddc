//! Redis for tokio: one multiplexed connection shared by every call, and a
//! dedicated Pub/Sub connection per subscription.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisResult};

use super::{AsyncSubscription, AsyncTransport};
use crate::error::{split_publish_failure, split_publish_failure_after};
use crate::lease::scripts;
use crate::{LeaseState, Outgoing, Received, TransportError};

/// Redis through one multiplexed async connection (cloned per call, rebuilt
/// after a failure). Every operation fails after the timeout (default 1 s).
pub struct RedisAsyncTransport {
    client: Client,
    timeout: Duration,
    shared: Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for RedisAsyncTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAsyncTransport")
            .field("server", &self.client.get_connection_info().addr())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisAsyncTransport {
    /// A transport for the server at `url`. Nothing is connected yet.
    pub fn open<T: IntoConnectionInfo>(url: T) -> Result<Self, TransportError> {
        let client = Client::open(crate::redis::lean_connection_info(url)?)
            .map_err(|e| TransportError::Backend(Box::new(e)))?;
        Ok(Self::from_client(client))
    }

    /// A transport over an existing client.
    pub fn from_client(client: Client) -> Self {
        crate::redis::ensure_crypto_provider();
        RedisAsyncTransport {
            client,
            timeout: Duration::from_secs(1),
            shared: Mutex::new(None),
        }
    }

    /// Sets how long any operation may take (default 1 s; zero means 1 ms).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    async fn connection(&self) -> Result<MultiplexedConnection, TransportError> {
        let existing = self
            .shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(conn) = existing {
            return Ok(conn);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let conn = self
            .within(
                self.client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await?;
        *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `op` on the shared connection, bounded by the timeout; a failure
    /// other than an error reply retires the connection.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, TransportError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        // One budget for connecting and the command: a frozen server that
        // accepts connections must not cost twice the timeout.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let conn = self.connection().await?;
        let result = match tokio::time::timeout_at(deadline, op(conn)).await {
            Ok(result) => result.map_err(|e| TransportError::from_redis(e, self.timeout)),
            Err(_) => Err(TransportError::Timeout(self.timeout)),
        };
        if let Err(e) = &result {
            if e.is_unavailable() {
                *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = None;
            }
        }
        result
    }

    async fn within<T>(
        &self,
        fut: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, TransportError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(result) => result.map_err(|e| TransportError::from_redis(e, self.timeout)),
            Err(_) => Err(TransportError::Timeout(self.timeout)),
        }
    }
}

fn pipeline_with(first: Option<redis::Cmd>, messages: &[Outgoing<'_>]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    if let Some(cmd) = first {
        pipe.add_command(cmd);
    }
    for m in messages {
        pipe.cmd("PUBLISH").arg(m.channel).arg(m.payload).ignore();
    }
    pipe
}

impl AsyncTransport for RedisAsyncTransport {
    type Subscription = RedisAsyncSubscription;

    async fn get(&self, key: &str) -> Result<Option<Bytes>, TransportError> {
        let cmd = redis::cmd("GET").arg(key).clone();
        let value: Option<Vec<u8>> = self
            .run(|mut c| async move { cmd.query_async(&mut c).await })
            .await?;
        Ok(value.map(Bytes::from))
    }

    async fn get_with_ttl(
        &self,
        key: &str,
    ) -> Result<Option<(Bytes, Option<Duration>)>, TransportError> {
        let pipe = crate::redis::get_with_ttl_pipe(key);
        let answer = self
            .run(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        Ok(crate::redis::with_ttl(answer))
    }

    async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError> {
        if then.is_empty() {
            let cmd = crate::redis::set_cmd(key, value, ttl, false);
            return self
                .run(|mut c| async move { cmd.query_async::<()>(&mut c).await })
                .await;
        }
        let pipe = crate::redis::set_many_pipe(&[(key, value)], ttl, then);
        self.run(|mut c| async move { split_publish_failure(pipe.query_async::<()>(&mut c).await) })
            .await?
            .map_err(|e| TransportError::unpublished(e, self.timeout))
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<bool, TransportError> {
        if then.is_empty() {
            let cmd = crate::redis::set_cmd(key, value, ttl, true);
            let written: Option<String> = self
                .run(|mut c| async move { cmd.query_async(&mut c).await })
                .await?;
            return Ok(written.is_some());
        }
        let pipe = crate::redis::set_if_absent_pipe(key, value, ttl, then);
        let (written,): (Option<String>,) = self
            .run(|mut c| async move { split_publish_failure(pipe.query_async(&mut c).await) })
            .await?
            .map_err(|e| TransportError::unpublished(e, self.timeout))?;
        Ok(written.is_some())
    }

    async fn get_many_with_ttl(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Option<(Bytes, Option<Duration>)>>, TransportError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let pipe = crate::redis::get_many_with_ttl_pipe(keys);
        let answer = self
            .run(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        crate::redis::many_with_ttl(keys.len(), answer)
    }

    async fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError> {
        if entries.is_empty() {
            return self.publish(then).await;
        }
        let data = entries.len();
        let pipe = crate::redis::set_many_pipe(entries, ttl, then);
        self.run(|mut c| async move {
            split_publish_failure_after(data, pipe.query_async::<()>(&mut c).await)
        })
        .await?
        .map_err(|e| TransportError::unpublished(e, self.timeout))
    }

    async fn delete(&self, key: &str, then: &[Outgoing<'_>]) -> Result<bool, TransportError> {
        let mut del = redis::cmd("DEL");
        del.arg(key);
        let pipe = pipeline_with(Some(del), then);
        let (removed,): (i64,) = self
            .run(|mut c| async move { split_publish_failure(pipe.query_async(&mut c).await) })
            .await?
            .map_err(|e| TransportError::unpublished(e, self.timeout))?;
        Ok(removed > 0)
    }

    async fn publish(&self, messages: &[Outgoing<'_>]) -> Result<(), TransportError> {
        if messages.is_empty() {
            return Ok(());
        }
        let pipe = pipeline_with(None, messages);
        self.run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await
    }

    async fn subscribe(&self, channels: &[&str]) -> Result<RedisAsyncSubscription, TransportError> {
        let mut pubsub = self.within(self.client.get_async_pubsub()).await?;
        let channels: Vec<String> = channels.iter().map(|c| (*c).to_owned()).collect();
        self.within(pubsub.subscribe(channels)).await?;
        let (sink, stream) = pubsub.split();
        Ok(RedisAsyncSubscription {
            sink,
            stream,
            timeout: self.timeout,
        })
    }

    async fn scan_prefix(
        &self,
        cursor: u64,
        prefix: &str,
        count: usize,
    ) -> Result<(u64, Vec<String>), TransportError> {
        let cmd = crate::redis::scan_cmd(cursor, prefix, count);
        self.run(|mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    async fn unlink(&self, keys: &[String], then: &[Outgoing<'_>]) -> Result<u64, TransportError> {
        if keys.is_empty() {
            self.publish(then).await?;
            return Ok(0);
        }
        let mut unlink = redis::cmd("UNLINK");
        unlink.arg(keys);
        let pipe = pipeline_with(Some(unlink), then);
        let (removed,): (u64,) = self
            .run(|mut c| async move { split_publish_failure(pipe.query_async(&mut c).await) })
            .await?
            .map_err(|e| TransportError::unpublished(e, self.timeout))?;
        Ok(removed)
    }

    async fn flush_db(&self) -> Result<(), TransportError> {
        let cmd = redis::cmd("FLUSHDB");
        self.run(|mut c| async move { cmd.query_async::<()>(&mut c).await })
            .await
    }

    fn close(&self) {
        // The shared connection closes when the last clone (a call still
        // running) is dropped.
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    async fn lease_acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        min_term: u64,
    ) -> Result<LeaseState, TransportError> {
        let cmd = crate::redis::lease_acquire_cmd(key, holder, ttl, min_term);
        self.run(|mut c| async move { cmd.query_async(&mut c).await })
            .await
            .map(scripts::state)
    }

    async fn lease_renew(
        &self,
        key: &str,
        holder: &str,
        term: u64,
        ttl: Duration,
    ) -> Result<LeaseState, TransportError> {
        let cmd = crate::redis::lease_renew_cmd(key, holder, term, ttl);
        self.run(|mut c| async move { cmd.query_async(&mut c).await })
            .await
            .map(scripts::state)
    }

    async fn lease_query(&self, key: &str) -> Result<LeaseState, TransportError> {
        let cmd = crate::redis::lease_query_cmd(key);
        self.run(|mut c| async move { cmd.query_async(&mut c).await })
            .await
            .map(scripts::state)
    }

    async fn lease_release(
        &self,
        key: &str,
        holder: &str,
        term: u64,
    ) -> Result<(), TransportError> {
        let cmd = crate::redis::lease_release_cmd(key, holder, term);
        self.run(|mut c| async move { cmd.query_async::<i64>(&mut c).await })
            .await
            .map(drop)
    }
}

/// After this long without a message the subscription pings the server, so a
/// server that stopped answering without closing the connection is noticed.
const HEALTH_CHECK_AFTER: Duration = Duration::from_secs(1);

/// A subscription on its own async Redis connection; dropping it closes the connection.
pub struct RedisAsyncSubscription {
    sink: PubSubSink,
    stream: PubSubStream,
    timeout: Duration,
}

impl std::fmt::Debug for RedisAsyncSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAsyncSubscription")
            .finish_non_exhaustive()
    }
}

impl AsyncSubscription for RedisAsyncSubscription {
    async fn recv(&mut self) -> Result<Received, TransportError> {
        loop {
            match tokio::time::timeout(HEALTH_CHECK_AFTER, self.stream.next()).await {
                Ok(Some(msg)) => {
                    return Ok(Received {
                        channel: msg.get_channel_name().to_owned(),
                        payload: Bytes::copy_from_slice(msg.get_payload_bytes()),
                    })
                }
                Ok(None) => return Err(TransportError::SubscriptionClosed),
                Err(_quiet) => {
                    match tokio::time::timeout(self.timeout, self.sink.ping::<redis::Value>()).await
                    {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(TransportError::from_redis(e, self.timeout)),
                        Err(_) => return Err(TransportError::Timeout(self.timeout)),
                    }
                }
            }
        }
    }
}
