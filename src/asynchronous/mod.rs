//! The async cache, on tokio: the caller's task does the reads and writes,
//! one background task keeps the subscription and runs the engine's timers.

mod worker;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aci_core::Strategy;
use aci_transports::AsyncTransport;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::error::{into_text, Result};
use crate::flush::Flush;
use crate::instance::{Instance, Lookup};
use crate::settings::{Builder, Settings};
use crate::stats::Stats;
use crate::subscription_guard::SubscriptionGuard;

/// [`AdaptiveCache`](crate::AdaptiveCache) for async code: the same near
/// cache, engine and guarantees, driven by tokio tasks.
///
/// Call [`AsyncAdaptiveCache::stop`] for a clean shutdown (the last batch is
/// flushed and the task joined). Dropping the cache without it tells the task
/// to stop; it flushes and closes the subscription on its own, unjoined.
///
/// ```no_run
/// # async fn demo() -> aci_cache::Result<()> {
/// use aci_cache::AsyncAdaptiveCache;
/// let cache = AsyncAdaptiveCache::builder()
///     .namespace("user-service")
///     .connect_async("redis://127.0.0.1:6379")
///     .await?;
/// cache.set("user:42", "Alice").await?;
/// assert_eq!(cache.get_string("user:42").await?.as_deref(), Some("Alice"));
/// cache.stop().await;
/// # Ok(())
/// # }
/// ```
pub struct AsyncAdaptiveCache<T: AsyncTransport> {
    shared: Arc<Shared<T>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

pub(crate) struct Shared<T> {
    pub(crate) instance: Instance,
    pub(crate) clock: Clock,
    pub(crate) transport: T,
    pub(crate) stop: watch::Sender<bool>,
}

#[cfg(feature = "redis")]
impl AsyncAdaptiveCache<aci_transports::RedisAsyncTransport> {
    /// A builder with the original's defaults.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// Builds and starts an async cache on the Redis at `url`.
    #[cfg(feature = "redis")]
    pub async fn connect_async(
        self,
        url: &str,
    ) -> Result<AsyncAdaptiveCache<aci_transports::RedisAsyncTransport>> {
        let settings = self.settings()?;
        let transport =
            aci_transports::RedisAsyncTransport::open(url)?.with_timeout(settings.timeout);
        AsyncAdaptiveCache::start_with(transport, settings).await
    }

    /// Builds and starts an async cache on any [`AsyncTransport`].
    pub async fn transport_async<T: AsyncTransport>(
        self,
        transport: T,
    ) -> Result<AsyncAdaptiveCache<T>> {
        AsyncAdaptiveCache::start_with(transport, self.settings()?).await
    }
}

impl<T: AsyncTransport> AsyncAdaptiveCache<T> {
    /// A started cache on `transport`: subscribed, or an error within the
    /// timeout (see [`AsyncAdaptiveCache::start`]).
    pub async fn start_with(transport: T, settings: Settings) -> Result<Self> {
        let (stop, _) = watch::channel(false);
        let cache = AsyncAdaptiveCache {
            shared: Arc::new(Shared {
                instance: Instance::new(settings)?,
                clock: Clock::new(),
                transport,
                stop,
            }),
            worker: Mutex::new(None),
        };
        cache.start().await?;
        Ok(cache)
    }

    /// Starts the cache if it is not running: subscribes to the fleet's
    /// channels first — within the timeout, or fails typed (Redis down or
    /// frozen: `is_unavailable`; a wrong password, an ACL user without
    /// channel rights: `is_denied`) — then spawns the background task. A
    /// cache whose `start` failed stays stopped.
    pub async fn start(&self) -> Result<()> {
        if self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            return Ok(());
        }
        let config = &self.shared.instance.settings().core;
        let channels = [config.invalidation_channel(), config.strategy_channel()];
        let subscription = self.shared.transport.subscribe(&channels).await?;
        let mut worker = self.worker.lock().unwrap_or_else(PoisonError::into_inner);
        if worker.is_some() {
            return Ok(()); // started meanwhile by another caller
        }
        self.shared.stop.send_replace(false);
        self.shared
            .instance
            .start(self.shared.clock.now(), Clock::unix_now());
        self.shared.instance.subscribed();
        let guard = SubscriptionGuard::new(&self.shared);
        *worker = Some(tokio::spawn(worker::run(
            Arc::clone(&self.shared),
            subscription,
            guard,
        )));
        Ok(())
    }

