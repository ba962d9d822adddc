//! Validated configuration, built with [`ConfigBuilder`].
//!
//! Parameter names and defaults are the original `aci-cache` 0.1.1's
//! (`high_threshold` 50 w/s, `low_threshold` 10 w/s, `default_ttl` 10 s,
//! `batch_interval` 2.5 s, `controller_interval` 3 s, `sliding_window` 5 s,
//! `channel_prefix` `"aci"`, no namespace), plus the knobs the original lacks:
//! `local_ttl`, `hysteresis`, `min_dwell`, `rebroadcast`, message size caps,
//! and the controller election (`role` [`Role::Auto`] by default, where the
//! original made every instance a controller; `accept_termless_decisions`).

use core::fmt::Write as _;

use crate::config_error::ConfigError;
use crate::naming::Naming;
use crate::policy::Objective;
use crate::strategy::Role;
use crate::time::Duration;
use crate::wire::{MessageKey, MAX_MESSAGE_KEYS};

/// Longest channel prefix accepted, in bytes.
pub const PREFIX_MAX_BYTES: usize = 32;
/// Longest namespace accepted, in bytes.
pub const NAMESPACE_MAX_BYTES: usize = 64;
/// Hard cap on one Pub/Sub payload, in bytes; `max_message_bytes` may only lower it.
pub const MESSAGE_BYTES_CAP: usize = 32 * 1024;
/// Smallest `max_message_bytes` accepted: room for a strategy update and a short key.
pub const MESSAGE_BYTES_MIN: usize = 512;
/// Hard cap on the keys of one invalidation; `max_message_keys` may only lower it.
pub const MESSAGE_KEYS_CAP: usize = 1024;

/// Capacity of a channel name: `{prefix}:{namespace}:invalidation`, or on a
/// cluster `{prefix}:{{namespace}/{bucket}}:invalidation`.
pub(crate) const CHANNEL_CAP: usize = PREFIX_MAX_BYTES + NAMESPACE_MAX_BYTES + 24;
/// A channel name or key prefix held without allocation.
pub(crate) type Name = heapless::String<CHANNEL_CAP>;

/// Everything the engine needs to know, validated. Build one with [`Config::builder`].
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub(crate) high_threshold: f64,
    pub(crate) low_threshold: f64,
    pub(crate) default_ttl: Duration,
    pub(crate) local_ttl: Duration,
    pub(crate) batch_interval: Duration,
    pub(crate) controller_interval: Duration,
    pub(crate) sliding_window: Duration,
    pub(crate) hysteresis: f64,
    pub(crate) min_dwell: Duration,
    pub(crate) objective: Objective,
    pub(crate) delivery_margin: Duration,
    pub(crate) rebroadcast: bool,
    pub(crate) role: Role,
    pub(crate) accept_termless_decisions: bool,
    pub(crate) max_message_bytes: usize,
    pub(crate) max_message_keys: usize,
    pub(crate) channel_prefix: heapless::String<PREFIX_MAX_BYTES>,
    pub(crate) namespace: Option<heapless::String<NAMESPACE_MAX_BYTES>>,
    pub(crate) naming: Naming,
    pub(crate) invalidation_channel: Name,
    pub(crate) strategy_channel: Name,
    pub(crate) key_prefix: Name,
    pub(crate) lease_key: Name,
    pub(crate) message_keys: heapless::Vec<MessageKey, MAX_MESSAGE_KEYS>,
}

impl Default for Config {
    /// The original's defaults. Infallible: they satisfy every rule.
    fn default() -> Self {
        match ConfigBuilder::new().build() {
            Ok(config) => config,
            // The defaults are constants checked by `defaults_are_the_originals`.
            Err(_) => unreachable!("default configuration is valid"),
        }
    }
}

