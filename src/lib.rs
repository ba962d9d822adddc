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
//! - [`instance`]: internals, public for the simulator and custom drivers —
//!   the per-instance logic every driver shares, sans-IO.
//! - [`aci_core`] is re-exported whole: the engine, its configuration, the wire
//!   format shared with the Python `aci-cache` 0.1.1.
//!
//! Features: `redis` (default), `tokio` (the async cache), `tls`
//! (`rediss://`), `serde` (typed values: `get_json`, `set_json`, any
//! `Codec`), `metrics` (counters and gauges on the `metrics` facade; names
//! in the `metrics` module). The `aci-sim` crate runs the same [`Instance`](instance::Instance)
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
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tokio")]
mod asynchronous;
mod blocking;
mod clock;
#[cfg(feature = "serde")]
mod codec;
mod error;
mod flush;
pub mod instance;
#[cfg(feature = "metrics")]
pub mod metrics;
mod near;
mod settings;
mod stats;
mod subscription_guard;
mod sync;

/// The engine, its configuration and its time types, the wire format: the
/// sans-IO core the caches run. Its [`Duration`](aci_core::Duration) and
/// [`Instant`](aci_core::Instant) are the engine's nanosecond counters; the
/// caches take and return `std::time::Duration` (the two convert with `From`).
pub use aci_core;
pub use aci_core::{
    ConfigError, DropReason, Mode, Naming, Objective, RejectReason, Role, Strategy, SwitchCause,
    SwitchRecord,
};
pub use aci_transports as transports;
#[cfg(feature = "tokio")]
pub use asynchronous::AsyncAdaptiveCache;
pub use blocking::AdaptiveCache;
#[cfg(feature = "serde")]
pub use codec::{Codec, Json};
pub use error::{Done, Error, Result};
pub use settings::{
    Async, Blocking, Builder, Settings, DEFAULT_NEAR_BYTES, DEFAULT_NEAR_ENTRIES,
    DEFAULT_NEAR_MAX_VALUE_BYTES, DEFAULT_TIMEOUT,
};
pub use stats::Stats;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
