//! The hot path: a session token or an access token's session checked against the
//! in-process cache (kept coherent with revocations) or, on a miss, the store.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Engine;
use crate::cache::{CachedSession, SessionCache};
use crate::error::Error;
use crate::id::{SessionId, SessionToken, SessionVerifier};
use crate::session::SessionRecord;
use crate::time::Timestamp;

/// A session that was valid when checked, with its current activity times.
#[derive(Debug, Clone)]
pub struct ValidSession {
    pub(super) entry: Arc<CachedSession>,
    pub(super) last_seen_at: Timestamp,
    pub(super) idle_expires_at: Timestamp,
}

impl ValidSession {
    /// The session's record as of login (its activity times are [`Self::last_seen_at`] and
    /// [`Self::idle_expires_at`]).
    pub fn record(&self) -> &SessionRecord {
        &self.entry.record
    }

    /// The owner's username.
    pub fn username(&self) -> &str {
        &self.entry.username
    }

    /// This request's time, the new last activity.
    pub fn last_seen_at(&self) -> Timestamp {
        self.last_seen_at
    }

    /// When the session ends without another request.
    pub fn idle_expires_at(&self) -> Timestamp {
        self.idle_expires_at
    }
}

/// Usernames cached at most, independently of the session cache (which may be off): a
/// session check that misses the session cache then costs one session-store read, not two.
const USERNAME_CACHE_CAPACITY: usize = 100_000;

impl Engine {
    /// Checks a session token and records the request as activity.
    ///
    /// The hot path: with the session cached this is a SHA-256, one map read, a
    /// constant-time comparison and two atomic operations; the store is written at most once
    /// per [`SessionPolicy::touch_interval`] per session.
    ///
    /// A token whose id names a session but whose secret does not match is refused like an
    /// unknown one, and changes nothing (it does not even evict the cached session).
    ///
    /// A child session (see [`crate::ParentSession`]) is refused here: it is a credential
    /// for its service only, checked through [`Engine::validate_any`] by introspection.
    pub async fn validate(&self, token: &SessionToken) -> Result<ValidSession, Error> {
        let session = self.validate_any(token).await?;
        if session.record().parent.is_some() {
            return Err(Error::Unauthenticated);
        }
        Ok(session)
    }

    /// [`Engine::validate`] that also accepts child sessions, for introspection: a child
    /// whose parent this process knows to be revoked is refused (and so, on a store read,
    /// is one whose parent is revoked or gone).
    pub async fn validate_any(&self, token: &SessionToken) -> Result<ValidSession, Error> {
        let session = self.validate_session(token).await?;
        if let Some(parent) = &session.record().parent
            && self.inner.revoked.contains_key(&parent.id)
        {
            self.inner.cache.forget(&session.record().id);
            return Err(Error::Unauthenticated);
        }
        Ok(session)
    }

    async fn validate_session(&self, token: &SessionToken) -> Result<ValidSession, Error> {
        let id = token.session_id();
        let verifier = token.verifier();
        let now = self.now();
        if let Some(entry) = self.cached(|cache| cache.get(&id), now) {
            let record = &entry.record;
            if !record.verifier.matches(&verifier) {
                return Err(Error::Unauthenticated);
            }
            if now >= record.expires_at {
                self.inner.cache.forget(&record.id);
                return Err(Error::SessionExpired);
            }
            let seen = Timestamp::from_unix_millis(entry.last_seen.load(Ordering::Relaxed));
            if now
                < self
                    .inner
                    .config
                    .session
                    .idle_expiry(seen, record.expires_at)
            {
                return self.record_activity(entry, now).await;
            }
            // Idle by this process's count; another instance may have seen later activity,
            // so the store decides.
            self.inner.cache.forget(&record.id);
        }
        self.validate_from_store(&id, &verifier, now).await
    }

    /// A session read from the store, if it may be used at `now`: unrevoked (by its record
    /// and by the revocation log), unexpired, and its user still there.
    pub(crate) async fn admit(
        &self,
        record: Option<SessionRecord>,
        now: Timestamp,
    ) -> Result<Arc<CachedSession>, Error> {
        let record = match record {
            Some(record)
                if record.revoked_at.is_none() && !self.inner.revoked.contains_key(&record.id) =>
            {
                record
            }
            _ => return Err(Error::Unauthenticated),
        };
        if now >= record.expires_at || now >= record.idle_expires_at {
            return Err(Error::SessionExpired);
        }
        if let Some(parent) = &record.parent
            && !self.parent_is_live(&parent.id).await?
        {
            return Err(Error::Unauthenticated);
        }
        let username = match self.inner.usernames.get(&record.user_id) {
            Some(username) => username.clone(),
            None => match self.inner.stores.users.user_by_id(&record.user_id).await? {
                Some(user) => {
                    let username: Arc<str> = Arc::from(user.user.username);
                    if self.inner.usernames.len() < USERNAME_CACHE_CAPACITY {
                        self.inner
                            .usernames
                            .insert(record.user_id.clone(), Arc::clone(&username));
                    }
                    username
                }
                None => return Err(Error::Unauthenticated),
            },
        };
        Ok(Arc::new(CachedSession::new(record, username)))
    }