impl Config {
    /// A builder holding the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::new()
    }
    /// Writes/s above which the fleet goes eager.
    pub fn high_threshold(&self) -> f64 {
        self.high_threshold
    }
    /// Writes/s below which the fleet goes back to ttl.
    pub fn low_threshold(&self) -> f64 {
        self.low_threshold
    }
    /// TTL of values written to Redis.
    pub fn default_ttl(&self) -> Duration {
        self.default_ttl
    }
    /// Lifetime of a near-cache entry: the staleness bound under `ttl`.
    pub fn local_ttl(&self) -> Duration {
        self.local_ttl
    }
    /// Time between two batched invalidation messages.
    pub fn batch_interval(&self) -> Duration {
        self.batch_interval
    }
    /// Time between two controller decisions.
    pub fn controller_interval(&self) -> Duration {
        self.controller_interval
    }
    /// Length of the window the write rate is measured over.
    pub fn sliding_window(&self) -> Duration {
        self.sliding_window
    }
    /// Fractional band around each threshold (see [`crate::policy`]).
    pub fn hysteresis(&self) -> f64 {
        self.hysteresis
    }
    /// Least time a strategy is kept before the controller changes it again.
    pub fn min_dwell(&self) -> Duration {
        self.min_dwell
    }
    /// What the strategy policy optimises (see [`crate::policy`]).
    pub fn objective(&self) -> Objective {
        self.objective
    }
    /// Time allowed for an invalidation to reach every subscriber, which a
    /// staleness bound must leave room for.
    pub fn delivery_margin(&self) -> Duration {
        self.delivery_margin
    }
    /// Whether the controller re-announces an unchanged decision every tick.
    pub fn rebroadcast(&self) -> bool {
        self.rebroadcast
    }
    /// The role the engine starts in.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Whether decisions without a term (sent by the Python original, or by
    /// an instance forced to [`Role::Controller`]) are applied even while an
    /// elected controller holds the lease.
    pub fn accept_termless_decisions(&self) -> bool {
        self.accept_termless_decisions
    }
    /// How long a controller's lease lasts unless renewed: 1.5 ×
    /// `controller_interval`. It is renewed every interval, and a candidate
    /// tries every interval, so a dead controller is replaced within
    /// 2.5 intervals plus a round trip.
    pub fn lease_ttl(&self) -> Duration {
        let half = Duration::from_nanos(self.controller_interval.as_nanos() / 2);
        self.controller_interval + half
    }
    /// The Redis key of the controller lease: `{prefix}:lease`, or
    /// `{prefix}:{namespace}:lease`. Its value is `{term}:{holder id}`; the
    /// term counter lives at the same key with `:term` appended.
    pub fn lease_key(&self) -> &str {
        &self.lease_key
    }
    /// Largest Pub/Sub payload sent or accepted, in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }
    /// Most keys in one invalidation sent or accepted.
    pub fn max_message_keys(&self) -> usize {
        self.max_message_keys
    }
    /// Channel prefix (`"aci"` by default).
    pub fn channel_prefix(&self) -> &str {
        &self.channel_prefix
    }
    /// The message authentication keys, the signing one first (their
    /// `Debug` is redacted).
    pub fn message_keys(&self) -> &[MessageKey] {
        &self.message_keys
    }
    /// Whether messages are signed and must be (a key is set).
    pub fn signs_messages(&self) -> bool {
        !self.message_keys.is_empty()
    }
    /// Namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    /// Where names live: one server (the default) or a Redis Cluster
    /// (see [`crate::naming`]).
    pub fn naming(&self) -> Naming {
        self.naming
    }
    /// `{prefix}:invalidation`, or `{prefix}:{namespace}:invalidation`; on a
    /// sharded cluster `{prefix}:{{namespace}}:invalidation`. With several
    /// buckets this is bucket 0's channel: see
    /// [`Config::invalidation_channel_of`].
    pub fn invalidation_channel(&self) -> &str {
        &self.invalidation_channel
    }
    /// The invalidation channel of `bucket` (`0..buckets`; a bucket out of
    /// range names bucket 0's). With one bucket, [`Config::invalidation_channel`].
    pub fn invalidation_channel_of(&self, bucket: u16) -> heapless::String<CHANNEL_CAP> {
        let buckets = self.naming.buckets();
        if buckets == 1 {
            return self.invalidation_channel.clone();
        }
        let bucket = if bucket < buckets { bucket } else { 0 };
        let mut name = Name::new();
        // Fits: CHANNEL_CAP leaves room for the tag and a 4-digit bucket.
        let _ = write!(
            name,
            "{}:{{{}/{bucket}}}:invalidation",
            self.channel_prefix,
            self.tag()
        );
        name
    }
    /// Every invalidation channel, bucket by bucket: what to subscribe to.
    pub fn invalidation_channels(
        &self,
    ) -> impl Iterator<Item = heapless::String<CHANNEL_CAP>> + '_ {
        (0..self.naming.buckets()).map(|bucket| self.invalidation_channel_of(bucket))
    }
    /// The bucket whose invalidation channel `channel` is, if it is one.
    pub fn bucket_of_channel(&self, channel: &str) -> Option<u16> {
        if self.naming.buckets() == 1 {
            return (channel == self.invalidation_channel.as_str()).then_some(0);
        }
        let rest = channel
            .strip_prefix(self.channel_prefix.as_str())?
            .strip_prefix(":{")?
            .strip_prefix(self.tag())?
            .strip_prefix('/')?
            .strip_suffix("}:invalidation")?;
        // Digits only, as written: no sign, no leading zero but "0" itself.
        if rest.is_empty() || rest.len() > 4 || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if rest.len() > 1 && rest.starts_with('0') {
            return None;
        }
        let bucket: u16 = rest.parse().ok()?;
        (bucket < self.naming.buckets()).then_some(bucket)
    }
    /// The bucket of a user key (see [`Naming::bucket_of`]).
    #[inline]
    pub fn bucket_of(&self, key: &str) -> u16 {
        self.naming.bucket_of(key)
    }
    /// The hash tag of a cluster's names: the namespace, or the prefix
    /// without one.
    fn tag(&self) -> &str {
        self.namespace.as_deref().unwrap_or(&self.channel_prefix)
    }
    /// `{prefix}:strategy`, or `{prefix}:{namespace}:strategy`; on a
    /// cluster `{prefix}:{{namespace}}:strategy`.
    pub fn strategy_channel(&self) -> &str {
        &self.strategy_channel
    }
    /// What stored keys start with: `{prefix}:{namespace}:`, or `""` without a namespace.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }
    /// Whether a stored key belongs to this configuration's namespace.
    pub fn owns_stored_key(&self, stored: &str) -> bool {
        stored.starts_with(self.key_prefix.as_str())
    }
    /// Writes the stored (Redis) form of `key` into `out`: `{prefix}:{namespace}:{key}`
    /// with a namespace, `key` as given without one.
    pub fn write_stored_key<W: core::fmt::Write>(
        &self,
        key: &str,
        out: &mut W,
    ) -> core::fmt::Result {
        out.write_str(&self.key_prefix)?;
        out.write_str(key)
    }
}

