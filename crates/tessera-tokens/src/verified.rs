//! Tokens already verified, by SHA-256 of the whole token, until they expire: a token seen
//! before costs a hash and a map read instead of a signature check. Revocation is unaffected
//! — the session is checked on every request after this.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use sha2::{Digest, Sha256};
use tessera_jose::{AccessClaims, VerifyError};

/// Verified tokens remembered at most; beyond it new ones are verified every time.
const CAPACITY: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct VerifiedTokens {
    by_hash: DashMap<[u8; 32], Arc<AccessClaims>>,
    /// About how many entries `by_hash` holds: `DashMap::len` would lock every shard on the
    /// path of every never-seen token. Recounted exactly by every sweep.
    count: AtomicUsize,
}

impl VerifiedTokens {
    /// The claims of `token`, from memory if it was verified before and has not expired
    /// (`exp + leeway`), else from `verify` (only then is the current keyring loaded).
    pub(crate) fn verify(
        &self,
        token: &str,
        now: i64,
        leeway: i64,
        verify: impl FnOnce() -> Result<AccessClaims, VerifyError>,
    ) -> Result<Arc<AccessClaims>, VerifyError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.by_hash.get(&key)
            && now < claims.exp.saturating_add(leeway)
        {
            return Ok(Arc::clone(claims.value()));
        }
        let claims = Arc::new(verify()?);
        if self.count.load(Ordering::Relaxed) < CAPACITY
            && self.by_hash.insert(key, Arc::clone(&claims)).is_none()
        {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(claims)
    }

    /// Drops tokens that have expired.
    pub(crate) fn sweep(&self, now: i64, leeway: i64) {
        self.by_hash
            .retain(|_, claims| now < claims.exp.saturating_add(leeway));
        // Off the request path, so the exact (all-shard) count is affordable here.
        self.count.store(self.by_hash.len(), Ordering::Relaxed);
    }

    /// Forgets everything (a key vanished: what it vouched for must be verified again).
    pub(crate) fn clear(&self) {
        self.by_hash.clear();
        self.count.store(0, Ordering::Relaxed);
    }
}
