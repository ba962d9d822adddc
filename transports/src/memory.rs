//! An in-process transport: one shared map and Pub/Sub fan-out, no network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;

use aci_core::LeaseOp;

use crate::lease::{lease_step, lease_value, parse_value, term_key, LeaseWrite};
use crate::{LeaseState, Outgoing, Received, Subscription, Transport, TransportError};

/// A shared in-memory "server": clones talk to the same data, so several
/// caches in one process behave like a fleet on one Redis.
///
/// [`MemoryTransport::set_available`] plays a dead server: every call fails
/// with [`TransportError::Unavailable`] and live subscriptions end.
#[derive(Clone, Default)]
pub struct MemoryTransport {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    values: Mutex<HashMap<String, (Bytes, Instant)>>,
    /// Lease term counters (Redis keeps them as plain keys without expiry).
    counters: Mutex<HashMap<String, u64>>,
    subscribers: Mutex<Vec<Subscriber>>,
    down: AtomicBool,
    /// Bumped when the server goes down: subscriptions from before are dead.
    incarnation: AtomicU64,
    gets: AtomicU64,
}

struct Subscriber {
    channels: Vec<String>,
    tx: Tx,
}

/// Where a subscriber's messages go: a blocking or an async receiver.
enum Tx {
    Blocking(mpsc::Sender<Received>),
    #[cfg(feature = "tokio")]
    Async(tokio::sync::mpsc::UnboundedSender<Received>),
}

impl Tx {
    /// Delivers; `false` when the receiver is gone.
    fn send(&self, message: Received) -> bool {
        match self {
            Tx::Blocking(tx) => tx.send(message).is_ok(),
            #[cfg(feature = "tokio")]
            Tx::Async(tx) => tx.send(message).is_ok(),
        }
    }
}

/// A subscription to a [`MemoryTransport`].
pub struct MemorySubscription {
    rx: mpsc::Receiver<Received>,
    inner: Arc<Inner>,
    incarnation: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stays consistent even if a holder panicked: every critical
    // section is a single map operation.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryTransport {
    /// An empty, available server.
    pub fn new() -> Self {
        Self::default()
    }

    /// Brings the server up (`true`) or down (`false`). Going down ends every
    /// subscription; data survives, as with a restarted Redis that persists.
    pub fn set_available(&self, available: bool) {
        // Down first: a subscriber that sees its subscription end and
        // subscribes again at once must find the server down, not slip in
        // between (it then stayed subscribed through the whole outage).
        self.inner.down.store(!available, Ordering::SeqCst);
        if !available {
            self.inner.incarnation.fetch_add(1, Ordering::SeqCst);
            lock(&self.inner.subscribers).clear();
        }
    }

    /// `GET`s served so far (to check single-flight and near-cache hits).
    pub fn gets(&self) -> u64 {
        self.inner.gets.load(Ordering::SeqCst)
    }

    /// Number of live subscriptions.
    pub fn subscriptions(&self) -> usize {
        lock(&self.inner.subscribers).len()
    }

    /// Runs a lease operation on the lease at `key`, atomically, as the
    /// Redis scripts do: the lease is a value `term:holder` with an expiry.
    fn lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        op: LeaseOp,
    ) -> Result<LeaseState, TransportError> {
        self.check()?;
        let mut values = lock(&self.inner.values);
        let now = Instant::now();
        let live = values
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .and_then(|(value, _)| {
                let (term, holder) = parse_value(std::str::from_utf8(value).ok()?)?;
                Some((term, holder.to_owned()))
            });
        if live.is_none() {
            // Expired, or not a lease of ours: gone, as the scripts remove it.
            values.remove(key);
        }
        let mut counters = lock(&self.inner.counters);
        let counter = counters.entry(term_key(key)).or_default();
        let live = live.as_ref().map(|(term, holder)| (*term, holder.as_str()));
        let (write, answer) = lease_step(live, counter, holder, op);
        match write {
            LeaseWrite::Keep => {}
            LeaseWrite::Extend => {
                if let Some(entry) = values.get_mut(key) {
                    entry.1 = now + ttl;
                }
            }
            LeaseWrite::Grant(term) => {
                let value = Bytes::from(lease_value(term, holder));
                values.insert(key.to_owned(), (value, now + ttl));
            }
            LeaseWrite::Delete => {
                values.remove(key);
            }
        }
        Ok(answer)
    }

    fn check(&self) -> Result<(), TransportError> {
        if self.inner.down.load(Ordering::SeqCst) {
            Err(TransportError::Unavailable(
                "memory transport is down".into(),
            ))
        } else {
            Ok(())
        }
    }
}