/// Builds a [`Config`], checking every rule in [`ConfigBuilder::build`].
///
/// ```
/// use aci_core::{Config, Duration, Role};
/// let config = Config::builder()
///     .high_threshold(100.0)
///     .low_threshold(20.0)
///     .namespace("user-service")
///     .role(Role::Follower)
///     .build()?;
/// assert_eq!(config.invalidation_channel(), "aci:user-service:invalidation");
/// assert_eq!(config.local_ttl(), Duration::from_secs(10)); // follows default_ttl
///
/// let err = Config::builder().low_threshold(60.0).build().unwrap_err();
/// assert_eq!(err.field(), "low_threshold");
/// # Ok::<(), aci_core::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct ConfigBuilder {
    high_threshold: f64,
    low_threshold: f64,
    default_ttl: Duration,
    local_ttl: Option<Duration>,
    batch_interval: Duration,
    controller_interval: Duration,
    sliding_window: Duration,
    hysteresis: f64,
    min_dwell: Duration,
    objective: Objective,
    delivery_margin: Duration,
    rebroadcast: bool,
    role: Role,
    accept_termless_decisions: bool,
    max_message_bytes: usize,
    max_message_keys: usize,
    channel_prefix: heapless::String<PREFIX_MAX_BYTES>,
    namespace: Option<heapless::String<NAMESPACE_MAX_BYTES>>,
    naming: Naming,
    message_keys: heapless::Vec<MessageKey, MAX_MESSAGE_KEYS>,
    /// Set when a key was too short, too long, or one too many.
    bad_message_key: bool,
    /// Set when a string parameter did not fit; reported by `build`.
    overlong: Option<&'static str>,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

