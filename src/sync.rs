//! The synchronisation primitives of the read path (single-flight and the
//! near cache's fill tokens), swappable for Shuttle's so that the model
//! check runs the shipped code, not a copy (quick_cache's `shim.rs` does
//! the same). A normal build uses `std`; `RUSTFLAGS="--cfg aci_shuttle"`
//! swaps in Shuttle's, for `cargo test -p aci-cache --lib shuttle` only.
//!
//! Only what is created at run time goes through here: Shuttle's types
//! panic outside a Shuttle test.

#[cfg(all(test, aci_shuttle))]
pub(crate) use shuttle::sync::{
    atomic::{fence, AtomicBool, AtomicU64, Ordering},
    Arc, Mutex, MutexGuard,
};
#[cfg(not(all(test, aci_shuttle)))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicU64, Ordering},
    Arc, Mutex, MutexGuard,
};

/// A value set once and read many times: `std`'s `OnceLock` (lock-free
/// reads), or under Shuttle a mutex it can schedule around.
#[cfg(not(all(test, aci_shuttle)))]
pub(crate) struct SetOnce<T>(std::sync::OnceLock<T>);

#[cfg(not(all(test, aci_shuttle)))]
impl<T: Clone> SetOnce<T> {
    pub(crate) fn new() -> Self {
        SetOnce(std::sync::OnceLock::new())
    }
    /// Sets the value unless one was set already.
    pub(crate) fn set(&self, value: T) {
        let _ = self.0.set(value);
    }
    /// A copy of the value, if set.
    pub(crate) fn get_cloned(&self) -> Option<T> {
        self.0.get().cloned()
    }
}

#[cfg(all(test, aci_shuttle))]
pub(crate) struct SetOnce<T>(Mutex<Option<T>>);

#[cfg(all(test, aci_shuttle))]
impl<T: Clone> SetOnce<T> {
    pub(crate) fn new() -> Self {
        SetOnce(Mutex::new(None))
    }
    pub(crate) fn set(&self, value: T) {
        lock(&self.0).get_or_insert(value);
    }
    pub(crate) fn get_cloned(&self) -> Option<T> {
        lock(&self.0).clone()
    }
}

/// Locks, recovering from poisoning: every critical section on these
/// locks leaves its data consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
