//! The [`Transport`] trait and the data it moves.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::{LeaseState, TransportError};

/// A message to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// The channel name.
    pub channel: &'a str,
    /// The payload.
    pub payload: &'a [u8],
}

/// A message received on a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The channel it arrived on.
    pub channel: String,
    /// The payload, as sent.
    pub payload: Bytes,
}

/// A live subscription to some channels.
pub trait Subscription: Send {
    /// The next message, waiting at most `timeout`. `Ok(None)` when none came
    /// in time. An error means the subscription is gone and messages may have
    /// been missed: subscribe again.
    fn recv(&mut self, timeout: Duration) -> Result<Option<Received>, TransportError>;
}

/// Handles messages on the thread that reads the subscription, as they
/// arrive: the hop to another thread (a channel, then that thread's turn on
/// a busy CPU) is what made invalidations late on a loaded machine.
///
/// Given to [`Transport::subscribe_delivering`]. A message it does not take
/// is queued for [`Subscription::recv`] as usual.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use aci_transports::Deliver;
///
/// /// Takes what arrives on one channel, leaves the rest to `recv`.
/// struct Count { channel: String, seen: AtomicU64 }
///
/// impl Deliver for Count {
///     fn deliver(&self, channel: &str, _payload: &[u8]) -> bool {
///         let mine = channel == self.channel;
///         if mine {
///             self.seen.fetch_add(1, Ordering::Relaxed);
///         }
///         mine
///     }
/// }
/// let count = Count { channel: "aci:invalidation".into(), seen: AtomicU64::new(0) };
/// assert!(count.deliver("aci:invalidation", b"{}"));
/// assert!(!count.deliver("aci:strategy", b"{}"));
/// ```
pub trait Deliver: Send + Sync {
    /// Handles one message, in the order the subscription received them.
    /// Returns whether it was handled; `false` queues it for `recv`. It
    /// must not block: the subscription reads nothing else meanwhile.
    fn deliver(&self, channel: &str, payload: &[u8]) -> bool;
}

/// A value read from the store with the time it has left to live (`None`:
/// no expiry, or the transport cannot tell), as `get_with_ttl` answers.
pub type ValueWithTtl = (Bytes, Option<Duration>);