impl ConfigBuilder {
    /// The original's defaults.
    pub fn new() -> Self {
        let mut prefix = heapless::String::new();
        // "aci" always fits in PREFIX_MAX_BYTES.
        let _ = prefix.push_str("aci");
        ConfigBuilder {
            high_threshold: 50.0,
            low_threshold: 10.0,
            default_ttl: Duration::from_secs(10),
            local_ttl: None,
            batch_interval: Duration::from_millis(2500),
            controller_interval: Duration::from_secs(3),
            sliding_window: Duration::from_secs(5),
            hysteresis: 0.2,
            min_dwell: Duration::ZERO,
            objective: Objective::Thresholds,
            delivery_margin: Duration::from_millis(100),
            rebroadcast: true,
            role: Role::Auto,
            accept_termless_decisions: false,
            max_message_bytes: MESSAGE_BYTES_CAP,
            max_message_keys: 1000,
            channel_prefix: prefix,
            namespace: None,
            naming: Naming::Server,
            message_keys: heapless::Vec::new(),
            bad_message_key: false,
            overlong: None,
        }
    }

    setter!(
        /// Writes/s above which the fleet goes eager (default 50).
        high_threshold: f64
    );
    setter!(
        /// Writes/s below which the fleet goes to ttl (default 10).
        low_threshold: f64
    );
    setter!(
        /// TTL of values written to Redis (default 10 s).
        default_ttl: Duration
    );
    setter!(
        /// Time between batched invalidation messages (default 2.5 s).
        batch_interval: Duration
    );
    setter!(
        /// Time between controller decisions (default 3 s).
        controller_interval: Duration
    );
    setter!(
        /// Window the write rate is measured over (default 5 s).
        sliding_window: Duration
    );
    setter!(
        /// Fractional band around each threshold, in `[0, 1)` (default 0.2): moving
        /// up across a threshold `T` needs a rate above `T × (1 + h)`, moving down
        /// needs one below `T × (1 − h)`. `0` gives the original's bare table.
        hysteresis: f64
    );
    setter!(
        /// Least time a strategy is kept before the controller changes it
        /// (default 0: hysteresis alone stops the flapping).
        min_dwell: Duration
    );
    setter!(
        /// What the strategy policy optimises (default
        /// [`Objective::Thresholds`], the original's table): a staleness
        /// bound or a message budget instead (see [`crate::policy`]).
        ///
        /// ```
        /// use aci_core::policy::Objective;
        /// use aci_core::{Config, Duration};
        /// let config = Config::builder()
        ///     .objective(Objective::Budget { messages_per_second: 50.0 })
        ///     .build()?;
        /// assert_eq!(config.objective(), Objective::Budget { messages_per_second: 50.0 });
        /// // A bound must leave room for the message's trip (`delivery_margin`, 100 ms).
        /// let tight = Objective::Bounded { max_staleness: Duration::from_millis(50) };
        /// assert_eq!(Config::builder().objective(tight).build().unwrap_err().field(), "max_staleness");
        /// # Ok::<(), aci_core::ConfigError>(())
        /// ```
        objective: Objective
    );
    setter!(
        /// Time allowed for an invalidation to reach every subscriber
        /// (default 100 ms): a bounded policy batches at `max_staleness`
        /// minus this, and promises nothing if it is longer than the bound.
        delivery_margin: Duration
    );
    setter!(
        /// Whether the controller re-announces an unchanged decision every tick,
        /// so late or reconnected followers learn it (default true).
        rebroadcast: bool
    );
    setter!(
        /// The role (default [`Role::Auto`]: elect one controller through a
        /// lease in Redis; the original made every instance a controller).
        role: Role
    );
    setter!(
        /// Apply decisions that carry no term even while an elected controller
        /// holds the lease (default false). Turn it on to let a Python
        /// `aci-cache` controller, which sends no term, steer Rust instances
        /// that also run elections; two controllers may then fight.
        accept_termless_decisions: bool
    );
    setter!(
        /// Largest Pub/Sub payload sent or accepted, in bytes
        /// (default and maximum [`MESSAGE_BYTES_CAP`]).
        max_message_bytes: usize
    );
    setter!(
        /// Most keys in one invalidation sent or accepted
        /// (default 1000, maximum [`MESSAGE_KEYS_CAP`]).
        max_message_keys: usize
    );

