//! # aci-cache
//!
//! Adaptive cache invalidation for Redis. A fleet of application instances
//! shares one Redis; each keeps a near cache in memory; the library keeps those
//! near caches honest by choosing, from the fleet's write rate, between plain
//! TTL expiry, batched Pub/Sub invalidations and one invalidation per write.
//!
//! This release ships the engine, [`aci_core`], re-exported here whole: the
//! sans-IO state machine, its configuration, and the wire format shared with
//! the Python `aci-cache` 0.1.1. The Redis-backed `AdaptiveCache` and
//! `AsyncAdaptiveCache` that drive it are the next step of the roadmap.
//!
//! ```
//! use aci_cache::{Config, Engine, Strategy};
//! let engine = Engine::new(Config::default(), "instance-1")?;
//! assert_eq!(engine.strategy(), Strategy::Ttl);
//! # Ok::<(), aci_cache::ConfigError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use aci_core::*;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
