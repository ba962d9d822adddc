//! The blocking cache: the caller's thread does the reads and writes, one
//! background thread keeps the subscription and runs the engine's timers.

mod direct;
mod waiting;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aci_core::{Mode, Strategy};
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
///
/// Clones are cheap and share one cache (one near cache, one subscription,
/// one worker): hand them to threads freely. The cache stops when the last
/// clone is dropped, or for every clone at once when one calls
/// [`AdaptiveCache::stop`].
pub struct AdaptiveCache<T: Transport> {
    handle: Arc<Handle<T>>,
}

/// What the clones of one cache share.
struct Handle<T: Transport> {
    shared: Arc<Shared<T>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl<T: Transport> Clone for AdaptiveCache<T> {
    fn clone(&self) -> Self {
        AdaptiveCache {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl<T: Transport> std::fmt::Debug for AdaptiveCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let instance = &self.handle.shared.instance;
        f.debug_struct("AdaptiveCache")
            .field("instance_id", &instance.settings().instance_id())
            .field("strategy", &instance.strategy())
            .field("subscribed", &instance.is_subscribed())
            .field("running", &!self.handle.shared.stop.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

pub(crate) struct Shared<T> {
    pub(crate) instance: Instance,
    pub(crate) clock: Clock,
    pub(crate) transport: T,
    pub(crate) stop: AtomicBool,
    /// What a message handled on the subscription's reader thread asked to
    /// send: the worker sends it.
    pub(crate) deferred: Mutex<Vec<crate::instance::Outbound>>,
}

#[cfg(feature = "redis")]
impl AdaptiveCache<aci_transports::RedisTransport> {
    /// A builder with the original's defaults: `connect(url)`, `client(…)`
    /// or `transport(…)` builds the cache.
    ///
    /// ```
    /// use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// let cache = AdaptiveCache::builder()
    ///     .namespace("docs")
    ///     .transport(MemoryTransport::new())?;
    /// assert!(cache.is_subscribed());
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// Builds and starts a cache on the Redis at `url`
    /// (`redis://[user:password@]host:port[/db]`, `rediss://` with feature
    /// `tls`, `unix:///path`): subscribed, or a typed error within the timeout.
    ///
    /// ```no_run
    /// let cache = aci_cache::AdaptiveCache::builder().connect("redis://127.0.0.1:6379")?;
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    #[cfg(feature = "redis")]
    pub fn connect(self, url: &str) -> Result<AdaptiveCache<aci_transports::RedisTransport>> {
        let settings = self.settings()?;
        let transport = aci_transports::RedisTransport::open(url)?.with_timeout(settings.timeout);
        AdaptiveCache::start_with(transport, settings)
    }

    /// Builds and starts a cache on the Redis Cluster that `seeds` belong
    /// to (any reachable nodes; the rest is discovered): subscribed on every
    /// node that owns one of the fleet's channels, or a typed error within
    /// the timeout. Unless [`Builder::naming`] says otherwise, names are
    /// [`Naming::Sharded`](crate::Naming::Sharded) with one bucket: the
    /// lease, decisions and invalidations in one slot (`aci:{ns}:…`) over
    /// sharded Pub/Sub; data keys stay spread over the cluster.
    /// [`Naming::Classic`](crate::Naming::Classic) uses plain Pub/Sub and
    /// the original's channels.
    ///
    /// ```no_run
    /// let cache = aci_cache::AdaptiveCache::builder()
    ///     .namespace("users")
    ///     .connect_cluster(["redis://127.0.0.1:7001", "redis://127.0.0.1:7002"])?;
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    #[cfg(feature = "cluster")]
    pub fn connect_cluster<I, S>(
        self,
        seeds: I,
    ) -> Result<AdaptiveCache<aci_transports::RedisClusterTransport>>
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
        let transport = aci_transports::RedisClusterTransport::open(seeds)?
            .with_timeout(settings.timeout)
            .with_pubsub(mode);
        AdaptiveCache::start_with(transport, settings)
    }

    /// Builds and starts a cache on a `redis::Client` you already have (one
    /// made with `redis::Client::build_with_tls` to trust a private CA, say).
    ///
    /// ```no_run
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let cache = aci_cache::AdaptiveCache::builder().client(client)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// ```
    /// use aci_cache::transports::MemoryTransport;
    /// let cache = aci_cache::Builder::new().transport(MemoryTransport::new())?;
    /// cache.set("k", "v")?;
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn transport<T: Transport>(self, transport: T) -> Result<AdaptiveCache<T>> {
        AdaptiveCache::start_with(transport, self.settings()?)
    }
}

impl<T: Transport> AdaptiveCache<T> {
    /// A started cache on `transport`: subscribed (so messages published
    /// afterwards are seen), or an error within the timeout (see
    /// [`AdaptiveCache::start`]).
    pub(crate) fn start_with(transport: T, settings: Settings) -> Result<Self> {
        let cache = AdaptiveCache {
            handle: Arc::new(Handle {
                shared: Arc::new(Shared {
                    instance: Instance::new(settings)?,
                    clock: Clock::new(),
                    transport,
                    stop: AtomicBool::new(false),
                    deferred: Mutex::new(Vec::new()),
                }),
                worker: Mutex::new(None),
            }),
        };
        cache.start()?;
        Ok(cache)
    }

    /// Starts the cache if it is not running: subscribes to the fleet's
    /// channels first — within the timeout, or fails typed (Redis down or
    /// frozen: [`Error::is_unavailable`]; a wrong password, an ACL user
    /// without channel rights: [`Error::is_denied`]) — then starts the
    /// background worker. A cache whose `start` failed stays stopped.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.stop();
    /// assert!(cache.get("k").is_err());
    /// cache.start()?;
    /// assert_eq!(cache.get("k")?, None);
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn start(&self) -> Result<()> {
        let mut worker = self
            .handle
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if worker.is_some() {
            return Ok(());
        }
        let channels = self.handle.shared.instance.settings().channels();
        let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
        let subscription = self.handle.shared.transport.subscribe_delivering(
            &channels,
            direct::Direct::deliver_to(Arc::clone(&self.handle.shared)),
        )?;
        self.handle.shared.stop.store(false, Ordering::SeqCst);
        self.handle
            .shared
            .instance
            .start(self.handle.shared.clock.now(), Clock::unix_now());
        self.handle.shared.instance.subscribed();
        let shared = Arc::clone(&self.handle.shared);
        // Made now and moved into the thread: if it cannot start, the
        // closure is dropped, and the guard with it.
        let guard = SubscriptionGuard::new(&self.handle.shared);
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
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// let clone = cache.clone();
    /// cache.stop();
    /// assert!(matches!(clone.set("k", "v"), Err(aci_cache::Error::Stopped)));
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn stop(&self) {
        self.handle.stop();
    }

    /// [`Error::Stopped`] after `stop`, until `start`.
    fn ensure_running(&self) -> Result<()> {
        if self.handle.shared.stop.load(Ordering::SeqCst) {
            Err(Error::Stopped)
        } else {
            Ok(())
        }
    }

    /// The value of `key`, from the near cache or from Redis.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.set("k", "v")?;
    /// assert_eq!(cache.get("k")?.as_deref(), Some(&b"v"[..]));
    /// assert_eq!(cache.get("absent")?, None);
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    #[inline]
    pub fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.ensure_running()?;
        let shared = &self.handle.shared;
        match shared.instance.hit(key, shared.clock.now()) {
            Some(value) => Ok(Some(value)),
            None => self.read(key),
        }
    }

    /// A `get` the near cache could not answer at first sight: out of line,
    /// so that the hit path above stays small.
    #[inline(never)]
    fn read(&self, key: &str) -> Result<Option<Bytes>> {
        let instance = &self.handle.shared.instance;
        // Read the clock only when there is something to wait for: a hit
        // must not pay for it.
        let mut deadline = None;
        let result = loop {
            match instance.lookup(key, self.handle.shared.clock.now()) {
                Lookup::Hit(value) => return Ok(Some(value)),
                Lookup::Fill(fill) => {
                    let read = self.handle.shared.transport.get_with_ttl(fill.stored_key());
                    break instance.finish_fill_with_ttl(
                        fill,
                        read,
                        self.handle.shared.clock.now(),
                    );
                }
                Lookup::Wait(wait) => {
                    let deadline = *deadline
                        .get_or_insert_with(|| Instant::now() + instance.settings().timeout);
                    let left = deadline.saturating_duration_since(Instant::now());
                    match waiting::wait(&wait, left) {
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

    /// The value of `key`, or, when Redis has none, the value `loader`
    /// makes, stored in Redis (default TTL) and in the near cache: the
    /// cache-aside read, without the races of writing it by hand.
    ///
    /// Concurrent callers on this instance share one load: the first runs
    /// `loader`, the others wait for its value (a plain `get` of the key
    /// meanwhile waits too). The value is stored with `SET … NX`, so a load
    /// never overwrites a value written while it ran: then that value is
    /// returned instead. Two instances loading the same key at once both run
    /// their loader; the first to store wins and both return what Redis
    /// holds. A Redis error is returned as for [`AdaptiveCache::get`], without
    /// loading.
    ///
    /// ```
    /// use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// let name = cache.get_or_load("user:42:name", || "Alice".to_owned())?;
    /// assert_eq!(&name[..], b"Alice");
    /// // Cached now: the loader is not called again.
    /// let again = cache.get_or_load("user:42:name", || -> String { unreachable!() })?;
    /// assert_eq!(again, name);
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn get_or_load<V: AsRef<[u8]>>(
        &self,
        key: &str,
        loader: impl FnOnce() -> V,
    ) -> Result<Bytes> {
        self.get_or_try_load(key, || Ok::<V, std::convert::Infallible>(loader()))
    }

    /// [`AdaptiveCache::get_or_load`] with a loader that can fail: its
    /// error comes back as [`Error::Load`] (the original inside, to
    /// downcast), with nothing stored or cached; callers that were waiting
    /// for that load run their own loader.
    ///
    /// ```
    /// use aci_cache::{AdaptiveCache, Error, transports::MemoryTransport};
    /// let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// let failed = cache.get_or_try_load("user:7", || {
    ///     Err::<String, _>(std::io::Error::other("database down"))
    /// });
    /// assert!(matches!(failed, Err(Error::Load { .. })));
    /// assert_eq!(cache.get("user:7")?, None, "nothing was stored");
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn get_or_try_load<V, E>(
        &self,
        key: &str,
        loader: impl FnOnce() -> std::result::Result<V, E>,
    ) -> Result<Bytes>
    where
        V: AsRef<[u8]>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
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
                Lookup::Wait(wait) => match waiting::wait(&wait, timeout) {
                    Some(Ok(Some(value))) => return Ok(value),
                    // Still loading: a load may take longer than a read.
                    Some(Err(Error::ReadWaitTimeout)) => continue,
                    Some(Err(e)) => return Err(e),
                    // Nothing found, the load failed, or the leader gave up:
                    // look again, and perhaps load.
                    Some(Ok(None)) | None => continue,
                },
                Lookup::Fill(fill) => {
                    let read = shared.transport.get_with_ttl(fill.stored_key());
                    if !matches!(read, Ok(None)) {
                        let now = shared.clock.now();
                        match instance.finish_fill_with_ttl(fill, read, now)? {
                            Some(value) => return Ok(value),
                            None => continue,
                        }
                    }
                    // Absent from Redis: this caller loads; others wait on `fill`.
                    let value = match (loader.take(), loaded.take()) {
                        (_, Some(value)) => value,
                        (Some(loader), None) => match loader() {
                            Ok(v) => Bytes::copy_from_slice(v.as_ref()),
                            Err(e) => {
                                let _ = instance.finish_fill(fill, Ok(None), shared.clock.now());
                                return Err(Error::Load {
                                    key: key.to_owned(),
                                    source: std::sync::Arc::from(e.into()),
                                });
                            }
                        },
                        // The loader is only taken to make `loaded` (or to return).
                        (None, None) => continue,
                    };
                    if self.store_loaded(key, &value)? {
                        let _ =
                            instance.finish_fill(fill, Ok(Some(value.clone())), shared.clock.now());
                        return Ok(value);
                    }
                    // Another value was stored meanwhile: read it (ours
                    // stays at hand should it vanish again at once).
                    let _ = instance.finish_fill(fill, Ok(None), shared.clock.now());
                    loaded = Some(value);
                    if let Some(current) = self.get(key)? {
                        return Ok(current);
                    }
                }
            }
        }
    }

    /// Stores a loaded value where Redis has none; whether it did.
    fn store_loaded(&self, key: &str, value: &[u8]) -> Result<bool> {
        let shared = &self.handle.shared;
        let instance = &shared.instance;
        let ttl: Duration = instance.settings().core.default_ttl().into();
        let stored = instance.settings().stored_key(key);
        let write = instance.prepare_write(key, Some(ttl), shared.clock.now())?;
        let sent =
            shared
                .transport
                .set_if_absent(&stored, value, ttl, &write.outbound.as_outgoing());
        instance.finish_write_if_absent(write, key, value, sent, shared.clock.now())
    }

    /// The value of `key` decoded from JSON (feature `serde`); a value that
    /// does not decode is [`Error::Decode`] naming the key.
    ///
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct User { name: String, age: u32 }
    /// let cache = aci_cache::AdaptiveCache::builder()
    ///     .transport(aci_cache::transports::MemoryTransport::new())?;
    /// cache.set_json("user:42", &User { name: "Alice".into(), age: 36 })?;
    /// let user: Option<User> = cache.get_json("user:42")?;
    /// assert_eq!(user, Some(User { name: "Alice".into(), age: 36 }));
    /// cache.set("user:43", "not json")?;
    /// assert!(matches!(cache.get_json::<User>("user:43"), Err(aci_cache::Error::Decode { .. })));
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    #[cfg(feature = "serde")]
    pub fn get_json<V: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<V>> {
        self.get_decoded(key, &crate::Json)
    }

    /// Writes `value` as JSON with the default TTL (feature `serde`).
    /// See [`AdaptiveCache::get_json`].
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.set_json("point", &(1, 2))?;
    /// assert_eq!(cache.get_json::<(i32, i32)>("point")?, Some((1, 2)));
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    #[cfg(feature = "serde")]
    pub fn set_json<V: serde::Serialize + ?Sized>(&self, key: &str, value: &V) -> Result<()> {
        self.set_encoded(key, value, &crate::Json)
    }

    /// The value of `key` decoded with `codec` (feature `serde`). See
    /// [`Codec`](crate::Codec) for an example.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.set_encoded("n", &42u32, &aci_cache::Json)?;
    /// let n: Option<u32> = cache.get_decoded("n", &aci_cache::Json)?;
    /// assert_eq!(n, Some(42));
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    #[cfg(feature = "serde")]
    pub fn get_decoded<V: serde::de::DeserializeOwned, C: crate::Codec>(
        &self,
        key: &str,
        codec: &C,
    ) -> Result<Option<V>> {
        crate::codec::decode(codec, key, self.get(key)?)
    }

    /// Writes `value` encoded with `codec`, with the default TTL (feature
    /// `serde`); a value that does not encode is [`Error::Encode`], and
    /// nothing is written. See [`Codec`](crate::Codec) for an example.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.set_encoded("tags", &["a", "b"], &aci_cache::Json)?;
    /// assert_eq!(cache.get_string("tags")?.as_deref(), Some(r#"["a","b"]"#));
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    #[cfg(feature = "serde")]
    pub fn set_encoded<V: serde::Serialize + ?Sized, C: crate::Codec>(
        &self,
        key: &str,
        value: &V,
        codec: &C,
    ) -> Result<()> {
        self.set(key, crate::codec::encode(codec, key, value)?)
    }

    /// The values of `keys`, in order: near-cache hits at once, every miss
    /// from Redis in one round trip (`MGET` + `PTTL`), each fill protected
    /// as a single read's is (a value invalidated while the read runs is
    /// returned but not cached); keys another caller is reading wait for
    /// that read.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.set_many(&[("a", "1"), ("b", "2")])?;
    /// let values = cache.get_many(&["a", "missing", "b"])?;
    /// assert_eq!(values[0].as_deref(), Some(&b"1"[..]));
    /// assert_eq!(values[1], None);
    /// assert_eq!(values[2].as_deref(), Some(&b"2"[..]));
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
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
            match shared.transport.get_many_with_ttl(&stored) {
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
            values[i] = match waiting::wait(&wait, instance.settings().timeout) {
                Some(result) => instance.settle_read(keys[i], result)?,
                None => self.get(keys[i])?,
            };
        }
        Ok(values)
    }

    /// Writes many values with the default TTL in one round trip, with one
    /// invalidation naming them all in eager (batched: they join the batch;
    /// ttl: nothing is sent). Stored but not announced: [`Error::Unannounced`]
    /// with [`Done::StoredMany`](crate::Done::StoredMany).
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.set_many(&[("user:1", "Ann"), ("user:2", "Bob")])?;
    /// assert_eq!(cache.get_string("user:2")?.as_deref(), Some("Bob"));
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn set_many<V: AsRef<[u8]>>(&self, entries: &[(&str, V)]) -> Result<()> {
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
            .set_many(&sent_entries, ttl, &writes.outbound.as_outgoing());
        instance.finish_write_many(writes, &values, sent, shared.clock.now())
    }

    /// Deletes many keys in one round trip (`UNLINK`) and tells the fleet
    /// at once, whatever the strategy. How many existed.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.set_many(&[("a", "1"), ("b", "2")])?;
    /// assert_eq!(cache.delete_many(&["a", "b", "never-set"])?, 2);
    /// assert_eq!(cache.get("a")?, None);
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        self.ensure_running()?;
        let shared = &self.handle.shared;
        let instance = &shared.instance;
        let stored: Vec<String> = keys
            .iter()
            .map(|k| instance.settings().stored_key(k))
            .collect();
        let outbound = instance.prepare_delete_many(keys, shared.clock.now())?;
        let sent = shared.transport.unlink(&stored, &outbound.as_outgoing());
        instance.finish_delete_many(keys, &outbound, sent, false)
    }

    /// The value of `key` as UTF-8 text.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.set("greeting", "hello")?;
    /// assert_eq!(cache.get_string("greeting")?.as_deref(), Some("hello"));
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn get_string(&self, key: &str) -> Result<Option<String>> {
        into_text(key, self.get(key)?)
    }

    /// Writes `value` with the default TTL.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.set("user:42", "Alice")?;
    /// assert_eq!(cache.get_string("user:42")?.as_deref(), Some("Alice"));
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        let ttl = self.handle.shared.instance.settings().core.default_ttl();
        self.set_with_ttl(key, value, ttl.into())
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
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// use std::time::Duration;
    /// cache.set_with_ttl("otp", "123456", Duration::from_secs(30))?;
    /// assert!(cache.set_with_ttl("otp", "x", Duration::ZERO).is_err(), "nothing below 1 ms");
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn set_with_ttl(&self, key: &str, value: impl AsRef<[u8]>, ttl: Duration) -> Result<()> {
        self.ensure_running()?;
        crate::error::check_ttl(ttl)?;
        let instance = &self.handle.shared.instance;
        let value = value.as_ref();
        let stored = instance.settings().stored_key(key);
        let write = instance.prepare_write(key, Some(ttl), self.handle.shared.clock.now())?;
        let sent =
            self.handle
                .shared
                .transport
                .set(&stored, value, ttl, &write.outbound.as_outgoing());
        instance.finish_write(write, key, value, sent, self.handle.shared.clock.now())
    }

    /// Deletes `key` and tells the fleet at once, whatever the strategy.
    /// Whether it existed. A key deleted whose invalidation could not be
    /// published returns [`Error::Unannounced`](crate::Error::Unannounced)
    /// with [`Done::Deleted`](crate::Done::Deleted).
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.set("k", "v")?;
    /// assert!(cache.delete("k")?);
    /// assert!(!cache.delete("k")?);
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn delete(&self, key: &str) -> Result<bool> {
        self.ensure_running()?;
        let instance = &self.handle.shared.instance;
        let stored = instance.settings().stored_key(key);
        let outbound = instance.prepare_delete(key, self.handle.shared.clock.now())?;
        let sent = self
            .handle
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
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// # let cache = AdaptiveCache::builder().namespace("docs").transport(MemoryTransport::new())?;
    /// cache.set("a", "1")?;
    /// cache.set("b", "2")?;
    /// assert_eq!(cache.flush()?, 2);
    /// assert_eq!(cache.get("a")?, None);
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn flush(&self) -> Result<u64> {
        self.ensure_running()?;
        let instance = &self.handle.shared.instance;
        let flush = Flush::of(instance.settings())?;
        let (mut cursor, mut removed) = (0, 0);
        loop {
            let (next, keys) =
                self.handle
                    .shared
                    .transport
                    .scan_prefix(cursor, flush.prefix(), Flush::BATCH)?;
            let keys = flush.ours(keys);
            if !keys.is_empty() {
                let users = flush.user_keys(&keys);
                let outbound =
                    instance.prepare_delete_many(&users, self.handle.shared.clock.now())?;
                let sent = self
                    .handle
                    .shared
                    .transport
                    .unlink(&keys, &outbound.as_outgoing());
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
    /// tests and development. Other instances are not told (no message says
    /// "everything"): their near caches keep what they hold until it expires
    /// (`local_ttl`).
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.set("k", "v")?;
    /// cache.flush_database()?;
    /// assert_eq!(cache.get("k")?, None);
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn flush_database(&self) -> Result<()> {
        self.ensure_running()?;
        self.handle.shared.transport.flush_db()?;
        self.handle.shared.instance.commit_flush();
        Ok(())
    }

    /// The strategy in force.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// assert_eq!(cache.strategy(), aci_cache::Strategy::Ttl);
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn strategy(&self) -> Strategy {
        self.handle.shared.instance.strategy()
    }

    /// The strategy in force with, under batched, the interval batches are
    /// flushed on: a staleness bound or a message budget sets it, and the
    /// controller's decisions carry it to the fleet.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, Mode, transports::MemoryTransport};
    /// use std::time::Duration;
    /// // A 1 s bound that the 10 s near-cache TTL cannot keep: the cache
    /// // starts batched at the bound minus the 100 ms delivery margin.
    /// let cache = AdaptiveCache::builder()
    ///     .max_staleness(Duration::from_secs(1))
    ///     .transport(MemoryTransport::new())?;
    /// assert_eq!(cache.mode(), Mode::Batched(Duration::from_millis(900).into()));
    /// # Ok::<(), aci_cache::Error>(())
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
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// use aci_cache::Strategy;
    /// cache.force_strategy(Some(Strategy::Eager))?;
    /// assert_eq!(cache.strategy(), Strategy::Eager);
    /// cache.force_strategy(None)?; // the controller decides again
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn force_strategy(&self, strategy: Option<Strategy>) -> Result<()> {
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
            .publish(&outbound.as_outgoing());
        self.handle
            .shared
            .instance
            .finish_force(strategy, &outbound, sent)
    }

    /// A snapshot of the counters.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.set("k", "v")?;
    /// cache.get("k")?;
    /// let stats = cache.stats();
    /// assert_eq!((stats.total_writes, stats.cache_hits), (1, 1));
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        self.handle.shared.instance.stats()
    }

    /// Calls `callback(from, to)` on every strategy switch.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// use std::sync::{Arc, Mutex};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// cache.on_switch(move |from, to| log.lock().unwrap().push((from, to)));
    /// cache.force_strategy(Some(aci_cache::Strategy::Batched))?;
    /// assert_eq!(seen.lock().unwrap().len(), 1);
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn on_switch(&self, callback: impl Fn(Strategy, Strategy) + Send + Sync + 'static) {
        self.handle.shared.instance.on_switch(Arc::new(callback));
    }

    /// This instance's id, as sent in `source`.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// # let cache = AdaptiveCache::builder().instance_id("web-1").transport(MemoryTransport::new())?;
    /// assert_eq!(cache.instance_id(), "web-1");
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn instance_id(&self) -> &str {
        self.handle.shared.instance.settings().instance_id()
    }

    /// Whether the subscription is up (and the near cache in use).
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// assert!(cache.is_subscribed());
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn is_subscribed(&self) -> bool {
        self.handle.shared.instance.is_subscribed()
    }

    /// The transport.
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// cache.get("k")?;
    /// assert_eq!(cache.transport().gets(), 1, "one GET reached the in-memory server");
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn transport(&self) -> &T {
        &self.handle.shared.transport
    }

    /// The instance logic under this cache, for diagnostics. Internals: see
    /// [`instance`](crate::instance).
    ///
    /// ```
    /// # use aci_cache::{AdaptiveCache, transports::MemoryTransport};
    /// # let cache = AdaptiveCache::builder().transport(MemoryTransport::new())?;
    /// assert_eq!(cache.instance().reads_in_flight(), 0);
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn instance(&self) -> &Instance {
        &self.handle.shared.instance
    }
}

impl<T: Transport> Handle<T> {
    fn stop(&self) {
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(worker) = worker {
            let _ = worker.join();
        }
        self.shared.transport.close();
    }
}

impl<T: Transport> Drop for Handle<T> {
    fn drop(&mut self) {
        self.stop();
    }
}
