//! In-process stores: for tests, development and single-instance deployments that accept
//! losing every session (and the throttle counters) on restart.
//!
//! [`MemoryStore`] keeps each kind of record in a module of its own (`users`, `sessions`,
//! `refresh`, `keys`, `clients`, `services`, `revocation_log`), as the SQL backends do; the throttle is
//! the separate [`MemoryThrottle`].
//!
//! Each store keeps its maps behind a std lock. That is fine here because no lock is ever held
//! across an `.await`: every method takes the lock, changes or copies what it needs and drops
//! it before returning, so a task can never be suspended while others wait on the lock.

mod audit;
mod clients;
mod keys;
mod refresh;
mod revocation_log;
mod services;
mod sessions;
mod throttle;
mod users;

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tessera_core::StoreError;

pub use throttle::MemoryThrottle;

use audit::Trail;
use clients::Clients;
use keys::Keys;
use refresh::RefreshChains;
use services::Services;
use sessions::Sessions;
use users::Users;

/// Users, sessions, the revocation log, refresh-token chains, signing keys, API clients and
/// downstream services, in memory.
///
/// Implements [`UserStore`](tessera_core::UserStore),
/// [`SessionStore`](tessera_core::SessionStore), [`RefreshStore`](tessera_core::RefreshStore),
/// [`KeyStore`](tessera_core::KeyStore), [`ClientStore`](tessera_core::ClientStore),
/// [`ServiceStore`](tessera_core::ServiceStore),
/// [`RevocationLog`](tessera_core::RevocationLog) and
/// [`AuditStore`](tessera_core::AuditStore); pair it with a [`MemoryThrottle`]. Each
/// kind of record sits behind its own lock so that, say, account look-ups never wait on
/// session writes.
#[derive(Debug, Default)]
pub struct MemoryStore {
    users: RwLock<Users>,
    sessions: RwLock<Sessions>,
    refresh: RwLock<RefreshChains>,
    keys: RwLock<Keys>,
    clients: RwLock<Clients>,
    services: RwLock<Services>,
    /// Taken after any of the others, never before, by the audited changes.
    audit: RwLock<Trail>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

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
