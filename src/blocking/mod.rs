//! The blocking cache: the caller's thread does the reads and writes, one
//! background thread keeps the subscription and runs the engine's timers.

mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aci_core::Strategy;
use aci_transports::Transport;
use bytes::Bytes;

use crate::clock::Clock;
use crate::error::{into_text, Error, Result};
use crate::flush::Flush;
use crate::instance::{Instance, Lookup};
use crate::settings::{Builder, Settings};
use crate::stats::Stats;
use crate::subscription_guard::SubscriptionGuard;

/// A near cache in front of Redis, kept consistent across a fleet.
///
/// `get` answers from memory when it can (a hit costs no network), otherwise
/// reads Redis once for all concurrent callers. `set` writes Redis (`SET …
/// PX`), with the invalidation the strategy calls for in the same round trip.
/// Invalidations from other instances only ever drop near-cache entries;
/// nothing received deletes anything from Redis.
///
/// ```no_run
/// use aci_cache::AdaptiveCache;
/// let cache = AdaptiveCache::builder()
///     .namespace("user-service")
///     .connect("redis://127.0.0.1:6379")?;
/// cache.set("user:42", r#"{"name": "Alice"}"#)?;
/// assert_eq!(cache.get_string("user:42")?.as_deref(), Some(r#"{"name": "Alice"}"#));
/// println!("{} via {}", cache.instance_id(), cache.strategy());
/// # Ok::<(), aci_cache::Error>(())
/// ```
pub struct AdaptiveCache<T: Transport> {
    shared: Arc<Shared<T>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

pub(crate) struct Shared<T> {
    pub(crate) instance: Instance,
    pub(crate) clock: Clock,
    pub(crate) transport: T,
    pub(crate) stop: AtomicBool,
}

#[cfg(feature = "redis")]
impl AdaptiveCache<aci_transports::RedisTransport> {
    /// A builder with the original's defaults.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A started cache on the Redis at `url`, with the default configuration.
    pub fn open(url: &str) -> Result<Self> {
        Builder::new().connect(url)
    }
}

impl Builder {
    /// Builds and starts a cache on the Redis at `url`
    /// (`redis://[user:password@]host:port[/db]`).
    #[cfg(feature = "redis")]
    pub fn connect(self, url: &str) -> Result<AdaptiveCache<aci_transports::RedisTransport>> {
        let settings = self.settings()?;
        let transport = aci_transports::RedisTransport::open(url)?.with_timeout(settings.timeout);
        AdaptiveCache::start_with(transport, settings)
    }

    /// Builds and starts a cache on a `redis::Client` you already have.
    #[cfg(feature = "redis")]
    pub fn client(
        self,
        client: redis::Client,
    ) -> Result<AdaptiveCache<aci_transports::RedisTransport>> {
        let settings = self.settings()?;
        let transport =
            aci_transports::RedisTransport::from_client(client).with_timeout(settings.timeout);
        AdaptiveCache::start_with(transport, settings)
    }

    /// Builds and starts a cache on any [`Transport`].
    pub fn transport<T: Transport>(self, transport: T) -> Result<AdaptiveCache<T>> {
        AdaptiveCache::start_with(transport, self.settings()?)
    }
}

impl<T: Transport> AdaptiveCache<T> {
    /// A started cache on `transport`: subscribed (so messages published
    /// afterwards are seen), or an error within the timeout (see
    /// [`AdaptiveCache::start`]).
    pub fn start_with(transport: T, settings: Settings) -> Result<Self> {
        let cache = AdaptiveCache {
            shared: Arc::new(Shared {
                instance: Instance::new(settings)?,
                clock: Clock::new(),
                transport,
                stop: AtomicBool::new(false),
            }),
            worker: Mutex::new(None),
        };
        cache.start()?;
        Ok(cache)
    }

    /// Starts the cache if it is not running: subscribes to the fleet's
    /// channels first — within the timeout, or fails typed (Redis down or
    /// frozen: [`Error::is_unavailable`]; a wrong password, an ACL user
    /// without channel rights: [`Error::is_denied`]) — then starts the
    /// background worker. A cache whose `start` failed stays stopped.
    pub fn start(&self) -> Result<()> {
        let mut worker = self.worker.lock().unwrap_or_else(PoisonError::into_inner);
        if worker.is_some() {
            return Ok(());
        }
        let config = &self.shared.instance.settings().core;
        let channels = [config.invalidation_channel(), config.strategy_channel()];
        let subscription = self.shared.transport.subscribe(&channels)?;
        self.shared.stop.store(false, Ordering::SeqCst);
        self.shared
            .instance
            .start(self.shared.clock.now(), Clock::unix_now());
        self.shared.instance.subscribed();
        let shared = Arc::clone(&self.shared);
        // Made now and moved into the thread: if it cannot start, the
        // closure is dropped, and the guard with it.
        let guard = SubscriptionGuard::new(&self.shared);
        let handle = std::thread::Builder::new()
            .name(format!("aci-cache-{}", self.instance_id()))
            .spawn(move || worker::run(&shared, subscription, guard))
            .map_err(Error::Spawn)?;
        *worker = Some(handle);
        Ok(())
    }

    /// Stops: flushes the batch buffer, joins the worker, closes the
    /// subscription and every connection. Until [`AdaptiveCache::start`]
    /// restarts it, every call that would reach Redis (`get`, `set`,
    /// `delete`, `flush`, `force_strategy`) fails with [`Error::Stopped`]
    /// without connecting; `stats`, `strategy` and the like still answer.
    pub fn stop(&self) {
        let handle = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        self.shared.transport.close();
    }

