//! Single-flight: concurrent misses on one key share one Redis read.
//!
//! Two rules keep sharing from serving what an invalidation retired:
//!
//! - **A reader joins only a read that began after everything it has seen.**
//!   Each flight carries the fill token of its start (the key's generation
//!   and the near cache's epoch). A reader that finds the key's generation
//!   moved since — an invalidation, a local write or delete, a dropped near
//!   cache — does not join: it leads a new read, which replaces the old
//!   flight for later readers. (Sharing a stripe with an invalidated key
//!   costs at worst a second read, never a stale value.)
//! - **A leader that gives up does not fail its followers.** A read dropped
//!   unfinished (its task cancelled, its caller gone) settles as
//!   [`Settled::Abandoned`]; each follower then looks the key up again and
//!   one of them leads the next read.

use std::collections::HashMap;

use aci_transports::TransportError;
use bytes::Bytes;
use compact_str::CompactString;
use event_listener::{Event, EventListener};

use crate::near::FillToken;
use crate::sync::{fence, lock, Arc, Mutex, Ordering, SetOnce};

/// What a shared read ended with.
pub(crate) type Outcome = Result<Option<Bytes>, std::sync::Arc<TransportError>>;

/// How a flight ended.
#[derive(Clone, Debug)]
pub(crate) enum Settled {
    /// The leader's read returned.
    Read(Outcome),
    /// The leader dropped its read unfinished: look up again.
    Abandoned,
}

/// One read in flight.
pub(crate) struct Flight {
    settled: SetOnce<Settled>,
    done: Event,
    /// The near cache's state when the read began.
    pub(crate) token: FillToken,
}

impl Flight {
    /// How the read ended, if it has.
    pub(crate) fn settled(&self) -> Option<Settled> {
        self.settled.get_cloned()
    }

    /// A listener notified when the read finishes. Register it, then check
    /// [`Flight::settled`] again, so a finish in between is not missed.
    pub(crate) fn listen(&self) -> EventListener {
        self.done.listen()
    }
}

/// The reads in flight, by stored key.
#[derive(Default)]
pub(crate) struct Flights {
    /// Keys held inline up to 24 bytes (no allocation per miss for most
    /// keys), hashed as the near cache hashes its keys (quick_cache's seeded
    /// hasher, foldhash today): SipHash cost more than the map's lookup.
    by_key: Mutex<HashMap<CompactString, Arc<Flight>, quick_cache::DefaultHashBuilder>>,
}

/// Whether this caller leads the read or waits for another's.
pub(crate) enum Role {
    /// Read from Redis, then call [`Flights::finish`].
    Lead(Arc<Flight>),
    /// Wait for the leader.
    Follow(Arc<Flight>),
}

impl Flights {
    /// Joins the read of `key` if one is in flight that began after
    /// everything this reader has seen (`current` says whether a flight's
    /// token is still current); otherwise leads a new one, whose token
    /// `begin` takes.
    pub(crate) fn join(
        &self,
        key: &str,
        begin: impl FnOnce() -> FillToken,
        current: impl FnOnce(&FillToken) -> bool,
    ) -> Role {
        let mut by_key = lock(&self.by_key);
        if let Some(flight) = by_key.get(key) {
            if current(&flight.token) {
                return Role::Follow(Arc::clone(flight));
            }
        }
        let flight = Arc::new(Flight {
            settled: SetOnce::new(),
            done: Event::new(),
            token: begin(),
        });
        // Replaces a flight that began before an invalidation: its own
        // followers still get its answer; later readers get this one.
        by_key.insert(CompactString::from(key), Arc::clone(&flight));
        Role::Lead(flight)
    }

    /// Publishes how the leader's read ended to the followers and retires
    /// the flight (unless a newer flight of the key replaced it).
    pub(crate) fn finish(&self, key: &str, flight: &Arc<Flight>, settled: Settled) {
        flight.settled.set(settled);
        {
            let mut by_key = lock(&self.by_key);
            if by_key.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
                by_key.remove(key);
            }
        }
        // Wake the followers, if any listens: notifying an `Event` nobody
        // ever listened to allocates its listener list, on every read miss.
        // A follower registers, then looks at the outcome again (both behind
        // a SeqCst fence, in `listen`); here the outcome is set, then the
        // listeners are counted behind one: one of the two sees the other.
        fence(Ordering::SeqCst);
        if flight.done.total_listeners() > 0 {
            flight.done.notify(usize::MAX);
        }
    }

    /// Reads in flight.
    pub(crate) fn len(&self) -> usize {
        lock(&self.by_key).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::near::NearCache;
    use event_listener::Listener as _;
    use std::time::{Duration, Instant};

    /// The follower's side of `Wait`: look, listen, look again, wait.
    fn follow(flight: &Flight) -> Option<Settled> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(settled) = flight.settled() {
                return Some(settled);
            }
            let listener = flight.listen();
            if let Some(settled) = flight.settled() {
                return Some(settled);
            }
            listener.wait_deadline(deadline)?;
        }
    }

    fn join(flights: &Flights, near: &NearCache, key: &str) -> Role {
        flights.join(key, || near.begin_fill(key), |t| near.is_current(t))
    }

    #[test]
    fn a_finish_racing_a_follower_never_strands_it() {
        let flights = Arc::new(Flights::default());
        let near = NearCache::new(10, 1 << 20, 1 << 19, aci_core::Duration::from_secs(1));
        for round in 0..2_000 {
            let Role::Lead(lead) = join(&flights, &near, "k") else {
                panic!("round {round}: the previous flight was not retired");
            };
            let Role::Follow(flight) = join(&flights, &near, "k") else {
                panic!("round {round}: a second reader should follow");
            };
            let follower = std::thread::spawn(move || follow(&flight));
            // Finish before, while, or after the follower starts listening.
            match round % 3 {
                0 => {}
                1 => std::thread::yield_now(),
                _ => std::thread::sleep(Duration::from_micros(100)),
            }
            flights.finish("k", &lead, Settled::Read(Ok(None)));
            let outcome = follower.join().expect("the follower thread");
            assert!(
                matches!(outcome, Some(Settled::Read(Ok(None)))),
                "round {round}: the follower missed the finish"
            );
        }
    }

    #[test]
    fn a_reader_after_an_invalidation_leads_a_new_read() {
        let flights = Flights::default();
        let near = NearCache::new(10, 1 << 20, 1 << 19, aci_core::Duration::from_secs(1));
        let Role::Lead(old) = join(&flights, &near, "k") else {
            panic!("first reader leads");
        };
        near.invalidate("k");
        let Role::Lead(new) = join(&flights, &near, "k") else {
            panic!("a reader after the invalidation joined the read before it");
        };
        // Later readers join the newer read; the old one's finish leaves it.
        assert!(matches!(join(&flights, &near, "k"), Role::Follow(f) if Arc::ptr_eq(&f, &new)));
        flights.finish("k", &old, Settled::Read(Ok(None)));
        assert_eq!(flights.len(), 1, "the newer flight is still in flight");
        assert!(matches!(join(&flights, &near, "k"), Role::Follow(f) if Arc::ptr_eq(&f, &new)));
        flights.finish("k", &new, Settled::Abandoned);
        assert_eq!(flights.len(), 0);
    }
}
