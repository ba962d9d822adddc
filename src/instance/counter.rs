//! A counter bumped from many threads without sharing one cache line.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Slots; threads are spread over them round-robin.
const SLOTS: usize = 16;

#[derive(Default)]
#[repr(align(128))]
struct Slot(AtomicU64);

/// A striped counter: each thread bumps its own padded slot, a read sums them.
#[derive(Default)]
pub(crate) struct Counter {
    slots: [Slot; SLOTS],
}

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn my_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SLOT.with(|slot| {
        if slot.get() == usize::MAX {
            slot.set(NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS);
        }
        slot.get()
    })
}

impl Counter {
    /// Adds one.
    #[inline]
    pub(crate) fn increment(&self) {
        self.slots[my_slot()].0.fetch_add(1, Ordering::Relaxed);
    }

    /// The total so far.
    pub(crate) fn get(&self) -> u64 {
        self.slots.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}