impl Transport for MemoryTransport {
    type Subscription = MemorySubscription;

    fn get(&self, key: &str) -> Result<Option<Bytes>, TransportError> {
        Ok(self.get_with_ttl(key)?.map(|(value, _)| value))
    }

    fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Option<Duration>)>, TransportError> {
        self.check()?;
        self.inner.gets.fetch_add(1, Ordering::SeqCst);
        let mut values = lock(&self.inner.values);
        let now = Instant::now();
        match values.get(key) {
            Some((value, expires)) if *expires > now => {
                Ok(Some((value.clone(), Some(*expires - now))))
            }
            Some(_) => {
                values.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError> {
        self.check()?;
        let expires = Instant::now() + ttl;
        lock(&self.inner.values).insert(key.to_owned(), (Bytes::copy_from_slice(value), expires));
        self.publish(then)
    }

    fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<bool, TransportError> {
        self.check()?;
        let now = Instant::now();
        {
            let mut values = lock(&self.inner.values);
            if values.get(key).is_some_and(|(_, expires)| *expires > now) {
                return Ok(false);
            }
            values.insert(key.to_owned(), (Bytes::copy_from_slice(value), now + ttl));
        }
        self.publish(then).map(|()| true)
    }

    fn delete(&self, key: &str, then: &[Outgoing<'_>]) -> Result<bool, TransportError> {
        self.check()?;
        let existed = lock(&self.inner.values)
            .remove(key)
            .is_some_and(|(_, expires)| expires > Instant::now());
        self.publish(then)?;
        Ok(existed)
    }

    fn publish(&self, messages: &[Outgoing<'_>]) -> Result<(), TransportError> {
        self.check()?;
        let mut subscribers = lock(&self.inner.subscribers);
        for m in messages {
            subscribers.retain(|s| {
                if !s.channels.iter().any(|c| c == m.channel) {
                    return true;
                }
                let received = Received {
                    channel: m.channel.to_owned(),
                    payload: Bytes::copy_from_slice(m.payload),
                };
                // A dropped receiver unsubscribes.
                s.tx.send(received)
            });
        }
        Ok(())
    }

    fn subscribe(&self, channels: &[&str]) -> Result<MemorySubscription, TransportError> {
        self.check()?;
        let (tx, rx) = mpsc::channel();
        let channels = channels.iter().map(|c| (*c).to_owned()).collect();
        lock(&self.inner.subscribers).push(Subscriber {
            channels,
            tx: Tx::Blocking(tx),
        });
        Ok(MemorySubscription {
            rx,
            inner: Arc::clone(&self.inner),
            incarnation: self.inner.incarnation.load(Ordering::SeqCst),
        })
    }

    fn scan_prefix(
        &self,
        cursor: u64,
        prefix: &str,
        count: usize,
    ) -> Result<(u64, Vec<String>), TransportError> {
        self.check()?;
        // Sorted keys from the cursor's position: keys present for the
        // whole scan are returned once, as Redis promises.
        let mut keys: Vec<String> = lock(&self.inner.values)
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.sort_unstable();
        let start = usize::try_from(cursor)
            .unwrap_or(usize::MAX)
            .min(keys.len());
        let end = start.saturating_add(count.max(1)).min(keys.len());
        let next = if end == keys.len() { 0 } else { end as u64 };
        Ok((next, keys[start..end].to_vec()))
    }

    fn unlink(&self, keys: &[String], then: &[Outgoing<'_>]) -> Result<u64, TransportError> {
        self.check()?;
        let now = Instant::now();
        let mut removed = 0;
        {
            let mut values = lock(&self.inner.values);
            for key in keys {
                if values.remove(key).is_some_and(|(_, expires)| expires > now) {
                    removed += 1;
                }
            }
        }
        self.publish(then)?;
        Ok(removed)
    }

    fn flush_db(&self) -> Result<(), TransportError> {
        self.check()?;
        lock(&self.inner.values).clear();
        lock(&self.inner.counters).clear();
        Ok(())
    }

    fn lease_acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        min_term: u64,
    ) -> Result<LeaseState, TransportError> {
        self.lease(key, holder, ttl, LeaseOp::Acquire { min_term })
    }

    fn lease_renew(
        &self,
        key: &str,
        holder: &str,
        term: u64,
        ttl: Duration,
    ) -> Result<LeaseState, TransportError> {
        self.lease(key, holder, ttl, LeaseOp::Renew { term })
    }

    fn lease_query(&self, key: &str) -> Result<LeaseState, TransportError> {
        self.lease(key, "", Duration::ZERO, LeaseOp::Query)
    }

    fn lease_release(&self, key: &str, holder: &str, term: u64) -> Result<(), TransportError> {
        self.lease(key, holder, Duration::ZERO, LeaseOp::Release { term })
            .map(drop)
    }
}

#[cfg(feature = "tokio")]
mod asynchronous {
    use std::time::Duration;

    use bytes::Bytes;

    use super::{lock, MemoryTransport, Subscriber, Tx};
    use crate::{
        AsyncSubscription, AsyncTransport, LeaseState, Outgoing, Received, Transport,
        TransportError,
    };

    /// An async subscription to a [`MemoryTransport`].
    pub struct MemoryAsyncSubscription {
        rx: tokio::sync::mpsc::UnboundedReceiver<Received>,
    }

    impl AsyncSubscription for MemoryAsyncSubscription {
        async fn recv(&mut self) -> Result<Received, TransportError> {
            self.rx
                .recv()
                .await
                .ok_or(TransportError::SubscriptionClosed)
        }
    }

    /// The same shared data as the blocking side: a blocking and an async
    /// cache on one `MemoryTransport` form one fleet.
    impl AsyncTransport for MemoryTransport {
        type Subscription = MemoryAsyncSubscription;

        async fn get(&self, key: &str) -> Result<Option<Bytes>, TransportError> {
            Transport::get(self, key)
        }
        async fn set(
            &self,
            key: &str,
            value: &[u8],
            ttl: Duration,
            then: &[Outgoing<'_>],
        ) -> Result<(), TransportError> {
            Transport::set(self, key, value, ttl, then)
        }
        async fn set_if_absent(
            &self,
            key: &str,
            value: &[u8],
            ttl: Duration,
            then: &[Outgoing<'_>],
        ) -> Result<bool, TransportError> {
            Transport::set_if_absent(self, key, value, ttl, then)
        }
        async fn delete(&self, key: &str, then: &[Outgoing<'_>]) -> Result<bool, TransportError> {
            Transport::delete(self, key, then)
        }
        async fn publish(&self, messages: &[Outgoing<'_>]) -> Result<(), TransportError> {
            Transport::publish(self, messages)
        }
        async fn subscribe(
            &self,
            channels: &[&str],
        ) -> Result<MemoryAsyncSubscription, TransportError> {
            self.check()?;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let channels = channels.iter().map(|c| (*c).to_owned()).collect();
            lock(&self.inner.subscribers).push(Subscriber {
                channels,
                tx: Tx::Async(tx),
            });
            Ok(MemoryAsyncSubscription { rx })
        }
        async fn flush_db(&self) -> Result<(), TransportError> {
            Transport::flush_db(self)
        }
        async fn get_with_ttl(
            &self,
            key: &str,
        ) -> Result<Option<(Bytes, Option<Duration>)>, TransportError> {
            Transport::get_with_ttl(self, key)
        }
        async fn scan_prefix(
            &self,
            cursor: u64,
            prefix: &str,
            count: usize,
        ) -> Result<(u64, Vec<String>), TransportError> {
            Transport::scan_prefix(self, cursor, prefix, count)
        }
        async fn unlink(
            &self,
            keys: &[String],
            then: &[Outgoing<'_>],
        ) -> Result<u64, TransportError> {
            Transport::unlink(self, keys, then)
        }
        async fn lease_acquire(
            &self,
            key: &str,
            holder: &str,
            ttl: Duration,
            min_term: u64,
        ) -> Result<LeaseState, TransportError> {
            Transport::lease_acquire(self, key, holder, ttl, min_term)
        }
        async fn lease_renew(
            &self,
            key: &str,
            holder: &str,
            term: u64,
            ttl: Duration,
        ) -> Result<LeaseState, TransportError> {
            Transport::lease_renew(self, key, holder, term, ttl)
        }
        async fn lease_query(&self, key: &str) -> Result<LeaseState, TransportError> {
            Transport::lease_query(self, key)
        }
        async fn lease_release(
            &self,
            key: &str,
            holder: &str,
            term: u64,
        ) -> Result<(), TransportError> {
            Transport::lease_release(self, key, holder, term)
        }
    }
}

#[cfg(feature = "tokio")]
pub use asynchronous::MemoryAsyncSubscription;

impl Subscription for MemorySubscription {
    fn recv(&mut self, timeout: Duration) -> Result<Option<Received>, TransportError> {
        if self.inner.incarnation.load(Ordering::SeqCst) != self.incarnation {
            return Err(TransportError::SubscriptionClosed);
        }
        match self.rx.recv_timeout(timeout) {
            Ok(message) => Ok(Some(message)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(TransportError::SubscriptionClosed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CH: &str = "aci:invalidation";

    #[test]
    fn values_expire() {
        let t = MemoryTransport::new();
        t.set("k", b"v", Duration::from_millis(20), &[]).unwrap();
        assert_eq!(t.get("k").unwrap().as_deref(), Some(&b"v"[..]));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(t.get("k").unwrap(), None);
    }

    #[test]
    fn writes_publish_after_writing() {
        let t = MemoryTransport::new();
        let mut sub = t.subscribe(&[CH]).unwrap();
        let msg = Outgoing {
            channel: CH,
            payload: b"x",
        };
        t.set("k", b"v", Duration::from_secs(5), &[msg]).unwrap();
        assert!(t.delete("k", &[msg]).unwrap());
        assert!(!t.delete("k", &[]).unwrap());
        for _ in 0..2 {
            let got = sub.recv(Duration::from_secs(1)).unwrap().unwrap();
            assert_eq!((got.channel.as_str(), &got.payload[..]), (CH, &b"x"[..]));
        }
        assert_eq!(sub.recv(Duration::from_millis(1)).unwrap(), None);
    }

    #[test]
    fn one_holder_at_a_time_with_growing_terms() {
        let t = MemoryTransport::new();
        let ttl = Duration::from_millis(50);
        let held = |term: u64, holder: &str| LeaseState::Held {
            term,
            holder: holder.to_owned(),
        };
        assert_eq!(t.lease_acquire("L", "a", ttl, 0).unwrap(), held(1, "a"));
        assert_eq!(t.lease_acquire("L", "b", ttl, 0).unwrap(), held(1, "a"));
        assert_eq!(t.lease_renew("L", "b", 1, ttl).unwrap(), held(1, "a"));
        assert_eq!(t.lease_renew("L", "a", 1, ttl).unwrap(), held(1, "a"));
        t.lease_release("L", "b", 1).unwrap();
        assert_eq!(t.lease_acquire("L", "b", ttl, 0).unwrap(), held(1, "a"));
        t.lease_release("L", "a", 1).unwrap();
        assert_eq!(t.lease_renew("L", "a", 1, ttl).unwrap(), LeaseState::Vacant);
        assert_eq!(t.lease_acquire("L", "b", ttl, 0).unwrap(), held(2, "b"));
        std::thread::sleep(Duration::from_millis(70));
        assert_eq!(t.lease_renew("L", "b", 2, ttl).unwrap(), LeaseState::Vacant);
        // A store that lost its counter still grants a term above the floor.
        t.flush_db().unwrap();
        assert_eq!(t.lease_acquire("L", "c", ttl, 9).unwrap(), held(10, "c"));
    }

    #[test]
    fn going_down_fails_calls_and_ends_subscriptions() {
        let t = MemoryTransport::new();
        let mut sub = t.subscribe(&[CH]).unwrap();
        t.set_available(false);
        assert!(t.get("k").unwrap_err().is_unavailable());
        assert!(matches!(
            sub.recv(Duration::ZERO),
            Err(TransportError::SubscriptionClosed)
        ));
        t.set_available(true);
        assert!(t.subscribe(&[CH]).is_ok());
        assert_eq!(t.subscriptions(), 1);
    }

    #[test]
    fn scans_a_prefix_in_pages_and_unlinks() {
        let t = MemoryTransport::new();
        let ttl = Duration::from_secs(10);
        for i in 0..25 {
            t.set(&format!("ns:k{i:02}"), b"v", ttl, &[]).unwrap();
        }
        t.set("other:k", b"v", ttl, &[]).unwrap();
        let (mut cursor, mut seen) = (0, Vec::new());
        loop {
            let (next, keys) = t.scan_prefix(cursor, "ns:", 10).unwrap();
            assert!(keys.len() <= 10);
            seen.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen.len(), 25);
        assert!(seen.iter().all(|k| k.starts_with("ns:")));
        assert_eq!(t.unlink(&seen, &[]).unwrap(), 25);
        assert_eq!(t.unlink(&seen, &[]).unwrap(), 0);
        assert!(t.get("other:k").unwrap().is_some());
    }
}
