//! Credentials already checked, by SHA-256 of the whole credential, until they expire: a
//! token seen before costs a hash and a map read instead of a signature check (a JWT) or a
//! round trip to Tessera (a session token). Revocation is unaffected — the session is
//! checked against the revocation set on every request.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use crate::principal::Principal;

/// The SHA-256 of a credential: the cache key, so the cache never holds a usable token.
pub(crate) type CredentialHash = [u8; 32];

pub(crate) fn hash(credential: &str) -> CredentialHash {
    Sha256::digest(credential.as_bytes()).into()
}

/// What a credential proved (by default a [`Principal`]), by credential hash, each until a
/// unix time.
#[derive(Debug)]
pub(crate) struct VerifiedCredentials<V = Principal> {
    by_hash: DashMap<CredentialHash, (V, i64)>,
    capacity: usize,
    /// About how many entries `by_hash` holds: `DashMap::len` would lock every shard on the
    /// path of every never-seen credential. Recounted exactly by every sweep.
    count: AtomicUsize,
}

impl<V: Clone> VerifiedCredentials<V> {
    pub(crate) fn new(capacity: usize) -> VerifiedCredentials<V> {
        VerifiedCredentials {
            by_hash: DashMap::new(),
            capacity,
            count: AtomicUsize::new(0),
        }
    }

    /// The value for `key` while `now` is before its end.
    pub(crate) fn get(&self, key: &CredentialHash, now: i64) -> Option<V> {
        let entry = self.by_hash.get(key)?;
        let (value, until) = entry.value();
        (now < *until).then(|| value.clone())
    }

    /// Remembers `value` for `key` until `until`, unless the cache is full.
    pub(crate) fn insert(&self, key: CredentialHash, value: V, until: i64) {
        if self.count.load(Ordering::Relaxed) < self.capacity
            && self.by_hash.insert(key, (value, until)).is_none()
        {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets `key` (its session was revoked).
    pub(crate) fn remove(&self, key: &CredentialHash) {
        if self.by_hash.remove(key).is_some() {
            // The count is approximate between sweeps: never let it wrap below zero.
            let _ = self
                .count
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
                    Some(count.saturating_sub(1))
                });
        }
    }

    /// Drops entries that ended before `now`.
    pub(crate) fn sweep(&self, now: i64) {
        self.by_hash.retain(|_, (_, until)| now < *until);
        // Off the request path, so the exact (all-shard) count is affordable here.
        self.count.store(self.by_hash.len(), Ordering::Relaxed);
    }

    /// Forgets everything (a key vanished: what it vouched for must be verified again).
    pub(crate) fn clear(&self) {
        self.by_hash.clear();
        self.count.store(0, Ordering::Relaxed);
    }

    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}
