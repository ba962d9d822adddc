//! A counter bumped from many threads without sharing one cache line, and,
//! for the threads that own a slot, without a locked instruction.
//!
//! Each thread claims a slot number once, process-wide, and gives it back
//! when it exits. In every counter, the slot of that number is written by
//! its owner alone, so a bump is a plain load and store (a `lock xadd` costs
//! ~20 cycles even uncontended, which is most of a near-cache hit's
//! bookkeeping). A reader sums the slots. Threads beyond the slots share one
//! more slot, bumped atomically: slower, never wrong.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Slots owned by one thread each; more threads share `Counter::shared`.
const SLOTS: usize = 64;
/// No slot claimed yet.
const UNCLAIMED: usize = usize::MAX;
/// More threads than slots: this one shares the atomic slot.
const SHARED: usize = usize::MAX - 1;

#[derive(Default)]
#[repr(align(128))]
struct Slot(AtomicU64);

/// A striped counter: each thread bumps its own padded slot, a read sums them.
pub(crate) struct Counter {
    slots: [Slot; SLOTS],
    shared: Slot,
}

impl Default for Counter {
    fn default() -> Self {
        Counter {
            slots: std::array::from_fn(|_| Slot::default()),
            shared: Slot::default(),
        }
    }
}

/// Slot numbers given back by threads that exited.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// Slot numbers never handed out start here.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// This thread's slot number; given back when the thread exits.
struct Claim(Cell<usize>);

impl Drop for Claim {
    fn drop(&mut self) {
        let slot = self.0.get();
        if slot < SLOTS {
            // The mutex orders this thread's last bumps before the next
            // owner's first.
            FREE.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(slot);
        }
    }
}

thread_local! {
    static CLAIM: Claim = const { Claim(Cell::new(UNCLAIMED)) };
}

#[cold]
fn claim() -> usize {
    let reused = FREE.lock().unwrap_or_else(PoisonError::into_inner).pop();
    reused.unwrap_or_else(|| {
        // Past the last slot, a thread shares the atomic one until a slot
        // is given back to a thread that starts later (a thread claims once).
        let next = NEXT.fetch_add(1, Ordering::Relaxed);
        if next < SLOTS {
            next
        } else {
            SHARED
        }
    })
}

/// This thread's slot: a number below `SLOTS`, or `SHARED` (also while the
/// thread is exiting and its claim is gone).
#[inline]
fn my_slot() -> usize {
    CLAIM
        .try_with(|c| {
            let slot = c.0.get();
            if slot != UNCLAIMED {
                return slot;
            }
            let slot = claim();
            c.0.set(slot);
            slot
        })
        .unwrap_or(SHARED)
}

impl Counter {
    /// Adds one.
    #[inline]
    pub(crate) fn increment(&self) {
        match self.slots.get(my_slot()) {
            // Only this thread writes this slot: no read-modify-write needed.
            Some(own) => own
                .0
                .store(own.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed),
            None => {
                self.shared.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The total so far.
    pub(crate) fn get(&self) -> u64 {
        self.slots
            .iter()
            .chain([&self.shared])
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_exactly_from_more_threads_than_slots_and_after_they_exit() {
        let counter = Arc::new(Counter::default());
        // Three waves of threads: slots are claimed, given back and reused;
        // the middle wave runs more threads at once than there are slots.
        for threads in [8, SLOTS + 8, 8] {
            let barrier = Arc::new(std::sync::Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (counter, barrier) = (Arc::clone(&counter), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        for _ in 0..1_000 {
                            counter.increment();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        }
        assert_eq!(counter.get(), (8 + SLOTS as u64 + 8 + 8) * 1_000);
    }
}
