//! The async cache, on tokio: the caller's task does the reads and writes,
//! one background task keeps the subscription and runs the engine's timers.

mod waiting;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aci_core::{Mode, Strategy};
use aci_transports::AsyncTransport;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::error::{into_text, Result};
use crate::flush::Flush;
use crate::instance::{Instance, Lookup};
use crate::settings::{Async, Builder, Settings};
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
///     .connect("redis://127.0.0.1:6379")
///     .await?;
/// cache.set("user:42", "Alice").await?;
/// assert_eq!(cache.get_string("user:42").await?.as_deref(), Some("Alice"));
/// cache.stop().await;
/// # Ok(())
/// # }
/// ```
///
/// Clones are cheap and share one cache: hand them to tasks freely. The
/// background task is told to stop when the last clone is dropped, or for
/// every clone at once when one calls [`AsyncAdaptiveCache::stop`].
pub struct AsyncAdaptiveCache<T: AsyncTransport> {
    handle: Arc<Handle<T>>,
}

/// What the clones of one cache share.
struct Handle<T: AsyncTransport> {
    shared: Arc<Shared<T>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl<T: AsyncTransport> Clone for AsyncAdaptiveCache<T> {
    fn clone(&self) -> Self {
        AsyncAdaptiveCache {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl<T: AsyncTransport> std::fmt::Debug for AsyncAdaptiveCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let instance = &self.handle.shared.instance;
        f.debug_struct("AsyncAdaptiveCache")
            .field("instance_id", &instance.settings().instance_id())
            .field("strategy", &instance.strategy())
            .field("subscribed", &instance.is_subscribed())
            .field(
                "running",
                &!self.handle.shared.stopped.load(Ordering::SeqCst),
            )
            .finish_non_exhaustive()
    }
}

pub(crate) struct Shared<T> {
    pub(crate) instance: Instance,
    pub(crate) clock: Clock,
    pub(crate) transport: T,
    pub(crate) stop: watch::Sender<bool>,
    /// What `stop` holds, readable without its lock: every `get` checks it.
    stopped: AtomicBool,
}

impl<T> Shared<T> {
    /// Tells the task (and every later call) whether to stop.
    pub(crate) fn set_stopped(&self, stopped: bool) {
        self.stopped.store(stopped, Ordering::SeqCst);
        self.stop.send_replace(stopped);
    }
}

#[cfg(feature = "redis")]
impl AsyncAdaptiveCache<aci_transports::RedisAsyncTransport> {
    /// A builder with the original's defaults that makes an async cache:
    /// `connect(url)`, `client(…)` or `transport(…)`, awaited.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// let cache = AsyncAdaptiveCache::builder()
    ///     .namespace("docs")
    ///     .transport(MemoryTransport::new())
    ///     .await?;
    /// assert!(cache.is_subscribed());
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> Builder<Async> {
        Builder::new().into_async()
    }
}

impl Builder<Async> {
    /// Builds and starts an async cache on the Redis at `url`: subscribed,
    /// or a typed error within the timeout.
    ///
    /// ```no_run
    /// # async fn demo() -> aci_cache::Result<()> {
    /// let cache = aci_cache::AsyncAdaptiveCache::builder()
    ///     .connect("redis://127.0.0.1:6379")
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis")]
    pub async fn connect(
        self,
        url: &str,
    ) -> Result<AsyncAdaptiveCache<aci_transports::RedisAsyncTransport>> {
        let settings = self.settings()?;
        let transport =
            aci_transports::RedisAsyncTransport::open(url)?.with_timeout(settings.timeout);
        AsyncAdaptiveCache::start_with(transport, settings).await
    }

    /// Builds and starts an async cache on the Redis Cluster that `seeds`
    /// belong to (features `cluster` and `tokio`), as
    /// [`Builder::connect_cluster`](crate::Builder::connect_cluster) does
    /// for the blocking cache: cluster names unless another naming was
    /// chosen, subscribed on every node that owns a channel, or a typed
    /// error within the timeout.
    ///
    /// ```no_run
    /// # async fn demo() -> aci_cache::Result<()> {
    /// let cache = aci_cache::AsyncAdaptiveCache::builder()
    ///     .namespace("users")
    ///     .connect_cluster(["redis://127.0.0.1:7001", "redis://127.0.0.1:7002"])
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "cluster")]
    pub async fn connect_cluster<I, S>(
        self,
        seeds: I,
    ) -> Result<AsyncAdaptiveCache<aci_transports::RedisClusterAsyncTransport>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let settings = self.cluster_settings()?;
        let mode = if settings.core().naming().is_sharded() {
            aci_transports::PubSubMode::Sharded
        } else {
            aci_transports::PubSubMode::Classic
        };
        let transport = aci_transports::RedisClusterAsyncTransport::open(seeds)?
            .with_timeout(settings.timeout)
            .with_pubsub(mode);
        AsyncAdaptiveCache::start_with(transport, settings).await
    }

    /// Builds and starts an async cache on a `redis::Client` you already have.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let cache = aci_cache::AsyncAdaptiveCache::builder().client(client).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis")]
    pub async fn client(
        self,
        client: redis::Client,
    ) -> Result<AsyncAdaptiveCache<aci_transports::RedisAsyncTransport>> {
        let settings = self.settings()?;
        let transport =
            aci_transports::RedisAsyncTransport::from_client(client).with_timeout(settings.timeout);
        AsyncAdaptiveCache::start_with(transport, settings).await
    }

    /// Builds and starts an async cache on any [`AsyncTransport`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// use aci_cache::transports::MemoryTransport;
    /// let cache = aci_cache::Builder::new()
    ///     .into_async()
    ///     .transport(MemoryTransport::new())
    ///     .await?;
    /// cache.set("k", "v").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn transport<T: AsyncTransport>(self, transport: T) -> Result<AsyncAdaptiveCache<T>> {
        AsyncAdaptiveCache::start_with(transport, self.settings()?).await
    }
}