    /// A cache lookup, unless the revocation feed is too old for the cache to be trusted.
    pub(crate) fn cached(
        &self,
        lookup: impl FnOnce(&SessionCache) -> Option<Arc<CachedSession>>,
        now: Timestamp,
    ) -> Option<Arc<CachedSession>> {
        if let Some(max) = self.inner.config.revocation_max_staleness {
            let synced = Timestamp::from_unix_millis(
                self.inner.revocations_synced_at.load(Ordering::SeqCst),
            );
            if now.duration_since(synced) > max {
                self.inner.cache.count(false);
                return None;
            }
        }
        let found = lookup(&self.inner.cache);
        self.inner.cache.count(found.is_some());
        found
    }

    async fn validate_from_store(
        &self,
        id: &SessionId,
        verifier: &SessionVerifier,
        now: Timestamp,
    ) -> Result<ValidSession, Error> {
        let inner = &self.inner;
        let epoch = inner.cache.epoch();
        let record = inner
            .stores
            .sessions
            .session_by_id(id)
            .await?
            .filter(|record| record.verifier.matches(verifier));
        let entry = self.admit(record, now).await?;
        inner.cache.insert(Arc::clone(&entry), epoch);
        self.record_activity(entry, now).await
    }

    /// Extends the idle expiry in memory, and in the store once per touch interval.
    async fn record_activity(
        &self,
        entry: Arc<CachedSession>,
        now: Timestamp,
    ) -> Result<ValidSession, Error> {
        let policy = &self.inner.config.session;
        let now_millis = now.unix_millis();
        entry.last_seen.fetch_max(now_millis, Ordering::Relaxed);
        let persisted = entry.persisted_seen.load(Ordering::Relaxed);
        let due =
            now.duration_since(Timestamp::from_unix_millis(persisted)) >= policy.touch_interval;
        // Only the request that wins the exchange writes; concurrent ones go on unblocked.
        if due
            && entry
                .persisted_seen
                .compare_exchange(persisted, now_millis, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let record = &entry.record;
            let idle_expires_at = policy.idle_expiry(now, record.expires_at);
            match self
                .inner
                .stores
                .sessions
                .touch_session(&record.id, now, idle_expires_at)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    // Revoked or deleted meanwhile (or another instance wrote a later time).
                    let current = self.inner.stores.sessions.session_by_id(&record.id).await?;
                    if current.is_none_or(|stored| stored.revoked_at.is_some()) {
                        self.inner.cache.forget(&record.id);
                        return Err(Error::Unauthenticated);
                    }
                }
                Err(error) => {
                    // Let the next request retry the write; this one fails closed.
                    entry.persisted_seen.store(persisted, Ordering::Relaxed);
                    return Err(error.into());
                }
            }
        }
        let idle_expires_at = policy.idle_expiry(now, entry.record.expires_at);
        Ok(ValidSession {
            entry,
            last_seen_at: now,
            idle_expires_at,
        })
    }

    /// The session an access token names, for requests that carry a verified JWT: from the
    /// cache (kept coherent with revocations) or, on a miss, the store. JWT requests do not
    /// slide the idle expiry — refreshes do.
    pub async fn session_for_access(&self, session_id: &SessionId) -> Result<ValidSession, Error> {
        let now = self.now();
        let entry = match self.cached(|cache| cache.get(session_id), now) {
            Some(entry) => entry,
            None => {
                let epoch = self.inner.cache.epoch();
                let entry = self.live_session(session_id, now).await?;
                self.inner.cache.insert(Arc::clone(&entry), epoch);
                entry
            }
        };
        let record = &entry.record;
        if record.parent.is_some() {
            // Access tokens name the sessions of logins, never a service's child session.
            return Err(Error::Unauthenticated);
        }
        let seen = Timestamp::from_unix_millis(entry.last_seen.load(Ordering::Relaxed));
        let idle_expires_at = self
            .inner
            .config
            .session
            .idle_expiry(seen, record.expires_at);
        if now >= record.expires_at || now >= idle_expires_at {
            return Err(Error::SessionExpired);
        }
        Ok(ValidSession {
            entry,
            last_seen_at: seen,
            idle_expires_at,
        })
    }

    /// A live session from the store (refreshes need its current revocation and idle state,
    /// not a cached view), with its owner's name; `Unauthenticated` if revoked or unknown,
    /// `SessionExpired` if expired.
    pub(super) async fn live_session(
        &self,
        id: &SessionId,
        now: Timestamp,
    ) -> Result<Arc<CachedSession>, Error> {
        let record = self.inner.stores.sessions.session_by_id(id).await?;
        self.admit(record, now).await
    }
}
