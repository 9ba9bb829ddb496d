//! The in-process session cache that keeps validation off the store.
//!
//! A hit costs one hash-map read and two atomic operations. The cache is only ever trusted to
//! say "valid": expiry found in the cache is re-checked against the store, and every
//! revocation — local, or read from the store's revocation log — removes the entry. An entry
//! read from the store while a revocation was being applied is dropped again (the epoch check
//! in [`SessionCache::insert`]), so a slow miss can never re-insert a session that was just
//! revoked.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use dashmap::DashMap;

use crate::id::SessionId;
use crate::session::SessionRecord;
use crate::time::Timestamp;

/// A validated session held in memory.
#[derive(Debug)]
pub(crate) struct CachedSession {
    pub(crate) record: SessionRecord,
    pub(crate) username: Arc<str>,
    /// The latest request seen by this process (milliseconds since the epoch).
    pub(crate) last_seen: AtomicI64,
    /// The `last_seen_at` most recently written to the store.
    pub(crate) persisted_seen: AtomicI64,
}

impl CachedSession {
    pub(crate) fn new(record: SessionRecord, username: Arc<str>) -> Self {
        let seen = record.last_seen_at.unix_millis();
        CachedSession {
            record,
            username,
            last_seen: AtomicI64::new(seen),
            persisted_seen: AtomicI64::new(seen),
        }
    }
}

/// Session-cache lookups since start, from [`crate::Engine::cache_lookups`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLookups {
    /// Checks answered from the cache.
    pub hits: u64,
    /// Checks that went to the session store.
    pub misses: u64,
}

#[derive(Debug)]
pub(crate) struct SessionCache {
    /// By session id: a session token carries its id, and the caller compares the token
    /// with the cached record's verifier.
    by_id: DashMap<SessionId, Arc<CachedSession>>,
    /// Bumped by every revocation before the entry is removed.
    epoch: AtomicU64,
    capacity: usize,
    /// Lookups that found the session, and those that did not (the cache off or untrusted
    /// counts as a miss): for metrics only.
    hits: AtomicU64,
    misses: AtomicU64,
}

impl SessionCache {
    pub(crate) fn new(capacity: usize) -> Self {
        SessionCache {
            by_id: DashMap::new(),
            epoch: AtomicU64::new(0),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub(crate) fn get(&self, id: &SessionId) -> Option<Arc<CachedSession>> {
        if self.capacity == 0 {
            // A cache turned off holds nothing: skip hashing the id on every request.
            return None;
        }
        self.by_id.get(id).map(|entry| Arc::clone(entry.value()))
    }

    /// The epoch to pass to [`SessionCache::insert`]; read it before reading the store.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches `entry` unless the cache is full or a revocation happened since `epoch_before`.
    pub(crate) fn insert(&self, entry: Arc<CachedSession>, epoch_before: u64) {
        if self.capacity == 0 || self.by_id.len() >= self.capacity {
            return;
        }
        let id = entry.record.id.clone();
        self.by_id.insert(id.clone(), entry);
        // A revocation that bumped the epoch after our store read may have run before the
        // insert above and found nothing to remove: drop the entry; the next request re-reads.
        if self.epoch.load(Ordering::SeqCst) != epoch_before {
            self.by_id.remove(&id);
        }
    }

    /// Forgets a session: after a revocation, or when it is found expired.
    pub(crate) fn forget(&self, id: &SessionId) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.by_id.remove(id);
    }

    /// Drops entries whose absolute expiry, or in-memory idle expiry, has passed.
    pub(crate) fn sweep(&self, now: Timestamp, idle_timeout: std::time::Duration) {
        self.by_id.retain(|_, entry| {
            let seen = Timestamp::from_unix_millis(entry.last_seen.load(Ordering::Relaxed));
            now < entry.record.expires_at && now < seen.saturating_add(idle_timeout)
        });
    }

    /// Counts one lookup's result.
    pub(crate) fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Hits and misses counted so far.
    pub(crate) fn lookups(&self) -> CacheLookups {
        CacheLookups {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}
