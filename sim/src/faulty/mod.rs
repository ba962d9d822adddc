//! The simulator's faults around a real transport, in real time.
//!
//! [`FaultyTransport`] wraps any [`Transport`] — Redis, the in-memory one,
//! your own — and applies a [`Faults`] to it, stage by stage:
//!
//! - **pass**: with [`Faults::none`], every call goes straight through;
//! - **delay**: every command waits a one-way latency before it runs and
//!   another after (a round trip), and every message received waits one;
//! - **drop** / duplicate: each message received is lost with probability
//!   `loss`, delivered twice with probability `duplication`;
//! - **fail**: during an [`Outage`](crate::faults::Outage) of this instance,
//!   commands fail with [`TransportError::Unavailable`], subscribing fails,
//!   and a live subscription ends with [`TransportError::SubscriptionClosed`]
//!   (messages published meanwhile are missed, as on a real disconnect).
//!
//! With the `tokio` feature, [`FaultyTransport`] is also an `AsyncTransport`
//! around any async transport (delays are `tokio::time` sleeps), for
//! `AsyncAdaptiveCache`. (Plain text: the trait exists only with the
//! feature, and the docs build without it too.)
//!
//! Every draw comes from one [`SimRng`] seeded by the caller, so the pattern
//! of faults (which message is lost, which latency is drawn) depends only on
//! the seed and the order of calls; timing is the real clock's. Outage times
//! count from the wrapper's creation. `controller_crash_at` does not apply
//! here: a crash is the process's, not the link's.
//!
//! ```
//! use std::time::Duration;
//! use aci_cache::transports::{MemoryTransport, Outgoing, Subscription, Transport};
//! use aci_sim::faults::Faults;
//! use aci_sim::faulty::FaultyTransport;
//!
//! let redis = MemoryTransport::new();
//! // Every message to this subscriber is lost; commands pass.
//! let lossy = FaultyTransport::new(redis.clone(), Faults { loss: 1.0, ..Faults::none() }, 0, 7);
//! let mut sub = lossy.subscribe(&["news"])?;
//! redis.publish(&[Outgoing { channel: "news", payload: b"hello" }])?;
//! assert!(sub.recv(Duration::from_millis(50))?.is_none());
//! lossy.set("k", b"v", Duration::from_secs(5), &[])?;
//! assert_eq!(redis.get("k")?.as_deref(), Some(&b"v"[..]));
//! # Ok::<(), aci_cache::transports::TransportError>(())
//! ```
//!
//! Around a real Redis, for a whole cache:
//!
//! ```no_run
//! use aci_cache::transports::RedisTransport;
//! use aci_sim::faults::{Faults, Outage};
//! use aci_sim::faulty::FaultyTransport;
//!
//! let faults = Faults {
//!     loss: 0.05,                                                // 5% of messages lost
//!     outages: vec![Outage { instance: 0, at: 10.0, duration: 5.0 }], // cut off at 10 s for 5 s
//!     ..Faults::none()
//! };
//! let redis = RedisTransport::open("redis://127.0.0.1:6379")?;
//! let cache = aci_cache::Builder::new().transport(FaultyTransport::new(redis, faults, 0, 42))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aci_cache::transports::{
    LeaseState, Outgoing, Received, Subscription, Transport, TransportError,
};
use bytes::Bytes;

use crate::faults::{Fate, Faults};
use crate::rng::SimRng;

#[cfg(feature = "tokio")]
mod asynchronous;
#[cfg(feature = "tokio")]
pub use asynchronous::FaultyAsyncSubscription;

/// A transport with faults injected between the caller and the backend.
#[derive(Debug)]
pub struct FaultyTransport<T> {
    inner: T,
    link: Arc<Link>,
}

/// The faults of one instance's link, and the random stream they draw from.
#[derive(Debug)]
struct Link {
    faults: Faults,
    instance: usize,
    rng: Mutex<SimRng>,
    since: Instant,
}

impl Link {
    fn draw<R>(&self, f: impl FnOnce(&Faults, &mut SimRng) -> R) -> R {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        f(&self.faults, &mut rng)
    }

    fn cut_off(&self) -> bool {
        let t = self.since.elapsed().as_secs_f64();
        self.faults.partitioned(self.instance, t)
    }

    /// One hop of a command: an error while cut off, otherwise how long it takes.
    fn hop(&self) -> Result<Duration, TransportError> {
        if self.cut_off() {
            return Err(TransportError::Unavailable(
                "fault injection: cut off from the server".into(),
            ));
        }
        Ok(std_duration(self.draw(|f, rng| f.latency(rng))))
    }

    /// Runs a command as a round trip through the faulty link: a hop out, the
    /// command, a hop back (a reply lost to an outage is a failure).
    fn command<R>(
        &self,
        run: impl FnOnce() -> Result<R, TransportError>,
    ) -> Result<R, TransportError> {
        sleep(self.hop()?);
        let answer = run()?;
        sleep(self.hop()?);
        Ok(answer)
    }
}

fn sleep(d: Duration) {
    if !d.is_zero() {
        std::thread::sleep(d);
    }
}

/// Messages on their way to one subscriber, by the time they arrive: the
/// subscriber side of a link, shared by the blocking and async subscriptions.
#[derive(Debug, Default)]
struct InFlight {
    pending: VecDeque<(Instant, Received)>,
    closed: bool,
}

impl InFlight {
    /// Whether an outage ended the subscription (it stays ended, as a
    /// dropped connection does); what was on its way is gone with it.
    fn ended(&mut self, link: &Link) -> bool {
        if !self.closed && link.cut_off() {
            self.closed = true;
            self.pending.clear();
        }
        self.closed
    }

