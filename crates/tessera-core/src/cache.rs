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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::id::{SessionToken, UserId};
    use crate::session::Transport;

    const MINUTE: Duration = Duration::from_secs(60);

    fn entry(seen: Timestamp, expires_at: Timestamp) -> Arc<CachedSession> {
        let token = SessionToken::generate().unwrap();
        let record = SessionRecord {
            id: token.session_id(),
            verifier: token.verifier(),
            user_id: UserId::generate().unwrap(),
            transport: Transport::Cookie,
            created_at: seen,
            auth_time: seen,
            last_seen_at: seen,
            idle_expires_at: seen.saturating_add(MINUTE),
            expires_at,
            ip: None,
            user_agent: None,
            revoked_at: None,
            parent: None,
        };
        Arc::new(CachedSession::new(record, Arc::from("alice")))
    }

    fn at(minutes: u64) -> Timestamp {
        Timestamp::EPOCH.saturating_add(MINUTE * u32::try_from(minutes).unwrap())
    }

    #[test]
    fn the_capacity_bounds_the_cache() {
        let cache = SessionCache::new(3);
        let entries: Vec<_> = (0..5).map(|_| entry(at(0), at(60))).collect();
        for entry in &entries {
            cache.insert(Arc::clone(entry), cache.epoch());
        }
        assert_eq!(cache.len(), 3);
        let held = entries
            .iter()
            .filter(|entry| cache.get(&entry.record.id).is_some())
            .count();
        assert_eq!(held, 3, "the first three stay; later ones are not cached");
    }

    #[test]
    fn lookups_are_counted_by_outcome() {
        let cache = SessionCache::new(10);
        cache.count(true);
        cache.count(false);
        cache.count(false);
        assert_eq!(cache.lookups(), CacheLookups { hits: 1, misses: 2 });
    }

    #[test]
    fn a_cache_of_capacity_zero_holds_nothing() {
        let cache = SessionCache::new(0);
        let entry = entry(at(0), at(60));
        cache.insert(Arc::clone(&entry), cache.epoch());
        assert_eq!(cache.len(), 0);
        assert!(cache.get(&entry.record.id).is_none());
    }

    #[test]
    fn a_sweep_drops_idle_and_ended_entries_and_keeps_live_ones() {
        let cache = SessionCache::new(10);
        let live = entry(at(10), at(60));
        let idle = entry(at(0), at(60));
        let ended = entry(at(10), at(11));
        let just_idle = entry(at(6), at(60));
        for entry in [&live, &idle, &ended, &just_idle] {
            cache.insert(Arc::clone(entry), cache.epoch());
        }
        // At minute 11, with a 5-minute idle timeout: `idle` was last seen 11 minutes ago,
        // `just_idle` exactly 5, `ended` reached its absolute expiry exactly now, `live` was
        // seen a minute ago.
        cache.sweep(at(11), MINUTE * 5);
        assert!(cache.get(&live.record.id).is_some());
        assert!(cache.get(&idle.record.id).is_none());
        assert!(cache.get(&just_idle.record.id).is_none());
        assert!(cache.get(&ended.record.id).is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn every_forget_moves_the_epoch() {
        let cache = SessionCache::new(10);
        let first = cache.epoch();
        let entry = entry(at(0), at(60));
        cache.forget(&entry.record.id);
        let second = cache.epoch();
        assert_ne!(first, second);
        cache.forget(&entry.record.id);
        assert_ne!(second, cache.epoch(), "a second revocation moves it again");
        // With a moving epoch, a fresh read is still cached: the cache keeps caching after
        // revocations instead of silently going cold.
        cache.insert(Arc::clone(&entry), cache.epoch());
        assert!(cache.get(&entry.record.id).is_some());
    }

    #[test]
    fn a_miss_that_read_before_a_revocation_does_not_reinsert_the_session() {
        let cache = SessionCache::new(10);
        let entry = entry(at(0), at(60));
        // A cache miss reads the epoch, then the store (the session still live there) …
        let epoch_before_read = cache.epoch();
        // … meanwhile the session is revoked and forgotten, finding nothing to remove …
        cache.forget(&entry.record.id);
        // … and the slow miss inserts what it read: it must not stay.
        cache.insert(Arc::clone(&entry), epoch_before_read);
        assert!(cache.get(&entry.record.id).is_none());
        assert_eq!(cache.len(), 0);
    }
}
