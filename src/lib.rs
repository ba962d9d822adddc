//! # aci-cache
//!
//! Adaptive cache invalidation for Redis. A fleet of application instances
//! shares one Redis; each keeps a near cache in memory; the library keeps
//! those near caches honest by choosing, from the write rate, between plain
//! TTL expiry, batched Pub/Sub invalidations and one invalidation per write.
//!
//! - [`AdaptiveCache`]: the blocking cache (a background thread subscribes
//!   and runs the engine's timers).
//! - `AsyncAdaptiveCache` (feature `tokio`): the same on tokio tasks.
//! - [`Builder`]: the original's parameter names and defaults, validated.
//! - [`Instance`](instance::Instance): the per-instance logic every driver
//!   shares, sans-IO.
//! - [`aci_core`] is re-exported whole: the engine, its configuration, the wire
//!   format shared with the Python `aci-cache` 0.1.1.
//!
//! Features: `redis` (default), `tokio` (the async cache), `tls`
//! (`rediss://`). The `aci-sim` crate runs the same [`Instance`](instance::Instance)
//! logic in a deterministic fleet simulator.
//!
//! ```no_run
//! let cache = aci_cache::AdaptiveCache::builder()
//!     .namespace("user-service")
//!     .connect("redis://127.0.0.1:6379")?;
//! cache.set("user:42", "Alice")?;
//! assert_eq!(cache.get_string("user:42")?.as_deref(), Some("Alice"));
//! # Ok::<(), aci_cache::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "tokio")]
mod asynchronous;
mod blocking;
mod clock;
mod error;
mod flush;
pub mod instance;
mod near;
mod settings;
mod stats;
mod subscription_guard;
mod sync;

pub use aci_core;
pub use aci_core::{
    Config, ConfigBuilder, ConfigError, DropReason, Duration, Effect, Engine, Instant, Policy,
    RejectReason, Role, Strategy, SwitchCause, SwitchRecord,
};
pub use aci_transports as transports;
#[cfg(feature = "tokio")]
pub use asynchronous::AsyncAdaptiveCache;
pub use blocking::AdaptiveCache;
pub use error::{Done, Error, Result};
pub use settings::{
    Builder, Settings, DEFAULT_NEAR_BYTES, DEFAULT_NEAR_ENTRIES, DEFAULT_NEAR_MAX_VALUE_BYTES,
    DEFAULT_TIMEOUT,
};
pub use stats::Stats;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
