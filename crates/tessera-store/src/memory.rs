//! In-process stores: for tests, development and single-instance deployments that accept
//! losing every session (and the throttle counters) on restart.
//!
//! Each store keeps its maps behind a std lock. That is fine here because no lock is ever held
//! across an `.await`: every method takes the lock, changes or copies what it needs and drops
//! it before returning, so a task can never be suspended while others wait on the lock.

mod clients;
mod keys;
mod refresh;
mod revocation_log;
mod store;
mod throttle;

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tessera_core::StoreError;

pub use store::MemoryStore;
pub use throttle::MemoryThrottle;

/// A lock whose holder panicked. The maps behind it may be half-updated, so the store fails
/// closed instead of serving them.
#[derive(Debug)]
struct Poisoned;

impl std::fmt::Display for Poisoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a memory store lock was poisoned by a panic")
    }
}

impl std::error::Error for Poisoned {}

impl<T> From<PoisonError<T>> for Poisoned {
    fn from(_: PoisonError<T>) -> Self {
        Poisoned
    }
}

fn read<T>(lock: &RwLock<T>) -> Result<RwLockReadGuard<'_, T>, StoreError> {
    lock.read()
        .map_err(|error| StoreError::unavailable(Poisoned::from(error)))
}

fn write<T>(lock: &RwLock<T>) -> Result<RwLockWriteGuard<'_, T>, StoreError> {
    lock.write()
        .map_err(|error| StoreError::unavailable(Poisoned::from(error)))
}
