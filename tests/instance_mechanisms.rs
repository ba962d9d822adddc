//! The correctness mechanisms of the near cache, each shown failing-proof
//! with an in-memory transport wrapped to slow down, block or record calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use aci_cache::transports::{MemoryTransport, Outgoing, Transport, TransportError};
use aci_cache::{AdaptiveCache, Builder, Strategy};
use bytes::Bytes;

/// Two barriers: the read has started; the read may answer.
type Gate = (Arc<Barrier>, Arc<Barrier>);

/// A memory transport whose reads can be slowed or held at a gate, and
/// whose writes are recorded.
#[derive(Clone, Default)]
struct Probe {
    inner: MemoryTransport,
    gets: Arc<AtomicU64>,
    get_delay: Arc<Mutex<Duration>>,
    /// When set, a read waits at the first barrier (it has started) and the
    /// second (release) before answering with what it read *before* waiting.
    gate: Arc<Mutex<Option<Gate>>>,
    /// Messages carried by each `set` call.
    set_messages: Arc<Mutex<Vec<usize>>>,
}

impl Transport for Probe {
    type Subscription = <MemoryTransport as Transport>::Subscription;

    fn get(&self, key: &str) -> Result<Option<Bytes>, TransportError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let value = self.inner.get(key);
        let delay = *self.get_delay.lock().unwrap();
        std::thread::sleep(delay);
        let gate = self.gate.lock().unwrap().take();
        if let Some((started, release)) = gate {
            started.wait();
            release.wait();
        }
        value
    }
    fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError> {
        self.set_messages.lock().unwrap().push(then.len());
        self.inner.set(key, value, ttl, then)
    }
    fn delete(&self, key: &str, then: &[Outgoing<'_>]) -> Result<bool, TransportError> {
        self.inner.delete(key, then)
    }
    fn publish(&self, messages: &[Outgoing<'_>]) -> Result<(), TransportError> {
        self.inner.publish(messages)
    }
    fn subscribe(&self, channels: &[&str]) -> Result<Self::Subscription, TransportError> {
        self.inner.subscribe(channels)
    }
    fn flush_db(&self) -> Result<(), TransportError> {
        self.inner.flush_db()
    }
}

fn cache(probe: &Probe, strategy: Strategy) -> AdaptiveCache<Probe> {
    let cache = Builder::new()
        .is_controller(false)
        .transport(probe.clone())
        .unwrap();
    assert!(cache.is_subscribed());
    cache.force_strategy(Some(strategy)).unwrap();
    cache
}

#[test]
fn concurrent_misses_on_one_key_make_one_read() {
    let probe = Probe::default();
    probe
        .inner
        .set("hot", b"v", Duration::from_secs(60), &[])
        .unwrap();
    *probe.get_delay.lock().unwrap() = Duration::from_millis(100);
    let cache = Arc::new(cache(&probe, Strategy::Eager));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || cache.get("hot").unwrap())
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().as_deref(), Some(&b"v"[..]));
    }
    assert_eq!(
        probe.gets.load(Ordering::SeqCst),
        1,
        "single-flight: one GET for 8 misses"
    );
    assert_eq!(cache.instance().reads_in_flight(), 0);
    // And the result was cached.
    cache.get("hot").unwrap();
    assert_eq!(probe.gets.load(Ordering::SeqCst), 1);
}

#[test]
fn a_read_overtaken_by_an_invalidation_is_not_cached() {
    let probe = Probe::default();
    probe
        .inner
        .set("k", b"old", Duration::from_secs(60), &[])
        .unwrap();
    let reader = Arc::new(cache(&probe, Strategy::Eager));
    let writer = cache(
        &Probe {
            inner: probe.inner.clone(),
            ..Probe::default()
        },
        Strategy::Eager,
    );

    let (started, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    *probe.gate.lock().unwrap() = Some((Arc::clone(&started), Arc::clone(&release)));
    let slow_read = {
        let reader = Arc::clone(&reader);
        std::thread::spawn(move || reader.get("k").unwrap())
    };
    started.wait(); // the read has fetched "old" and is held
    writer.set("k", "new").unwrap(); // eager: the invalidation reaches the reader
    assert!(
        wait_for(|| reader.stats().messages_received >= 1),
        "the invalidation arrived while the read was in flight"
    );
    release.wait();
    assert_eq!(
        slow_read.join().unwrap().as_deref(),
        Some(&b"old"[..]),
        "the read answers what it read"
    );

    // ...but did not cache it: the next read goes to the store and sees "new".
    let gets = probe.gets.load(Ordering::SeqCst);
    assert_eq!(reader.get_string("k").unwrap().as_deref(), Some("new"));
    assert_eq!(probe.gets.load(Ordering::SeqCst), gets + 1);
}

#[test]
fn eager_writes_carry_their_invalidation_in_the_same_call() {
    let probe = Probe::default();
    let eager = cache(&probe, Strategy::Eager);
    eager.set("a", "1").unwrap();
    let ttl = cache(&probe, Strategy::Ttl);
    ttl.set("b", "2").unwrap();
    assert_eq!(
        *probe.set_messages.lock().unwrap(),
        [1, 0],
        "eager: SET + PUBLISH in one round trip"
    );
}

#[test]
fn a_writer_reads_its_own_write_at_once() {
    for strategy in Strategy::ALL {
        let probe = Probe::default();
        let cache = cache(&probe, strategy);
        cache.set("k", "mine").unwrap();
        let gets = probe.gets.load(Ordering::SeqCst);
        assert_eq!(cache.get_string("k").unwrap().as_deref(), Some("mine"));
        assert_eq!(
            probe.gets.load(Ordering::SeqCst),
            gets,
            "{strategy}: served from the near cache"
        );
    }
}

#[test]
fn an_outage_is_an_error_unless_the_user_opts_into_misses() {
    let probe = Probe::default();
    let strict = cache(&probe, Strategy::Eager);
    let lenient = Builder::new()
        .is_controller(false)
        .miss_on_error(true)
        .transport(probe.clone())
        .unwrap();
    probe.inner.set_available(false);
    assert!(strict.get("k").unwrap_err().is_unavailable());
    assert!(strict.set("k", "v").unwrap_err().is_unavailable());
    assert_eq!(lenient.get("k").unwrap(), None);
    assert_eq!(lenient.stats().read_errors, 1);
    assert!(wait_for(|| !strict.is_subscribed()), "the loss is noticed");
    assert!(strict.stats().subscription_losses >= 1);
    probe.inner.set_available(true);
    assert!(wait_for(|| strict.is_subscribed()), "and recovered from");
    strict.set("k", "v").unwrap();
}

#[test]
fn deletes_reach_the_fleet_in_every_strategy() {
    let probe = Probe::default();
    let a = cache(&probe, Strategy::Ttl);
    let b = cache(&probe, Strategy::Ttl);
    a.set("k", "v").unwrap();
    assert_eq!(b.get_string("k").unwrap().as_deref(), Some("v"));
    assert!(a.delete("k").unwrap());
    assert!(
        wait_for(|| b.get("k").unwrap().is_none()),
        "ttl or not, a delete is announced"
    );
}

fn wait_for(mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}