    /// [`Error::Stopped`] after `stop`, until `start`.
    fn ensure_running(&self) -> Result<()> {
        if self.shared.stop.load(Ordering::SeqCst) {
            Err(Error::Stopped)
        } else {
            Ok(())
        }
    }

    /// The value of `key`, from the near cache or from Redis.
    pub fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.ensure_running()?;
        let instance = &self.shared.instance;
        let deadline = Instant::now() + instance.settings().timeout;
        let result = loop {
            match instance.lookup(key, self.shared.clock.now()) {
                Lookup::Hit(value) => return Ok(Some(value)),
                Lookup::Fill(fill) => {
                    let read = self.shared.transport.get_with_ttl(fill.stored_key());
                    break instance.finish_fill_with_ttl(fill, read, self.shared.clock.now());
                }
                Lookup::Wait(wait) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match wait.wait_blocking(left) {
                        Some(result) => break result,
                        // The leader gave up: look again (and perhaps lead).
                        None if !left.is_zero() => continue,
                        None => break Err(Error::ReadWaitTimeout),
                    }
                }
            }
        };
        instance.settle_read(key, result)
    }

    /// The value of `key` as UTF-8 text.
    pub fn get_string(&self, key: &str) -> Result<Option<String>> {
        into_text(key, self.get(key)?)
    }

    /// Writes `value` with the default TTL.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        let ttl = self.shared.instance.settings().core.default_ttl();
        self.set_with_ttl(key, value, Duration::from_nanos(ttl.as_nanos()))
    }

    /// Writes `value` with a TTL of its own, between 1 ms and 100 years
    /// (otherwise [`Error::InvalidTtl`](crate::Error::InvalidTtl), nothing written).
    /// A value stored whose invalidation could not be published returns
    /// [`Error::Unannounced`](crate::Error::Unannounced) with
    /// [`Done::Stored`](crate::Done::Stored): it is in Redis and in this
    /// instance's near cache; other instances may serve the old value until
    /// `local_ttl`.
    pub fn set_with_ttl(&self, key: &str, value: impl AsRef<[u8]>, ttl: Duration) -> Result<()> {
        self.ensure_running()?;
        crate::error::check_ttl(ttl)?;
        let instance = &self.shared.instance;
        let value = value.as_ref();
        let stored = instance.settings().stored_key(key);
        let write = instance.prepare_write(key, Some(ttl), self.shared.clock.now())?;
        let sent = self
            .shared
            .transport
            .set(&stored, value, ttl, &write.outbound.as_outgoing());
        instance.finish_write(write, key, value, sent, self.shared.clock.now())
    }

    /// Deletes `key` and tells the fleet at once, whatever the strategy.
    /// Whether it existed. A key deleted whose invalidation could not be
    /// published returns [`Error::Unannounced`](crate::Error::Unannounced)
    /// with [`Done::Deleted`](crate::Done::Deleted).
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.ensure_running()?;
        let instance = &self.shared.instance;
        let stored = instance.settings().stored_key(key);
        let outbound = instance.prepare_delete(key, self.shared.clock.now())?;
        let sent = self
            .shared
            .transport
            .delete(&stored, &outbound.as_outgoing());
        instance.finish_delete(key, &outbound, sent)
    }

    /// Deletes this cache's keys — every key of its namespace, and nothing
    /// else — and tells the fleet, so every instance drops them from its
    /// near cache. How many keys were deleted.
    ///
    /// Redis is not blocked: keys are found with `SCAN … MATCH
    /// {prefix}:{namespace}:*` in batches of 500, each batch removed with
    /// `UNLINK` in the same round trip as the invalidation naming it. The
    /// election's lease keys are kept. Keys written while the flush runs may
    /// survive it. Without a namespace it would have to delete the whole
    /// database, other applications' keys included: it refuses with
    /// [`Error::FlushWithoutNamespace`](crate::Error::FlushWithoutNamespace)
    /// (see `flush_database`).
    pub fn flush(&self) -> Result<u64> {
        self.ensure_running()?;
        let instance = &self.shared.instance;
        let flush = Flush::of(instance.settings())?;
        let (mut cursor, mut removed) = (0, 0);
        loop {
            let (next, keys) =
                self.shared
                    .transport
                    .scan_prefix(cursor, flush.prefix(), Flush::BATCH)?;
            let keys = flush.ours(keys);
            if !keys.is_empty() {
                let users = flush.user_keys(&keys);
                let outbound = instance.prepare_delete_many(&users, self.shared.clock.now())?;
                let sent = self.shared.transport.unlink(&keys, &outbound.as_outgoing());
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
    /// tests and development. Other instances are not told (no message says
    /// "everything"): their near caches keep what they hold until it expires
    /// (`local_ttl`).
    pub fn flush_database(&self) -> Result<()> {
        self.ensure_running()?;
        self.shared.transport.flush_db()?;
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
    pub fn force_strategy(&self, strategy: Option<Strategy>) -> Result<()> {
        self.ensure_running()?;
        let outbound = self
            .shared
            .instance
            .force_strategy(strategy, self.shared.clock.now());
        if !outbound.has_messages() {
            return Ok(());
        }
        let sent = self.shared.transport.publish(&outbound.as_outgoing());
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

impl<T: Transport> Drop for AdaptiveCache<T> {
    fn drop(&mut self) {
        self.stop();
    }
}
