//! # aci-core
//!
//! The pure state machine behind [aci-cache]: adaptive cache invalidation for
//! Redis, with no I/O, no clock and no allocator.
//!
//! A fleet of instances shares one Redis (the shared copy) and each keeps a
//! near cache in memory. When an instance writes, the others' near caches must
//! learn of it. How depends on the fleet's write rate:
//!
//! | strategy | on write | staleness for other instances |
//! |---|---|---|
//! | [`Strategy::Ttl`] | nothing is sent | `local_ttl` |
//! | [`Strategy::Batched`] | key buffered, one message per `batch_interval` | `batch_interval` + delivery |
//! | [`Strategy::Eager`] | one invalidation per write | delivery |
//!
//! One instance, the controller, measures the rate every `controller_interval`
//! over a `sliding_window`, picks a strategy with [`Policy::decide`] and
//! broadcasts it; the others apply it. By default the policy is the
//! original's table, damped by hysteresis; it can instead keep a staleness
//! bound or a message budget ([`Objective`]).
//!
//! [`Engine`] is that logic for one instance. It takes inputs stamped with
//! `now` and answers with [`Effect`]s and a next deadline; the caller does the
//! I/O. See the [`engine`] module for the run loop. The wire format in [`wire`]
//! is byte-compatible with the Python `aci-cache` 0.1.1.
//!
//! Built without default features the crate is `#![no_std]` and needs no
//! allocator: every buffer has a fixed capacity.
//!
//! [aci-cache]: https://crates.io/crates/aci-cache
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// `arbitrary` is a std crate; its derives name `std` paths.
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod batch;
mod config;
mod config_error;
pub mod engine;
pub mod naming;
pub mod policy;
pub mod rate;
#[cfg(feature = "arbitrary")]
pub mod script;
pub mod stats;
mod strategy;
pub mod time;
pub mod wire;

pub use config::{
    Config, ConfigBuilder, MESSAGE_BYTES_CAP, MESSAGE_BYTES_MIN, MESSAGE_KEYS_CAP,
    NAMESPACE_MAX_BYTES, PREFIX_MAX_BYTES,
};
pub use config_error::{
    ConfigError, MAX_TTL, MIN_BATCH_INTERVAL, MIN_CONTROLLER_INTERVAL, MIN_SLIDING_WINDOW, MIN_TTL,
};
pub use engine::{
    BucketDrop, DropReason, Effect, Engine, Handled, LeaseOp, LeaseReply, LeaseRequest, Publish,
    Rejection, WriteError,
};
pub use naming::Naming;
pub use policy::{FleetLoad, Mode, Objective, Policy};
pub use rate::RateTracker;
pub use stats::{RejectReason, Stats, SwitchCause, SwitchRecord};
pub use strategy::{Role, Strategy, UnknownRole, UnknownStrategy};
pub use time::{Duration, Instant};
pub use wire::MAX_TERM;
