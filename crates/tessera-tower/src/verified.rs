//! Credentials already checked, by SHA-256 of the whole credential, until they expire: a
//! token seen before costs a hash and a map read instead of a signature check. Revocation is
//! unaffected — the session is checked against the revocation set on every request.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use crate::principal::Principal;

/// The SHA-256 of a credential: the cache key, so the cache never holds a usable token.
pub(crate) type CredentialHash = [u8; 32];

pub(crate) fn hash(credential: &str) -> CredentialHash {
    Sha256::digest(credential.as_bytes()).into()
}

/// Principals by credential hash, each until a unix time.
#[derive(Debug)]
pub(crate) struct VerifiedCredentials {
    by_hash: DashMap<CredentialHash, (Principal, i64)>,
    capacity: usize,
    /// About how many entries `by_hash` holds: `DashMap::len` would lock every shard on the
    /// path of every never-seen credential. Recounted exactly by every sweep.
    count: AtomicUsize,
}

impl VerifiedCredentials {
    pub(crate) fn new(capacity: usize) -> VerifiedCredentials {
        VerifiedCredentials {
            by_hash: DashMap::new(),
            capacity,
            count: AtomicUsize::new(0),
        }
    }

    /// The principal for `key` while `now` is before its end.
    pub(crate) fn get(&self, key: &CredentialHash, now: i64) -> Option<Principal> {
        let entry = self.by_hash.get(key)?;
        let (principal, until) = entry.value();
        (now < *until).then(|| principal.clone())
    }

    /// Remembers `principal` for `key` until `until`, unless the cache is full.
    pub(crate) fn insert(&self, key: CredentialHash, principal: Principal, until: i64) {
        if self.count.load(Ordering::Relaxed) < self.capacity
            && self.by_hash.insert(key, (principal, until)).is_none()
        {
            self.count.fetch_add(1, Ordering::Relaxed);
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