impl<T: AsyncTransport> AsyncAdaptiveCache<T> {
    /// A started cache on `transport`: subscribed, or an error within the
    /// timeout (see [`AsyncAdaptiveCache::start`]).
    pub(crate) async fn start_with(transport: T, settings: Settings) -> Result<Self> {
        let (stop, _) = watch::channel(false);
        let cache = AsyncAdaptiveCache {
            handle: Arc::new(Handle {
                shared: Arc::new(Shared {
                    instance: Instance::new(settings)?,
                    clock: Clock::new(),
                    transport,
                    stop,
                    stopped: AtomicBool::new(false),
                }),
                worker: Mutex::new(None),
            }),
        };
        cache.start().await?;
        Ok(cache)
    }

    /// Starts the cache if it is not running: subscribes to the fleet's
    /// channels first — within the timeout, or fails typed (Redis down or
    /// frozen: `is_unavailable`; a wrong password, an ACL user without
    /// channel rights: `is_denied`) — then spawns the background task. A
    /// cache whose `start` failed stays stopped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.stop().await;
    /// assert!(cache.get("k").await.is_err());
    /// cache.start().await?;
    /// assert_eq!(cache.get("k").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start(&self) -> Result<()> {
        if self
            .handle
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            return Ok(());
        }
        let channels = self.handle.shared.instance.settings().channels();
        let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
        let subscription = self.handle.shared.transport.subscribe(&channels).await?;
        let mut worker = self
            .handle
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if worker.is_some() {
            return Ok(()); // started meanwhile by another caller
        }
        self.handle.shared.set_stopped(false);
        self.handle
            .shared
            .instance
            .start(self.handle.shared.clock.now(), Clock::unix_now());
        self.handle.shared.instance.subscribed();
        let guard = SubscriptionGuard::new(&self.handle.shared);
        *worker = Some(tokio::spawn(worker::run(
            Arc::clone(&self.handle.shared),
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
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// let clone = cache.clone();
    /// cache.stop().await;
    /// assert!(matches!(clone.set("k", "v").await, Err(aci_cache::Error::Stopped)));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stop(&self) {
        let handle = self
            .handle
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.handle.shared.set_stopped(true);
        if let Some(handle) = handle {
            let _ = handle.await;
        }
        self.handle.shared.transport.close();
    }

    /// [`Error::Stopped`](crate::Error::Stopped) after `stop`, until `start`.
    fn ensure_running(&self) -> Result<()> {
        if self.handle.shared.stopped.load(Ordering::SeqCst) {
            Err(crate::Error::Stopped)
        } else {
            Ok(())
        }
    }

    /// The value of `key`, from the near cache or from Redis.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.set("k", "v").await?;
    /// assert_eq!(cache.get("k").await?.as_deref(), Some(&b"v"[..]));
    /// assert_eq!(cache.get("absent").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.ensure_running()?;
        let shared = &self.handle.shared;
        match shared.instance.hit(key, shared.clock.now()) {
            Some(value) => Ok(Some(value)),
            // Boxed: the read's state stays out of every `get` future.
            None => Box::pin(self.read(key)).await,
        }
    }

    /// A `get` the near cache could not answer at first sight.
    async fn read(&self, key: &str) -> Result<Option<Bytes>> {
        let instance = &self.handle.shared.instance;
        // Read the clock only when there is something to wait for: a hit
        // must not pay for it.
        let mut deadline = None;
        let result = loop {
            match instance.lookup(key, self.handle.shared.clock.now()) {
                Lookup::Hit(value) => return Ok(Some(value)),
                Lookup::Fill(fill) => {
                    // Cancelled here, the dropped `fill` hands the read to a follower.
                    let read = self
                        .handle
                        .shared
                        .transport
                        .get_with_ttl(fill.stored_key())
                        .await;
                    break instance.finish_fill_with_ttl(
                        fill,
                        read,
                        self.handle.shared.clock.now(),
                    );
                }
                Lookup::Wait(wait) => {
                    let deadline = *deadline.get_or_insert_with(|| {
                        tokio::time::Instant::now() + instance.settings().timeout
                    });
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match waiting::wait(&wait, left).await {
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

    /// The value of `key`, or, when Redis has none, the value `loader`'s
    /// future makes, stored in Redis (default TTL) and in the near cache.
    /// The same rules as [`AdaptiveCache::get_or_load`](crate::AdaptiveCache::get_or_load):
    /// one load per key on this instance at a time (a caller cancelled while
    /// loading hands the load to the next waiter), `SET … NX`, so a value
    /// written meanwhile wins and is returned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// let cache = AsyncAdaptiveCache::builder()
    ///     .transport(MemoryTransport::new())
    ///     .await?;
    /// let name = cache
    ///     .get_or_load("user:42:name", || async { "Alice".to_owned() })
    ///     .await?;
    /// assert_eq!(&name[..], b"Alice");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_load<V, F, Fut>(&self, key: &str, loader: F) -> Result<Bytes>
    where
        V: AsRef<[u8]>,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = V>,
    {
        self.get_or_try_load(key, || async {
            Ok::<V, std::convert::Infallible>(loader().await)
        })
        .await
    }

    /// [`AsyncAdaptiveCache::get_or_load`] with a loader that can fail: its
    /// error comes back as [`Error::Load`](crate::Error::Load), with nothing
    /// stored or cached.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// use aci_cache::{AsyncAdaptiveCache, Error, transports::MemoryTransport};
    /// let cache = AsyncAdaptiveCache::builder()
    ///     .transport(MemoryTransport::new())
    ///     .await?;
    /// let failed = cache
    ///     .get_or_try_load("user:7", || async {
    ///         Err::<String, _>(std::io::Error::other("database down"))
    ///     })
    ///     .await;
    /// assert!(matches!(failed, Err(Error::Load { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_try_load<V, E, F, Fut>(&self, key: &str, loader: F) -> Result<Bytes>
    where
        V: AsRef<[u8]>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<V, E>>,
    {
        self.ensure_running()?;
        let shared = &self.handle.shared;
        let instance = &shared.instance;
        let timeout = instance.settings().timeout;
        let mut loader = Some(loader);
        let mut loaded: Option<Bytes> = None;
        loop {
            match instance.lookup(key, shared.clock.now()) {
                Lookup::Hit(value) => return Ok(value),
                Lookup::Wait(wait) => match waiting::wait(&wait, timeout).await {
                    Some(Ok(Some(value))) => return Ok(value),
                    // Still loading: a load may take longer than a read.
                    Some(Err(crate::Error::ReadWaitTimeout)) => continue,
                    Some(Err(e)) => return Err(e),
                    Some(Ok(None)) | None => continue,
                },
                Lookup::Fill(fill) => {
                    let read = shared.transport.get_with_ttl(fill.stored_key()).await;
                    if !matches!(read, Ok(None)) {
                        let now = shared.clock.now();
                        match instance.finish_fill_with_ttl(fill, read, now)? {
                            Some(value) => return Ok(value),
                            None => continue,
                        }
                    }
                    let value = match (loader.take(), loaded.take()) {
                        (_, Some(value)) => value,
                        (Some(loader), None) => match loader().await {
                            Ok(v) => Bytes::copy_from_slice(v.as_ref()),
                            Err(e) => {
                                let _ = instance.finish_fill(fill, Ok(None), shared.clock.now());
                                return Err(crate::Error::Load {
                                    key: key.to_owned(),
                                    source: Arc::from(e.into()),
                                });
                            }
                        },
                        // The loader is only taken to make `loaded` (or to return).
                        (None, None) => continue,
                    };
                    if self.store_loaded(key, &value).await? {
                        let _ =
                            instance.finish_fill(fill, Ok(Some(value.clone())), shared.clock.now());
                        return Ok(value);
                    }
                    let _ = instance.finish_fill(fill, Ok(None), shared.clock.now());
                    loaded = Some(value);
                    if let Some(current) = self.get(key).await? {
                        return Ok(current);
                    }
                }
            }
        }
    }

    /// Stores a loaded value where Redis has none; whether it did.
    async fn store_loaded(&self, key: &str, value: &[u8]) -> Result<bool> {
        let shared = &self.handle.shared;
        let instance = &shared.instance;
        let ttl: Duration = instance.settings().core.default_ttl().into();
        let stored = instance.settings().stored_key(key);
        let write = instance.prepare_write(key, Some(ttl), shared.clock.now())?;
        let sent = shared
            .transport
            .set_if_absent(&stored, value, ttl, &write.outbound.as_outgoing())
            .await;
        instance.finish_write_if_absent(write, key, value, sent, shared.clock.now())
    }

    /// The value of `key` decoded from JSON (feature `serde`); a value that
    /// does not decode is [`Error::Decode`](crate::Error::Decode) naming the key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// let cache = aci_cache::AsyncAdaptiveCache::builder()
    ///     .transport(aci_cache::transports::MemoryTransport::new())
    ///     .await?;
    /// cache.set_json("scores", &[3, 1, 4]).await?;
    /// let scores: Option<Vec<u32>> = cache.get_json("scores").await?;
    /// assert_eq!(scores, Some(vec![3, 1, 4]));
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "serde")]
    pub async fn get_json<V: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<V>> {
        self.get_decoded(key, &crate::Json).await
    }

    /// Writes `value` as JSON with the default TTL (feature `serde`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.set_json("point", &(1, 2)).await?;
    /// assert_eq!(cache.get_json::<(i32, i32)>("point").await?, Some((1, 2)));
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "serde")]
    pub async fn set_json<V: serde::Serialize + ?Sized>(&self, key: &str, value: &V) -> Result<()> {
        self.set_encoded(key, value, &crate::Json).await
    }

    /// The value of `key` decoded with `codec` (feature `serde`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.set_encoded("n", &42u32, &aci_cache::Json).await?;
    /// let n: Option<u32> = cache.get_decoded("n", &aci_cache::Json).await?;
    /// assert_eq!(n, Some(42));
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "serde")]
    pub async fn get_decoded<V: serde::de::DeserializeOwned, C: crate::Codec>(
        &self,
        key: &str,
        codec: &C,
    ) -> Result<Option<V>> {
        crate::codec::decode(codec, key, self.get(key).await?)
    }

    /// Writes `value` encoded with `codec`, with the default TTL (feature
    /// `serde`); nothing is written when it does not encode.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.set_encoded("tags", &["a", "b"], &aci_cache::Json).await?;
    /// assert_eq!(cache.get_string("tags").await?.as_deref(), Some(r#"["a","b"]"#));
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "serde")]
    pub async fn set_encoded<V: serde::Serialize + ?Sized, C: crate::Codec>(
        &self,
        key: &str,
        value: &V,
        codec: &C,
    ) -> Result<()> {
        let bytes = crate::codec::encode(codec, key, value)?;
        self.set(key, bytes).await
    }

    /// The values of `keys`, in order: near-cache hits at once, every miss
    /// from Redis in one round trip (`MGET` + `PTTL`), each fill protected
    /// as a single read's is (a value invalidated while the read runs is
    /// returned but not cached); keys another caller is reading wait for
    /// that read.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.set_many(&[("a", "1"), ("b", "2")]).await?;
    /// let values = cache.get_many(&["a", "missing", "b"]).await?;
    /// assert_eq!(values[0].as_deref(), Some(&b"1"[..]));
    /// assert_eq!(values[1], None);
    /// assert_eq!(values[2].as_deref(), Some(&b"2"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        self.ensure_running()?;
        let shared = &self.handle.shared;
        let instance = &shared.instance;
        let mut values = vec![None; keys.len()];
        let (mut fills, mut waits) = (Vec::new(), Vec::new());
        for (i, key) in keys.iter().enumerate() {
            match instance.lookup(key, shared.clock.now()) {
                Lookup::Hit(value) => values[i] = Some(value),
                Lookup::Fill(fill) => fills.push((i, fill)),
                Lookup::Wait(wait) => waits.push((i, wait)),
            }
        }
        if !fills.is_empty() {
            let stored: Vec<&str> = fills.iter().map(|(_, fill)| fill.stored_key()).collect();
            match shared.transport.get_many_with_ttl(&stored).await {
                Ok(read) => {
                    for ((i, fill), value) in fills.into_iter().zip(read) {
                        let now = shared.clock.now();
                        let result = instance.finish_fill_with_ttl(fill, Ok(value), now);
                        values[i] = instance.settle_read(keys[i], result)?;
                    }
                }
                // The fills are dropped unfinished: callers waiting on them
                // read for themselves.
                Err(e) => return instance.settle_read(keys[0], Err(e.into())).map(|_| values),
            }
        }
        for (i, wait) in waits {
            values[i] = match waiting::wait(&wait, instance.settings().timeout).await {
                Some(result) => instance.settle_read(keys[i], result)?,
                None => self.get(keys[i]).await?,
            };
        }
        Ok(values)
    }

    /// Writes many values with the default TTL in one round trip, with one
    /// invalidation naming them all in eager (batched: they join the batch;
    /// ttl: nothing is sent). Stored but not announced: [`Error::Unannounced`](crate::Error::Unannounced)
    /// with [`Done::StoredMany`](crate::Done::StoredMany).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.set_many(&[("user:1", "Ann"), ("user:2", "Bob")]).await?;
    /// assert_eq!(cache.get_string("user:2").await?.as_deref(), Some("Bob"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_many<V: AsRef<[u8]>>(&self, entries: &[(&str, V)]) -> Result<()> {
        self.ensure_running()?;
        let shared = &self.handle.shared;
        let instance = &shared.instance;
        let ttl: Duration = instance.settings().core.default_ttl().into();
        let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
        let stored: Vec<String> = keys
            .iter()
            .map(|k| instance.settings().stored_key(k))
            .collect();
        let values: Vec<(&str, &[u8])> = entries.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        let writes = instance.prepare_write_many(&keys, Some(ttl), shared.clock.now())?;
        let sent_entries: Vec<(&str, &[u8])> = stored
            .iter()
            .zip(&values)
            .map(|(s, (_, v))| (s.as_str(), *v))
            .collect();
        let sent = shared
            .transport
            .set_many(&sent_entries, ttl, &writes.outbound.as_outgoing())
            .await;
        instance.finish_write_many(writes, &values, sent, shared.clock.now())
    }

    /// Deletes many keys in one round trip (`UNLINK`) and tells the fleet
    /// at once, whatever the strategy. How many existed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.set_many(&[("a", "1"), ("b", "2")]).await?;
    /// assert_eq!(cache.delete_many(&["a", "b", "never-set"]).await?, 2);
    /// assert_eq!(cache.get("a").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        self.ensure_running()?;
        let shared = &self.handle.shared;
        let instance = &shared.instance;
        let stored: Vec<String> = keys
            .iter()
            .map(|k| instance.settings().stored_key(k))
            .collect();
        let outbound = instance.prepare_delete_many(keys, shared.clock.now())?;
        let sent = shared
            .transport
            .unlink(&stored, &outbound.as_outgoing())
            .await;
        instance.finish_delete_many(keys, &outbound, sent, false)
    }

    /// The value of `key` as UTF-8 text.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.set("greeting", "hello").await?;
    /// assert_eq!(cache.get_string("greeting").await?.as_deref(), Some("hello"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_string(&self, key: &str) -> Result<Option<String>> {
        into_text(key, self.get(key).await?)
    }

    /// Writes `value` with the default TTL.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.set("user:42", "Alice").await?;
    /// assert_eq!(cache.get_string("user:42").await?.as_deref(), Some("Alice"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        let ttl = self.handle.shared.instance.settings().core.default_ttl();
        self.set_with_ttl(key, value, ttl.into()).await
    }

    /// Writes `value` with a TTL of its own, between 1 ms and 100 years
    /// (otherwise [`Error::InvalidTtl`](crate::Error::InvalidTtl), nothing written).
    /// A value stored whose invalidation could not be published returns
    /// [`Error::Unannounced`](crate::Error::Unannounced) with
    /// [`Done::Stored`](crate::Done::Stored): it is in Redis and in this
    /// instance's near cache; other instances may serve the old value until
    /// `local_ttl`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// use std::time::Duration;
    /// cache.set_with_ttl("otp", "123456", Duration::from_secs(30)).await?;
    /// assert!(cache.set_with_ttl("otp", "x", Duration::ZERO).await.is_err(), "nothing below 1 ms");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_with_ttl(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<()> {
        self.ensure_running()?;
        crate::error::check_ttl(ttl)?;
        let instance = &self.handle.shared.instance;
        let value = value.as_ref();
        let stored = instance.settings().stored_key(key);
        let write = instance.prepare_write(key, Some(ttl), self.handle.shared.clock.now())?;
        let sent = self
            .handle
            .shared
            .transport
            .set(&stored, value, ttl, &write.outbound.as_outgoing())
            .await;
        instance.finish_write(write, key, value, sent, self.handle.shared.clock.now())
    }

    /// Deletes `key` and tells the fleet at once. Whether it existed. A key
    /// deleted whose invalidation could not be published returns
    /// [`Error::Unannounced`](crate::Error::Unannounced) with
    /// [`Done::Deleted`](crate::Done::Deleted).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.set("k", "v").await?;
    /// assert!(cache.delete("k").await?);
    /// assert!(!cache.delete("k").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.ensure_running()?;
        let instance = &self.handle.shared.instance;
        let stored = instance.settings().stored_key(key);
        let outbound = instance.prepare_delete(key, self.handle.shared.clock.now())?;
        let sent = self
            .handle
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
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// # let cache = AsyncAdaptiveCache::builder().namespace("docs").transport(MemoryTransport::new()).await?;
    /// cache.set("a", "1").await?;
    /// cache.set("b", "2").await?;
    /// assert_eq!(cache.flush().await?, 2);
    /// assert_eq!(cache.get("a").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn flush(&self) -> Result<u64> {
        self.ensure_running()?;
        let instance = &self.handle.shared.instance;
        let flush = Flush::of(instance.settings())?;
        let (mut cursor, mut removed) = (0, 0);
        loop {
            let (next, keys) = self
                .handle
                .shared
                .transport
                .scan_prefix(cursor, flush.prefix(), Flush::BATCH)
                .await?;
            let keys = flush.ours(keys);
            if !keys.is_empty() {
                let users = flush.user_keys(&keys);
                let outbound =
                    instance.prepare_delete_many(&users, self.handle.shared.clock.now())?;
                let sent = self
                    .handle
                    .shared
                    .transport
                    .unlink(&keys, &outbound.as_outgoing())
                    .await;
                removed += instance.finish_delete_many(&users, &outbound, sent, true)?;
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
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.set("k", "v").await?;
    /// cache.flush_database().await?;
    /// assert_eq!(cache.get("k").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn flush_database(&self) -> Result<()> {
        self.ensure_running()?;
        self.handle.shared.transport.flush_db().await?;
        self.handle.shared.instance.commit_flush();
        Ok(())
    }

    /// The strategy in force.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// assert_eq!(cache.strategy(), aci_cache::Strategy::Ttl);
    /// # Ok(())
    /// # }
    /// ```
    pub fn strategy(&self) -> Strategy {
        self.handle.shared.instance.strategy()
    }

    /// The strategy in force with, under batched, the interval batches are
    /// flushed on (see [`AdaptiveCache::mode`](crate::AdaptiveCache::mode)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, Mode, transports::MemoryTransport};
    /// let cache = AsyncAdaptiveCache::builder()
    ///     .message_budget(50.0)
    ///     .transport(MemoryTransport::new())
    ///     .await?;
    /// // A budget starts batched at `batch_interval` until the fleet is heard.
    /// assert_eq!(cache.mode(), Mode::Batched(std::time::Duration::from_millis(2500).into()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn mode(&self) -> Mode {
        self.handle.shared.instance.mode()
    }

    /// Pins the strategy (`Some`), announcing it if this is the controller, or
    /// lets the controller decide again (`None`). The pin holds even when
    /// the announcement fails: that returns
    /// [`Error::Unannounced`](crate::Error::Unannounced) with
    /// [`Done::Pinned`](crate::Done::Pinned), and the next rebroadcast
    /// carries the decision.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// use aci_cache::Strategy;
    /// cache.force_strategy(Some(Strategy::Eager)).await?;
    /// assert_eq!(cache.strategy(), Strategy::Eager);
    /// cache.force_strategy(None).await?; // the controller decides again
    /// # Ok(())
    /// # }
    /// ```
    pub async fn force_strategy(&self, strategy: Option<Strategy>) -> Result<()> {
        self.ensure_running()?;
        let outbound = self
            .handle
            .shared
            .instance
            .force_strategy(strategy, self.handle.shared.clock.now());
        if !outbound.has_messages() {
            return Ok(());
        }
        let sent = self
            .handle
            .shared
            .transport
            .publish(&outbound.as_outgoing())
            .await;
        self.handle
            .shared
            .instance
            .finish_force(strategy, &outbound, sent)
    }

    /// A snapshot of the counters.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.set("k", "v").await?;
    /// cache.get("k").await?;
    /// let stats = cache.stats();
    /// assert_eq!((stats.total_writes, stats.cache_hits), (1, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.handle.shared.instance.stats()
    }

    /// Calls `callback(from, to)` on every strategy switch.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// use std::sync::{Arc, Mutex};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// cache.on_switch(move |from, to| log.lock().unwrap().push((from, to)));
    /// cache.force_strategy(Some(aci_cache::Strategy::Batched)).await?;
    /// assert_eq!(seen.lock().unwrap().len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_switch(&self, callback: impl Fn(Strategy, Strategy) + Send + Sync + 'static) {
        self.handle.shared.instance.on_switch(Arc::new(callback));
    }

    /// This instance's id, as sent in `source`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// # let cache = AsyncAdaptiveCache::builder().instance_id("web-1").transport(MemoryTransport::new()).await?;
    /// assert_eq!(cache.instance_id(), "web-1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn instance_id(&self) -> &str {
        self.handle.shared.instance.settings().instance_id()
    }

    /// Whether the subscription is up (and the near cache in use).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// assert!(cache.is_subscribed());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_subscribed(&self) -> bool {
        self.handle.shared.instance.is_subscribed()
    }

    /// The transport.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// cache.get("k").await?;
    /// assert_eq!(cache.transport().gets(), 1, "one GET reached the in-memory server");
    /// # Ok(())
    /// # }
    /// ```
    pub fn transport(&self) -> &T {
        &self.handle.shared.transport
    }

    /// The instance logic under this cache, for diagnostics. Internals: see
    /// [`instance`](crate::instance).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> aci_cache::Result<()> {
    /// # use aci_cache::{AsyncAdaptiveCache, transports::MemoryTransport};
    /// # let cache = AsyncAdaptiveCache::builder().transport(MemoryTransport::new()).await?;
    /// assert_eq!(cache.instance().reads_in_flight(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn instance(&self) -> &Instance {
        &self.handle.shared.instance
    }
}

impl<T: AsyncTransport> Drop for Handle<T> {
    fn drop(&mut self) {
        // The task sees this, flushes, publishes and closes on its own.
        self.shared.set_stopped(true);
    }
}
