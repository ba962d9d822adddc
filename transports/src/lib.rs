//! # aci-transports
//!
//! The one seam between aci-cache and the outside world: [`Transport`], a
//! key/value store with TTLs plus Pub/Sub, and a lease for electing the
//! fleet's controller. aci-cache needs nothing else from a backend, so
//! implementing this trait is all it takes to run on another one.
//!
//! - [`RedisTransport`] (feature `redis`, on by default): the `redis` crate,
//!   with a small connection pool, timeouts on every operation, and a
//!   dedicated connection per subscription.
//! - `RedisClusterTransport` (feature `cluster`): Redis Cluster, data
//!   through the `redis` crate's cluster client (redirects followed, reads
//!   from masters), messages over sharded Pub/Sub with a subscriber of our
//!   own, one connection per node that owns a channel.
//! - [`MemoryTransport`]: one process, no network; for tests and examples. It
//!   can be switched off to play a dead server.
//!
//! With feature `tokio`, `AsyncTransport` is the same seam for async code,
//! implemented by `RedisAsyncTransport` and by [`MemoryTransport`].
//!
//! The trait lives here rather than in `aci-core` because every method does
//! I/O and returns owned buffers: it needs `std`, and core stays `no_std`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "tokio")]
mod asynchronous;
mod error;
pub mod lease;
mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "cluster")]
mod redis_cluster;
mod transport;

#[cfg(feature = "tokio")]
pub use asynchronous::{AsyncSubscription, AsyncTransport};
#[cfg(all(feature = "tokio", feature = "redis"))]
pub use asynchronous::{RedisAsyncSubscription, RedisAsyncTransport};
pub use error::TransportError;
pub use lease::LeaseState;
#[cfg(feature = "tokio")]
pub use memory::MemoryAsyncSubscription;
pub use memory::{MemorySubscription, MemoryTransport};
#[cfg(feature = "redis")]
pub use redis::{RedisSubscription, RedisTransport};
#[cfg(all(feature = "cluster", feature = "tokio"))]
pub use redis_cluster::{ClusterAsyncSubscription, RedisClusterAsyncTransport};
#[cfg(feature = "cluster")]
pub use redis_cluster::{ClusterSubscription, PubSubMode, RedisClusterTransport};
pub use transport::{Deliver, Outgoing, Received, Subscription, Transport, ValueWithTtl};