    /// Stops: flushes the batch buffer, joins the task, closes the
    /// subscription and every connection. Until [`AsyncAdaptiveCache::start`]
    /// restarts it, every call that would reach Redis (`get`, `set`,
    /// `delete`, `flush`, `force_strategy`) fails with [`Error::Stopped`](crate::Error::Stopped)
    /// without connecting; `stats`, `strategy` and the like still answer.
    pub async fn stop(&self) {
        let handle = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.shared.stop.send_replace(true);
        if let Some(handle) = handle {
            let _ = handle.await;
        }
        self.shared.transport.close();
    }

    /// [`Error::Stopped`](crate::Error::Stopped) after `stop`, until `start`.
    fn ensure_running(&self) -> Result<()> {
        if *self.shared.stop.borrow() {
            Err(crate::Error::Stopped)
        } else {
            Ok(())
        }
    }

    /// The value of `key`, from the near cache or from Redis.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.ensure_running()?;
        let instance = &self.shared.instance;
        let deadline = tokio::time::Instant::now() + instance.settings().timeout;
        let result = loop {
            match instance.lookup(key, self.shared.clock.now()) {
                Lookup::Hit(value) => return Ok(Some(value)),
                Lookup::Fill(fill) => {
                    // Cancelled here, the dropped `fill` hands the read to a follower.
                    let read = self.shared.transport.get_with_ttl(fill.stored_key()).await;
                    break instance.finish_fill_with_ttl(fill, read, self.shared.clock.now());
                }
                Lookup::Wait(wait) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match wait.wait_async(left).await {
                        Some(result) => break result,
                        // The leader was cancelled: look again (and perhaps lead).
                        None if !left.is_zero() => continue,
                        None => break Err(crate::Error::ReadWaitTimeout),
                    }
                }
            }
        };
        instance.settle_read(key, result)
    }

    /// The value of `key` as UTF-8 text.
    pub async fn get_string(&self, key: &str) -> Result<Option<String>> {
        into_text(key, self.get(key).await?)
    }

    /// Writes `value` with the default TTL.
    pub async fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        let ttl = self.shared.instance.settings().core.default_ttl();
        self.set_with_ttl(key, value, Duration::from_nanos(ttl.as_nanos()))
            .await
    }

    /// Writes `value` with a TTL of its own, between 1 ms and 100 years
    /// (otherwise [`Error::InvalidTtl`](crate::Error::InvalidTtl), nothing written).
    /// A value stored whose invalidation could not be published returns
    /// [`Error::Unannounced`](crate::Error::Unannounced) with
    /// [`Done::Stored`](crate::Done::Stored): it is in Redis and in this
    /// instance's near cache; other instances may serve the old value until
    /// `local_ttl`.
    pub async fn set_with_ttl(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<()> {
        self.ensure_running()?;
        crate::error::check_ttl(ttl)?;
        let instance = &self.shared.instance;
        let value = value.as_ref();
        let stored = instance.settings().stored_key(key);
        let write = instance.prepare_write(key, Some(ttl), self.shared.clock.now())?;
        let sent = self
            .shared
            .transport
            .set(&stored, value, ttl, &write.outbound.as_outgoing())
            .await;
        instance.finish_write(write, key, value, sent, self.shared.clock.now())
    }

    /// Deletes `key` and tells the fleet at once. Whether it existed. A key
    /// deleted whose invalidation could not be published returns
    /// [`Error::Unannounced`](crate::Error::Unannounced) with
    /// [`Done::Deleted`](crate::Done::Deleted).
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.ensure_running()?;
        let instance = &self.shared.instance;
        let stored = instance.settings().stored_key(key);
        let outbound = instance.prepare_delete(key, self.shared.clock.now())?;
        let sent = self
            .shared
            .transport
            .delete(&stored, &outbound.as_outgoing())
            .await;
        instance.finish_delete(key, &outbound, sent)
    }

    /// Deletes this cache's keys — every key of its namespace, and nothing
    /// else — and tells the fleet, so every instance drops them from its
    /// near cache. How many keys were deleted. Redis is not blocked (`SCAN`
    /// in batches of 500, each removed with `UNLINK` in the same round trip
    /// as the invalidation naming it); the lease keys are kept. Without a
    /// namespace it refuses with
    /// [`Error::FlushWithoutNamespace`](crate::Error::FlushWithoutNamespace)
    /// (see `flush_database`).
    pub async fn flush(&self) -> Result<u64> {
        self.ensure_running()?;
        let instance = &self.shared.instance;
        let flush = Flush::of(instance.settings())?;
        let (mut cursor, mut removed) = (0, 0);
        loop {
            let (next, keys) = self
                .shared
                .transport
                .scan_prefix(cursor, flush.prefix(), Flush::BATCH)
                .await?;
            let keys = flush.ours(keys);
            if !keys.is_empty() {
                let users = flush.user_keys(&keys);
                let outbound = instance.prepare_delete_many(&users, self.shared.clock.now())?;
                let sent = self
                    .shared
                    .transport
                    .unlink(&keys, &outbound.as_outgoing())
                    .await;
                removed += instance.finish_delete_many(&users, &outbound, sent)?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// Deletes every key of the Redis database (`FLUSHDB`): other
    /// applications' keys included. What the original's `flush` did; for
    /// tests and development. Other instances are not told: their near
    /// caches keep what they hold until it expires (`local_ttl`).
    pub async fn flush_database(&self) -> Result<()> {
        self.ensure_running()?;
        self.shared.transport.flush_db().await?;
        self.shared.instance.commit_flush();
        Ok(())
    }

    /// The strategy in force.
    pub fn strategy(&self) -> Strategy {
        self.shared.instance.strategy()
    }

    /// Pins the strategy (`Some`), announcing it if this is the controller, or
    /// lets the controller decide again (`None`). The pin holds even when
    /// the announcement fails: that returns
    /// [`Error::Unannounced`](crate::Error::Unannounced) with
    /// [`Done::Pinned`](crate::Done::Pinned), and the next rebroadcast
    /// carries the decision.
    pub async fn force_strategy(&self, strategy: Option<Strategy>) -> Result<()> {
        self.ensure_running()?;
        let outbound = self
            .shared
            .instance
            .force_strategy(strategy, self.shared.clock.now());
        if !outbound.has_messages() {
            return Ok(());
        }
        let sent = self.shared.transport.publish(&outbound.as_outgoing()).await;
        self.shared.instance.finish_force(strategy, &outbound, sent)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.instance.stats()
    }

    /// Calls `callback(from, to)` on every strategy switch.
    pub fn on_switch(&self, callback: impl Fn(Strategy, Strategy) + Send + Sync + 'static) {
        self.shared.instance.on_switch(Arc::new(callback));
    }

    /// This instance's id, as sent in `source`.
    pub fn instance_id(&self) -> &str {
        self.shared.instance.settings().instance_id()
    }

    /// Whether the subscription is up (and the near cache in use).
    pub fn is_subscribed(&self) -> bool {
        self.shared.instance.is_subscribed()
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.shared.transport
    }

    /// The instance logic, for diagnostics.
    pub fn instance(&self) -> &Instance {
        &self.shared.instance
    }
}

impl<T: AsyncTransport> Drop for AsyncAdaptiveCache<T> {
    fn drop(&mut self) {
        // The task sees this, flushes, publishes and closes on its own.
        self.shared.stop.send_replace(true);
    }
}