    /// Lifetime of a near-cache entry (default: `default_ttl`).
    pub fn local_ttl(mut self, value: Duration) -> Self {
        self.local_ttl = Some(value);
        self
    }

    /// The original's `is_controller`: `true` is [`Role::Controller`], `false` [`Role::Follower`].
    pub fn is_controller(self, value: bool) -> Self {
        self.role(if value {
            Role::Controller
        } else {
            Role::Follower
        })
    }

    /// Channel prefix (default `"aci"`, at most [`PREFIX_MAX_BYTES`]).
    pub fn channel_prefix(mut self, value: &str) -> Self {
        self.channel_prefix.clear();
        if self.channel_prefix.push_str(value).is_err() {
            self.overlong = Some("channel_prefix");
        }
        self
    }

    /// Namespace for keys and channels (default none, at most [`NAMESPACE_MAX_BYTES`]).
    /// An empty namespace means none, as in the original.
    pub fn namespace(mut self, value: &str) -> Self {
        if value.is_empty() {
            self.namespace = None;
            return self;
        }
        let mut ns = heapless::String::new();
        if ns.push_str(value).is_err() {
            self.overlong = Some("namespace");
        }
        self.namespace = Some(ns);
        self
    }

    /// Where names live (default [`Naming::Server`], the original's): on a
    /// Redis Cluster, [`Naming::Sharded`] or [`Naming::Classic`] (see
    /// [`crate::naming`]). A cluster's names carry the namespace (or the
    /// prefix) as a hash tag, so neither may contain `{` or `}`.
    pub fn naming(mut self, value: Naming) -> Self {
        self.naming = value;
        self
    }

    /// Adds a shared secret for message authentication (16 to 64 bytes; at
    /// most [`MAX_MESSAGE_KEYS`]). With any key set, every message this
    /// instance publishes ends with an HMAC-SHA256 tag made with the
    /// **first** key, and a message without a tag valid under **some** key
    /// is rejected and counted (`unsigned`, `bad_signature`). Rotate by deploying
    /// `[old, new]`, then `[new, old]`, then `[new]`. See
    /// [`wire::sign`](crate::wire::sign). The Python original cannot sign: a
    /// signed fleet is a Rust-only fleet.
    ///
    /// ```
    /// use aci_core::Config;
    /// let config = Config::builder().message_key(b"a 32-byte secret from a vault!!!").build()?;
    /// assert!(config.signs_messages());
    /// assert!(Config::builder().message_key(b"short").build().is_err());
    /// # Ok::<(), aci_core::ConfigError>(())
    /// ```
    pub fn message_key(mut self, key: &[u8]) -> Self {
        match MessageKey::new(key) {
            Some(key) if self.message_keys.push(key.clone()).is_ok() => {}
            _ => self.bad_message_key = true,
        }
        self
    }