/// What aci-cache needs from a backend: values with TTLs and Pub/Sub.
///
/// Every method may block the calling thread for at most the transport's
/// own timeout, then fails with [`TransportError::Timeout`] or
/// [`TransportError::Unavailable`]. Writes that carry messages send them in
/// the same round trip, after the write: a subscriber that reacts to the
/// message by reading the key must see the new value.
///
/// # Implementing it
///
/// A complete, working implementation for a single process — a map behind a
/// lock and one channel per subscriber — is short:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{mpsc, Mutex};
/// use std::time::{Duration, Instant};
///
/// use aci_transports::{Outgoing, Received, Subscription, Transport, TransportError};
/// use bytes::Bytes;
///
/// #[derive(Default)]
/// struct Tiny {
///     values: Mutex<HashMap<String, (Bytes, Instant)>>,
///     subscribers: Mutex<Vec<(Vec<String>, mpsc::Sender<Received>)>>,
/// }
///
/// struct TinySubscription(mpsc::Receiver<Received>);
///
/// impl Subscription for TinySubscription {
///     fn recv(&mut self, timeout: Duration) -> Result<Option<Received>, TransportError> {
///         match self.0.recv_timeout(timeout) {
///             Ok(message) => Ok(Some(message)),
///             Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
///             Err(mpsc::RecvTimeoutError::Disconnected) => Err(TransportError::SubscriptionClosed),
///         }
///     }
/// }
///
/// impl Transport for Tiny {
///     type Subscription = TinySubscription;
///
///     fn get(&self, key: &str) -> Result<Option<Bytes>, TransportError> {
///         let values = self.values.lock().unwrap();
///         Ok(values.get(key).filter(|(_, expires)| *expires > Instant::now()).map(|(v, _)| v.clone()))
///     }
///     fn set(&self, key: &str, value: &[u8], ttl: Duration, then: &[Outgoing<'_>]) -> Result<(), TransportError> {
///         let expires = Instant::now() + ttl;
///         self.values.lock().unwrap().insert(key.to_owned(), (Bytes::copy_from_slice(value), expires));
///         self.publish(then)
///     }
///     fn delete(&self, key: &str, then: &[Outgoing<'_>]) -> Result<bool, TransportError> {
///         let existed = self.values.lock().unwrap().remove(key).is_some();
///         self.publish(then)?;
///         Ok(existed)
///     }
///     fn publish(&self, messages: &[Outgoing<'_>]) -> Result<(), TransportError> {
///         let mut subscribers = self.subscribers.lock().unwrap();
///         for m in messages {
///             subscribers.retain(|(channels, tx)| {
///                 !channels.iter().any(|c| c == m.channel)
///                     || tx.send(Received { channel: m.channel.into(), payload: Bytes::copy_from_slice(m.payload) }).is_ok()
///             });
///         }
///         Ok(())
///     }
///     fn subscribe(&self, channels: &[&str]) -> Result<TinySubscription, TransportError> {
///         let (tx, rx) = mpsc::channel();
///         let channels = channels.iter().map(|c| c.to_string()).collect();
///         self.subscribers.lock().unwrap().push((channels, tx));
///         Ok(TinySubscription(rx))
///     }
///     fn flush_db(&self) -> Result<(), TransportError> {
///         self.values.lock().unwrap().clear();
///         Ok(())
///     }
/// }
///
/// let t = Tiny::default();
/// let mut sub = t.subscribe(&["aci:invalidation"])?;
/// t.set("k", b"v", Duration::from_secs(10), &[Outgoing { channel: "aci:invalidation", payload: b"{}" }])?;
/// assert_eq!(t.get("k")?.as_deref(), Some(&b"v"[..]));
/// assert_eq!(sub.recv(Duration::from_secs(1))?.unwrap().channel, "aci:invalidation");
/// # Ok::<(), TransportError>(())
/// ```
pub trait Transport: Send + Sync + 'static {
    /// A subscription made by [`Transport::subscribe`].
    type Subscription: Subscription + 'static;

    /// Reads `key`; `None` when absent or expired.
    fn get(&self, key: &str) -> Result<Option<Bytes>, TransportError>;

    /// The value of `key` and how long it has left to live, in one round
    /// trip (`GET` + `PTTL`): `None` for the time when the key has no
    /// expiry or the transport cannot tell. The near cache keeps a value no
    /// longer than that. The default calls [`Transport::get`] and cannot tell.
    fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Option<Duration>)>, TransportError> {
        Ok(self.get(key)?.map(|value| (value, None)))
    }

    /// Writes `key` with a time to live, then publishes `then`, in one round trip.
    /// When the data command took effect but publishing `then` failed,
    /// answer [`TransportError::Unpublished`] so the cache reports exactly
    /// that (a plain error reads as "maybe not written").
    fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError>;

    /// Writes `key` only if it holds no value (`SET … NX PX`), then
    /// publishes `then`, in one round trip. Whether it was written. The
    /// cache stores a loaded value this way (`get_or_load`), so a load never
    /// overwrites a value written while it ran. The default is not atomic:
    /// a `get`, then [`Transport::set`] when it found nothing.
    fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<bool, TransportError> {
        if self.get(key)?.is_some() {
            return Ok(false);
        }
        self.set(key, value, ttl, then).map(|()| true)
    }

    /// Reads many keys in one round trip, each with its time left as
    /// [`Transport::get_with_ttl`] answers it, in the order asked. The
    /// default reads them one by one.
    fn get_many_with_ttl(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Option<ValueWithTtl>>, TransportError> {
        keys.iter().map(|key| self.get_with_ttl(key)).collect()
    }

    /// Writes many keys with one time to live, then publishes `then`, in
    /// one round trip. [`TransportError::Unpublished`] when every write
    /// took effect but publishing failed. The default writes them one by
    /// one, then publishes.
    fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError> {
        for (key, value) in entries {
            self.set(key, value, ttl, &[])?;
        }
        self.publish(then)
            .map_err(|e| TransportError::Unpublished(Box::new(e)))
    }

    /// Deletes `key`, then publishes `then`, in one round trip. Whether it existed.
    /// When the data command took effect but publishing `then` failed,
    /// answer [`TransportError::Unpublished`] so the cache reports exactly
    /// that (a plain error reads as "maybe not written").
    fn delete(&self, key: &str, then: &[Outgoing<'_>]) -> Result<bool, TransportError>;

    /// Publishes messages, in order.
    fn publish(&self, messages: &[Outgoing<'_>]) -> Result<(), TransportError>;

    /// Subscribes to `channels`. Messages published after this returns are received.
    fn subscribe(&self, channels: &[&str]) -> Result<Self::Subscription, TransportError>;

    /// Subscribes to `channels`, handing each message to `deliver` on the
    /// thread that reads it; those it does not take, and every error, still
    /// come out of [`Subscription::recv`]. The default subscribes with
    /// [`Transport::subscribe`] and never calls `deliver`: everything comes
    /// out of `recv`, which is correct, one thread hop slower.
    fn subscribe_delivering(
        &self,
        channels: &[&str],
        deliver: Arc<dyn Deliver>,
    ) -> Result<Self::Subscription, TransportError> {
        let _ = deliver;
        self.subscribe(channels)
    }

    /// Deletes every key of the current database (the original's `flush`, a
    /// development helper).
    fn flush_db(&self) -> Result<(), TransportError>;

    /// One step of a scan over the keys that start with `prefix`: the
    /// cursor to pass next (0 when the scan is over) and a batch of keys
    /// (about `count`; it may be empty before the end). Start with cursor 0.
    /// Like Redis's `SCAN`, a key present for the whole scan is returned at
    /// least once. The default answers [`TransportError::Unsupported`].
    fn scan_prefix(
        &self,
        cursor: u64,
        prefix: &str,
        count: usize,
    ) -> Result<(u64, Vec<String>), TransportError> {
        let _ = (cursor, prefix, count);
        Err(TransportError::Unsupported("scanning keys"))
    }

    /// Removes `keys` without blocking the server (`UNLINK`), then publishes
    /// `then`, in one round trip. How many of the keys existed. The default
    /// answers [`TransportError::Unsupported`].
    fn unlink(&self, keys: &[String], then: &[Outgoing<'_>]) -> Result<u64, TransportError> {
        let _ = (keys, then);
        Err(TransportError::Unsupported("unlinking keys"))
    }

    /// Closes every connection kept for reuse (the caches call it from
    /// `stop`). Calls already running finish, and their connections are
    /// closed rather than kept; a later call may connect again. The default
    /// does nothing, for transports that keep no connection.
    fn close(&self) {}

    /// The controller election's lease at `key`: if nobody holds it, take it
    /// for `holder` for `ttl` under a new term (the counter at `key` +
    /// `":term"` incremented, and raised above `min_term` if it is not); if
    /// `holder` holds it, extend it. Atomic. Answers who holds it afterwards.
    ///
    /// The default answers [`TransportError::Unsupported`]: instances in the
    /// `auto` role then all act as controllers, like the original. Implement
    /// the three lease methods for elections on another backend.
    fn lease_acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        min_term: u64,
    ) -> Result<LeaseState, TransportError> {
        let _ = (key, holder, ttl, min_term);
        Err(TransportError::Unsupported("controller leases"))
    }

    /// If `holder` holds the lease at `key` in `term`, extends it by `ttl`.
    /// Atomic. Answers who holds it afterwards.
    fn lease_renew(
        &self,
        key: &str,
        holder: &str,
        term: u64,
        ttl: Duration,
    ) -> Result<LeaseState, TransportError> {
        let _ = (key, holder, term, ttl);
        Err(TransportError::Unsupported("controller leases"))
    }

    /// Who holds the lease at `key`, changing nothing (a forced follower
    /// verifies a term it heard with it). The default asks
    /// [`Transport::lease_renew`] to renew term 0, which no lease has: it
    /// answers who holds the lease and extends nothing.
    fn lease_query(&self, key: &str) -> Result<LeaseState, TransportError> {
        self.lease_renew(key, "", 0, Duration::from_millis(1))
    }

    /// If `holder` holds the lease at `key` in `term`, deletes it. Atomic.
    fn lease_release(&self, key: &str, holder: &str, term: u64) -> Result<(), TransportError> {
        let _ = (key, holder, term);
        Err(TransportError::Unsupported("controller leases"))
    }
}
