//! Single-flight: concurrent misses on one key share one Redis read.

use std::collections::HashMap;
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use aci_transports::TransportError;
use bytes::Bytes;
use compact_str::CompactString;
use event_listener::{Event, EventListener};

/// What a shared read ended with.
pub(crate) type Outcome = Result<Option<Bytes>, Arc<TransportError>>;

/// One read in flight.
#[derive(Default)]
pub(crate) struct Flight {
    outcome: OnceLock<Outcome>,
    done: Event,
}

impl Flight {
    /// The outcome, if the read has finished.
    pub(crate) fn outcome(&self) -> Option<Outcome> {
        self.outcome.get().cloned()
    }

    /// A listener notified when the read finishes. Register it, then check
    /// [`Flight::outcome`] again, so a finish in between is not missed.
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
    /// Joins the read of `key`, leading it if none is in flight.
    pub(crate) fn join(&self, key: &str) -> Role {
        let mut by_key = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = by_key.get(key) {
            return Role::Follow(Arc::clone(flight));
        }
        let flight = Arc::new(Flight::default());
        by_key.insert(CompactString::from(key), Arc::clone(&flight));
        Role::Lead(flight)
    }

    /// Publishes the leader's outcome to the followers and retires the flight.
    pub(crate) fn finish(&self, key: &str, flight: &Flight, outcome: Outcome) {
        let _ = flight.outcome.set(outcome);
        self.by_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
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
        self.by_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_listener::Listener as _;
    use std::time::{Duration, Instant};

    /// The follower's side of `Wait`: look, listen, look again, wait.
    fn follow(flight: &Flight) -> Option<Outcome> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(outcome) = flight.outcome() {
                return Some(outcome);
            }
            let listener = flight.listen();
            if let Some(outcome) = flight.outcome() {
                return Some(outcome);
            }
            listener.wait_deadline(deadline)?;
        }
    }

    #[test]
    fn a_finish_racing_a_follower_never_strands_it() {
        let flights = Arc::new(Flights::default());
        for round in 0..2_000 {
            let Role::Lead(lead) = flights.join("k") else {
                panic!("round {round}: the previous flight was not retired");
            };
            let Role::Follow(flight) = flights.join("k") else {
                panic!("round {round}: a second reader should follow");
            };
            let follower = std::thread::spawn(move || follow(&flight));
            // Finish before, while, or after the follower starts listening.
            match round % 3 {
                0 => {}
                1 => std::thread::yield_now(),
                _ => std::thread::sleep(Duration::from_micros(100)),
            }
            flights.finish("k", &lead, Ok(None));
            let outcome = follower.join().expect("the follower thread");
            assert!(
                matches!(outcome, Some(Ok(None))),
                "round {round}: the follower missed the finish"
            );
        }
    }
}