    /// Checks every rule and returns the configuration, or the first broken rule.
    ///
    /// Rules: thresholds finite and non-negative with `low_threshold <
    /// high_threshold` (the original's); `default_ttl`, `local_ttl`,
    /// `batch_interval`, `controller_interval` and `sliding_window` positive (the
    /// original's, plus `local_ttl`); `hysteresis` finite in `[0, 1)`;
    /// `max_message_bytes` in `[MESSAGE_BYTES_MIN, MESSAGE_BYTES_CAP]`;
    /// `max_message_keys` in `[1, MESSAGE_KEYS_CAP]`; a bounded objective's
    /// `max_staleness` longer than `delivery_margin` and at most 100 years, a
    /// budget finite and positive; `channel_prefix` non-empty,
    /// names within their length caps and free of control characters.
    pub fn build(self) -> Result<Config, ConfigError> {
        crate::config_error::validate(&self.view())?;
        if self.bad_message_key {
            return Err(ConfigError::OutOfRange {
                field: "message_key",
                rule: "must be 16 to 64 bytes, at most 4 keys",
            });
        }
        let local_ttl = self.local_ttl.unwrap_or(self.default_ttl);
        let (invalidation_channel, strategy_channel, key_prefix, lease_key) =
            derive_names(&self.channel_prefix, self.namespace.as_deref(), self.naming);
        Ok(Config {
            high_threshold: self.high_threshold,
            low_threshold: self.low_threshold,
            default_ttl: self.default_ttl,
            local_ttl,
            batch_interval: self.batch_interval,
            controller_interval: self.controller_interval,
            sliding_window: self.sliding_window,
            hysteresis: self.hysteresis,
            min_dwell: self.min_dwell,
            objective: self.objective,
            delivery_margin: self.delivery_margin,
            rebroadcast: self.rebroadcast,
            role: self.role,
            accept_termless_decisions: self.accept_termless_decisions,
            max_message_bytes: self.max_message_bytes,
            max_message_keys: self.max_message_keys,
            channel_prefix: self.channel_prefix,
            namespace: self.namespace,
            naming: self.naming,
            invalidation_channel,
            strategy_channel,
            key_prefix,
            lease_key,
            message_keys: self.message_keys,
        })
    }

    fn view(&self) -> crate::config_error::Candidate<'_> {
        crate::config_error::Candidate {
            high_threshold: self.high_threshold,
            low_threshold: self.low_threshold,
            default_ttl: self.default_ttl,
            local_ttl: self.local_ttl.unwrap_or(self.default_ttl),
            batch_interval: self.batch_interval,
            controller_interval: self.controller_interval,
            sliding_window: self.sliding_window,
            hysteresis: self.hysteresis,
            objective: self.objective,
            delivery_margin: self.delivery_margin,
            max_message_bytes: self.max_message_bytes,
            max_message_keys: self.max_message_keys,
            channel_prefix: &self.channel_prefix,
            namespace: self.namespace.as_deref(),
            naming: self.naming,
            overlong: self.overlong,
        }
    }
}

