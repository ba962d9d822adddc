//! Everything a cache is configured with, validated once by [`Builder`].

use std::hash::{BuildHasher, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aci_core::{Config, ConfigBuilder, ConfigError, Naming, Objective, Role};

use crate::error::Result;

/// Default near-cache capacity in entries.
pub const DEFAULT_NEAR_ENTRIES: usize = 100_000;
/// Default near-cache capacity in bytes (keys + values + bookkeeping).
pub const DEFAULT_NEAR_BYTES: u64 = 64 * 1024 * 1024;
/// Default largest value the near cache keeps (larger ones are read from
/// Redis every time).
pub const DEFAULT_NEAR_MAX_VALUE_BYTES: u64 = 1024 * 1024;
/// Default time any Redis operation may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// A validated configuration: the engine's [`Config`] plus the near cache and I/O limits.
#[derive(Clone, Debug)]
pub struct Settings {
    pub(crate) core: Config,
    pub(crate) near_max_entries: usize,
    pub(crate) near_max_bytes: u64,
    pub(crate) near_max_value_bytes: u64,
    pub(crate) timeout: Duration,
    pub(crate) miss_on_error: bool,
    pub(crate) instance_id: String,
}

impl Settings {
    /// The engine's configuration.
    pub fn core(&self) -> &Config {
        &self.core
    }
    /// This instance's id.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }
    /// Most entries the near cache holds.
    pub fn near_max_entries(&self) -> usize {
        self.near_max_entries
    }
    /// Most bytes the near cache holds.
    pub fn near_max_bytes(&self) -> u64 {
        self.near_max_bytes
    }
    /// Largest value the near cache keeps.
    pub fn near_max_value_bytes(&self) -> u64 {
        self.near_max_value_bytes
    }
    /// The operation timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// Whether a failed read returns a miss instead of an error.
    pub fn miss_on_error(&self) -> bool {
        self.miss_on_error
    }
    /// Every channel an instance subscribes to: each invalidation bucket's,
    /// then the decisions'.
    pub fn channels(&self) -> Vec<String> {
        let mut channels: Vec<String> = self
            .core
            .invalidation_channels()
            .map(|name| name.as_str().to_owned())
            .collect();
        channels.push(self.core.strategy_channel().to_owned());
        channels
    }
    /// The Redis key for `key`: `{prefix}:{namespace}:{key}`, or `key` without a namespace.
    pub fn stored_key(&self, key: &str) -> String {
        let prefix = self.core.key_prefix();
        let mut stored = String::with_capacity(prefix.len() + key.len());
        stored.push_str(prefix);
        stored.push_str(key);
        stored
    }
}

/// Configures a cache with the original's parameter names, then validates.
///
/// ```
/// use std::time::Duration;
/// let settings = aci_cache::Builder::new()
///     .high_threshold(100.0)
///     .low_threshold(20.0)
///     .default_ttl(Duration::from_secs(30))
///     .namespace("user-service")
///     .is_controller(false)
///     .settings()?;
/// assert_eq!(settings.stored_key("profile:7"), "aci:user-service:profile:7");
///
/// let err = aci_cache::Builder::new().low_threshold(200.0).settings().unwrap_err();
/// assert!(err.to_string().contains("low_threshold"));
/// # Ok::<(), aci_cache::Error>(())
/// ```
///
/// The builder knows which cache it makes: `Builder` (from `Builder::new()`
/// or `AdaptiveCache::builder()`) connects an [`AdaptiveCache`](crate::AdaptiveCache);
/// `Builder<Async>` (from `AsyncAdaptiveCache::builder()` or
/// [`Builder::into_async`]) connects an `AsyncAdaptiveCache`, with the same
/// settings and methods of the same names, awaited.
#[derive(Clone, Debug)]
#[must_use]
pub struct Builder<K = Blocking> {
    core: ConfigBuilder,
    near_max_entries: usize,
    near_max_bytes: u64,
    near_max_value_bytes: u64,
    timeout: Duration,
    miss_on_error: bool,
    instance_id: Option<String>,
    kind: PhantomData<K>,
}

/// The kind of a [`Builder`] that makes an [`AdaptiveCache`](crate::AdaptiveCache).
#[derive(Clone, Copy, Debug, Default)]
pub struct Blocking;

/// The kind of a [`Builder`] that makes an `AsyncAdaptiveCache` (feature `tokio`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Async;

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! forward {
    ($(#[$doc:meta])* $name:ident: duration) => {
        $(#[$doc])*
        pub fn $name(mut self, value: Duration) -> Self {
            self.core = self.core.$name(value.into());
            self
        }
    };
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.core = self.core.$name(value);
            self
        }
    };
}

impl Builder {
    /// The original's defaults, a near cache of 100,000 entries / 64 MiB, a
    /// 1 s timeout; it makes a blocking cache.
    pub fn new() -> Self {
        Builder {
            core: ConfigBuilder::new(),
            near_max_entries: DEFAULT_NEAR_ENTRIES,
            near_max_bytes: DEFAULT_NEAR_BYTES,
            near_max_value_bytes: DEFAULT_NEAR_MAX_VALUE_BYTES,
            timeout: DEFAULT_TIMEOUT,
            miss_on_error: false,
            instance_id: None,
            kind: PhantomData,
        }
    }

    /// The same settings, for an `AsyncAdaptiveCache` (feature `tokio`).
    pub fn into_async(self) -> Builder<Async> {
        Builder {
            core: self.core,
            near_max_entries: self.near_max_entries,
            near_max_bytes: self.near_max_bytes,
            near_max_value_bytes: self.near_max_value_bytes,
            timeout: self.timeout,
            miss_on_error: self.miss_on_error,
            instance_id: self.instance_id,
            kind: PhantomData,
        }
    }
}

impl<K> Builder<K> {
    forward!(
        /// Writes/s above which the fleet goes eager (default 50).
        high_threshold: f64
    );
    forward!(
        /// Writes/s below which the fleet goes to ttl (default 10).
        low_threshold: f64
    );
    forward!(
        /// TTL of values written to Redis (default 10 s).
        default_ttl: duration
    );
    forward!(
        /// Lifetime of a near-cache entry (default: `default_ttl`).
        local_ttl: duration
    );
    forward!(
        /// Time between batched invalidations (default 2.5 s).
        batch_interval: duration
    );
    forward!(
        /// Time between controller decisions (default 3 s).
        controller_interval: duration
    );
    forward!(
        /// Window the write rate is measured over (default 5 s).
        sliding_window: duration
    );
    forward!(
        /// Least time a strategy is kept (default 0).
        min_dwell: duration
    );
    forward!(
        /// Fractional band around each threshold, in `[0, 1)` (default 0.2).
        hysteresis: f64
    );
    forward!(
        /// Re-announce an unchanged decision every tick (default true).
        rebroadcast: bool
    );
    forward!(
        /// What the strategy policy optimises (default
        /// [`Objective::Thresholds`], the original's table). The shorthands
        /// [`Builder::max_staleness`] and [`Builder::message_budget`] set the
        /// other two.
        objective: Objective
    );
    forward!(
        /// Time allowed for an invalidation to reach every instance (default
        /// 100 ms): a staleness bound batches at the bound minus this.
        delivery_margin: duration
    );

    /// The cheapest way to promise that no instance serves a value more
    /// than `bound` after a newer write was acknowledged: ttl if
    /// `local_ttl` fits the bound, else eager or batched at
    /// `bound − delivery_margin`, whichever the fleet's write rate predicts
    /// to cost fewer messages ([`Objective::Bounded`]). The bound must be
    /// longer than `delivery_margin`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let settings = aci_cache::Builder::new()
    ///     .max_staleness(Duration::from_secs(1))
    ///     .settings()?;
    /// assert_eq!(
    ///     settings.core().objective(),
    ///     aci_cache::Objective::Bounded { max_staleness: Duration::from_secs(1).into() },
    /// );
    /// assert!(aci_cache::Builder::new().max_staleness(Duration::from_millis(20)).settings().is_err());
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn max_staleness(self, bound: Duration) -> Self {
        self.objective(Objective::Bounded {
            max_staleness: bound.into(),
        })
    }

    /// The freshest mode whose predicted traffic — invalidations, rate
    /// reports and decisions of the whole fleet — fits `messages_per_second`:
    /// eager while the write rate fits, then batched at the shortest
    /// interval that fits, then ttl ([`Objective::Budget`]).
    ///
    /// ```
    /// let settings = aci_cache::Builder::new().message_budget(100.0).settings()?;
    /// assert_eq!(
    ///     settings.core().objective(),
    ///     aci_cache::Objective::Budget { messages_per_second: 100.0 },
    /// );
    /// # Ok::<(), aci_cache::Error>(())
    /// ```
    pub fn message_budget(self, messages_per_second: f64) -> Self {
        self.objective(Objective::Budget {
            messages_per_second,
        })
    }
    forward!(
        /// The original's switch: `true` forces [`Role::Controller`] (decide
        /// always, no election), `false` [`Role::Follower`]. Unset, the
        /// instance is [`Role::Auto`].
        is_controller: bool
    );
    forward!(
        /// The role (default [`Role::Auto`]: the fleet elects one controller
        /// through a lease in Redis, and replaces it within three
        /// `controller_interval`s when it dies).
        role: Role
    );
    forward!(
        /// Apply decisions without a term (from the Python original, or a
        /// forced controller) even while an elected controller is alive
        /// (default false: they are rejected and counted as `no_term`).
        accept_termless_decisions: bool
    );
    forward!(
        /// Adds a shared secret (16 to 64 bytes) for message authentication:
        /// every message published ends with an HMAC-SHA256 tag made with
        /// the first key, and messages without a tag valid under one of the
        /// keys are rejected (counted as `unsigned` / `bad_signature`).
        /// Call again to add a key for rotation. A signed fleet is a
        /// Rust-only fleet: the Python original cannot sign.
        message_key: &[u8]
    );
    forward!(
        /// Largest Pub/Sub payload sent or accepted (default 32 KiB).
        max_message_bytes: usize
    );
    forward!(
        /// Most keys in one invalidation (default 1000).
        max_message_keys: usize
    );
    forward!(
        /// Channel prefix (default `"aci"`).
        channel_prefix: &str
    );
    forward!(
        /// Namespace for keys and channels (default none).
        namespace: &str
    );
    forward!(
        /// Where the fleet's names live (default [`Naming::Server`], the
        /// original's names). [`Naming::Sharded`] pins the lease and the
        /// decisions to one cluster slot by hash tag (`aci:{ns}:lease`) and
        /// spreads invalidations over `buckets` channels by a stable hash of
        /// the key; [`Naming::Classic`] keeps the original's channels for a
        /// fleet mixed with the Python original. Every instance of a fleet
        /// must use the same naming. The transports of this release talk to
        /// one server, where these names work with plain Pub/Sub; see
        /// [`aci_core::naming`].
        ///
        /// ```
        /// use aci_cache::Naming;
        /// let settings = aci_cache::Builder::new()
        ///     .namespace("users")
        ///     .naming(Naming::Sharded { buckets: 4 })
        ///     .settings()?;
        /// assert_eq!(settings.core().lease_key(), "aci:{users}:lease");
        /// assert_eq!(settings.channels().len(), 5, "four buckets and the decisions");
        /// # Ok::<(), aci_cache::Error>(())
        /// ```
        naming: Naming
    );

    /// Most entries the near cache holds (default 100,000).
    pub fn near_cache_max_entries(mut self, entries: usize) -> Self {
        self.near_max_entries = entries;
        self
    }

    /// Most bytes the near cache holds, keys and values and ~64 bytes of
    /// bookkeeping per entry (default 64 MiB).
    pub fn near_cache_max_bytes(mut self, bytes: u64) -> Self {
        self.near_max_bytes = bytes;
        self
    }

    /// Largest value the near cache keeps (default 1 MiB; at most half of
    /// `near_cache_max_bytes`). A larger value is read from Redis every
    /// time, and each such read counts in `Stats::near_cache_oversized`:
    /// one value must not evict the rest of the near cache.
    pub fn near_cache_max_value_bytes(mut self, bytes: u64) -> Self {
        self.near_max_value_bytes = bytes;
        self
    }

    /// How long any Redis operation may take before failing (default 1 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Turn a failed read into a miss (`Ok(None)`), counted in
    /// `Stats::read_errors`, instead of an error. Off by default: an outage is
    /// not silently a miss.
    pub fn miss_on_error(mut self, on: bool) -> Self {
        self.miss_on_error = on;
        self
    }

    /// This instance's id, as sent in `source` (default: 12 random hex
    /// digits, as the original).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// [`Builder::settings`], with cluster names unless a cluster naming
    /// was chosen: the lease script touches two keys, which must share a
    /// slot.
    #[cfg(feature = "cluster")]
    pub(crate) fn cluster_settings(self) -> Result<Settings>
    where
        Self: Clone,
    {
        let settings = self.clone().settings()?;
        if settings.core().naming().is_cluster() {
            return Ok(settings);
        }
        self.naming(Naming::Sharded { buckets: 1 }).settings()
    }

    /// Validates everything and returns the settings.
    pub fn settings(self) -> Result<Settings> {
        let core = self.core.build()?;
        if self.near_max_entries == 0 {
            return Err(ConfigError::NotPositive {
                field: "near_cache_max_entries",
            }
            .into());
        }
        if self.near_max_bytes == 0 {
            return Err(ConfigError::NotPositive {
                field: "near_cache_max_bytes",
            }
            .into());
        }
        if self.near_max_value_bytes == 0 || self.near_max_value_bytes > self.near_max_bytes / 2 {
            return Err(ConfigError::OutOfRange {
                field: "near_cache_max_value_bytes",
                rule: "must be positive and at most half of near_cache_max_bytes",
            }
            .into());
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::NotPositive { field: "timeout" }.into());
        }
        let instance_id = self.instance_id.unwrap_or_else(random_instance_id);
        // Checked the way the engine checks it.
        aci_core::Engine::new(core.clone(), &instance_id)?;
        Ok(Settings {
            core,
            near_max_entries: self.near_max_entries,
            near_max_bytes: self.near_max_bytes,
            near_max_value_bytes: self.near_max_value_bytes,
            timeout: self.timeout,
            miss_on_error: self.miss_on_error,
            instance_id,
        })
    }
}

/// 12 hex digits, like the original's `uuid4().hex[:12]`: random per process
/// (std's randomly seeded hasher) and distinct per call.
fn random_instance_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_twelve_hex_digits_and_distinct() {
        let a = random_instance_id();
        let b = random_instance_id();
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn facade_limits_are_validated() {
        let err = Builder::new()
            .near_cache_max_entries(0)
            .settings()
            .unwrap_err();
        assert!(err.to_string().contains("near_cache_max_entries"), "{err}");
        let err = Builder::new()
            .timeout(Duration::ZERO)
            .settings()
            .unwrap_err();
        assert!(err.to_string().contains("timeout"), "{err}");
        let err = Builder::new().instance_id("").settings().unwrap_err();
        assert!(err.to_string().contains("instance_id"), "{err}");
    }
}