    /// Passes a message received from the backend through the link.
    fn arrive(&mut self, link: &Link, message: Received) {
        let received = Instant::now();
        match link.draw(|f, rng| f.fate(rng)) {
            Fate::Drop => {}
            Fate::After(d) => self.enqueue(received + std_duration(d), message),
            Fate::Twice(a, b) => {
                self.enqueue(received + std_duration(a), message.clone());
                self.enqueue(received + std_duration(b), message);
            }
        }
    }

    fn enqueue(&mut self, due: Instant, message: Received) {
        let at = self.pending.partition_point(|(t, _)| *t <= due);
        self.pending.insert(at, (due, message));
    }

    /// The next message whose time has come.
    fn due(&mut self, now: Instant) -> Option<Received> {
        if self.pending.front().is_some_and(|(due, _)| *due <= now) {
            self.pending.pop_front().map(|(_, m)| m)
        } else {
            None
        }
    }

    /// When the next message arrives, if one is on its way.
    fn next(&self) -> Option<Instant> {
        self.pending.front().map(|(due, _)| *due)
    }
}

/// How often a subscription waiting on the backend looks at the clock, so
/// that an outage starting meanwhile ends it promptly.
const OUTAGE_CHECK: Duration = Duration::from_millis(20);

impl<T> FaultyTransport<T> {
    /// Wraps `inner`; `instance` selects this link's outages in `faults`,
    /// `seed` the random stream.
    pub fn new(inner: T, faults: Faults, instance: usize, seed: u64) -> Self {
        FaultyTransport {
            inner,
            link: Arc::new(Link {
                faults,
                instance,
                rng: Mutex::new(SimRng::new(seed)),
                since: Instant::now(),
            }),
        }
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// Whether this instance is inside one of its outages now.
    pub fn is_cut_off(&self) -> bool {
        self.link.cut_off()
    }
}

impl<T: Transport> Transport for FaultyTransport<T> {
    type Subscription = FaultySubscription<T::Subscription>;

    fn get(&self, key: &str) -> Result<Option<Bytes>, TransportError> {
        self.link.command(|| self.inner.get(key))
    }

    fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Option<Duration>)>, TransportError> {
        self.link.command(|| self.inner.get_with_ttl(key))
    }

    fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError> {
        self.link.command(|| self.inner.set(key, value, ttl, then))
    }

    fn delete(&self, key: &str, then: &[Outgoing<'_>]) -> Result<bool, TransportError> {
        self.link.command(|| self.inner.delete(key, then))
    }

    fn publish(&self, messages: &[Outgoing<'_>]) -> Result<(), TransportError> {
        self.link.command(|| self.inner.publish(messages))
    }

    fn subscribe(&self, channels: &[&str]) -> Result<Self::Subscription, TransportError> {
        let inner = self.link.command(|| self.inner.subscribe(channels))?;
        Ok(FaultySubscription {
            inner,
            link: Arc::clone(&self.link),
            in_flight: InFlight::default(),
        })
    }

    fn flush_db(&self) -> Result<(), TransportError> {
        self.link.command(|| self.inner.flush_db())
    }

    fn close(&self) {
        self.inner.close();
    }

    fn scan_prefix(
        &self,
        cursor: u64,
        prefix: &str,
        count: usize,
    ) -> Result<(u64, Vec<String>), TransportError> {
        self.link
            .command(|| self.inner.scan_prefix(cursor, prefix, count))
    }

    fn unlink(&self, keys: &[String], then: &[Outgoing<'_>]) -> Result<u64, TransportError> {
        self.link.command(|| self.inner.unlink(keys, then))
    }

    fn lease_acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        min_term: u64,
    ) -> Result<LeaseState, TransportError> {
        self.link
            .command(|| self.inner.lease_acquire(key, holder, ttl, min_term))
    }

    fn lease_renew(
        &self,
        key: &str,
        holder: &str,
        term: u64,
        ttl: Duration,
    ) -> Result<LeaseState, TransportError> {
        self.link
            .command(|| self.inner.lease_renew(key, holder, term, ttl))
    }

    fn lease_query(&self, key: &str) -> Result<LeaseState, TransportError> {
        self.link.command(|| self.inner.lease_query(key))
    }

    fn lease_release(&self, key: &str, holder: &str, term: u64) -> Result<(), TransportError> {
        self.link
            .command(|| self.inner.lease_release(key, holder, term))
    }
}

/// A subscription whose messages cross the faulty link: delayed, lost or
/// duplicated as drawn, and ended by an outage.
#[derive(Debug)]
pub struct FaultySubscription<S> {
    inner: S,
    link: Arc<Link>,
    in_flight: InFlight,
}

impl<S: Subscription> Subscription for FaultySubscription<S> {
    fn recv(&mut self, timeout: Duration) -> Result<Option<Received>, TransportError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.in_flight.ended(&self.link) {
                return Err(TransportError::SubscriptionClosed);
            }
            let now = Instant::now();
            if let Some(message) = self.in_flight.due(now) {
                return Ok(Some(message));
            }
            if now >= deadline {
                return Ok(None);
            }
            let until = self
                .in_flight
                .next()
                .map_or(deadline, |due| due.min(deadline));
            if let Some(message) = self.inner.recv((until - now).min(OUTAGE_CHECK))? {
                self.in_flight.arrive(&self.link, message);
            }
        }
    }
}

fn std_duration(d: aci_core::Duration) -> Duration {
    Duration::from_nanos(d.as_nanos())
}