fn derive_names(prefix: &str, namespace: Option<&str>, naming: Naming) -> (Name, Name, Name, Name) {
    let mut invalidation = Name::new();
    let mut strategy = Name::new();
    let mut key_prefix = Name::new();
    let mut lease = Name::new();
    // CHANNEL_CAP leaves room for the longest prefix and namespace plus the
    // suffixes and a hash tag, so these writes cannot fail once the lengths
    // are validated.
    let _ = match namespace {
        Some(ns) => {
            let _ = write!(invalidation, "{prefix}:{ns}:invalidation");
            let _ = write!(strategy, "{prefix}:{ns}:strategy");
            let _ = write!(lease, "{prefix}:{ns}:lease");
            write!(key_prefix, "{prefix}:{ns}:")
        }
        None => {
            let _ = write!(invalidation, "{prefix}:invalidation");
            let _ = write!(lease, "{prefix}:lease");
            write!(strategy, "{prefix}:strategy")
        }
    };
    if naming.is_cluster() {
        // The control plane in one slot: the namespace (or, without one,
        // the prefix) is the hash tag. Data keys stay untagged, and the
        // classic mode keeps the original's channels for Python followers.
        let tag = namespace.unwrap_or(prefix);
        lease.clear();
        let _ = write!(lease, "{prefix}:{{{tag}}}:lease");
        if naming.is_sharded() {
            strategy.clear();
            invalidation.clear();
            let _ = write!(strategy, "{prefix}:{{{tag}}}:strategy");
            let _ = match naming.buckets() {
                1 => write!(invalidation, "{prefix}:{{{tag}}}:invalidation"),
                _ => write!(invalidation, "{prefix}:{{{tag}/0}}:invalidation"),
            };
        }
    }
    (invalidation, strategy, key_prefix, lease)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals() {
        let c = Config::default();
        assert_eq!(c.high_threshold(), 50.0);
        assert_eq!(c.low_threshold(), 10.0);
        assert_eq!(c.default_ttl(), Duration::from_secs(10));
        assert_eq!(c.local_ttl(), Duration::from_secs(10));
        assert_eq!(c.batch_interval(), Duration::from_millis(2500));
        assert_eq!(c.controller_interval(), Duration::from_secs(3));
        assert_eq!(c.sliding_window(), Duration::from_secs(5));
        assert_eq!(c.channel_prefix(), "aci");
        assert_eq!(c.namespace(), None);
        assert_eq!(c.role(), Role::Auto);
        assert!(!c.accept_termless_decisions());
        assert_eq!(c.lease_ttl(), Duration::from_millis(4500));
        assert_eq!(c.lease_key(), "aci:lease");
        assert_eq!(c.invalidation_channel(), "aci:invalidation");
        assert_eq!(c.strategy_channel(), "aci:strategy");
        assert_eq!(c.key_prefix(), "");
    }

    #[test]
    fn namespace_prefixes_keys_and_channels() {
        let c = Config::builder().namespace("user-service").build().unwrap();
        assert_eq!(c.strategy_channel(), "aci:user-service:strategy");
        assert_eq!(c.lease_key(), "aci:user-service:lease");
        let mut key = heapless::String::<64>::new();
        c.write_stored_key("profile:7", &mut key).unwrap();
        assert_eq!(key.as_str(), "aci:user-service:profile:7");
        assert!(c.owns_stored_key("aci:user-service:profile:7"));
        assert!(!c.owns_stored_key("profile:7"));
        let empty = Config::builder().namespace("").build().unwrap();
        assert_eq!(empty.namespace(), None);
    }

    #[test]
    fn longest_names_fit() {
        let prefix = "p".repeat_fixed::<PREFIX_MAX_BYTES>();
        let ns = "n".repeat_fixed::<NAMESPACE_MAX_BYTES>();
        let c = Config::builder()
            .channel_prefix(&prefix)
            .namespace(&ns)
            .build()
            .unwrap();
        assert!(c.invalidation_channel().ends_with(":invalidation"));
        assert!(c.key_prefix().ends_with(':'));
    }

    trait RepeatFixed {
        fn repeat_fixed<const N: usize>(&self) -> heapless::String<N>;
    }
    impl RepeatFixed for str {
        fn repeat_fixed<const N: usize>(&self) -> heapless::String<N> {
            let mut s = heapless::String::new();
            while s.push_str(self).is_ok() {}
            s
        }
    }
}
