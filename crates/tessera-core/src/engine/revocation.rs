//! Ending sessions: logout, listing, revocation by the owner or an administrator, following
//! the revocation log that other processes write, readiness, and the purge of ended records.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Engine, ValidSession};
use crate::audit::{Actor, AuditEvent, AuditKind, Audited};
use crate::error::Error;
use crate::id::{SessionId, UserId};
use crate::session::SessionRecord;
use crate::store::{Revocation, RevocationKind, StoreError};
use crate::time::Timestamp;

/// Which of a user's sessions to revoke in bulk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeScope {
    /// All but the caller's own.
    Others,
    /// All, the caller's own included.
    All,
}

/// What [`Engine::remembered_revocations`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RememberedRevocations {
    /// Revoked sessions.
    pub sessions: usize,
    /// Users whose access tokens issued before a change of standing are refused.
    pub users: usize,
}

/// The revocation log has not been read for longer than the configured bound.
#[derive(Debug, thiserror::Error)]
#[error("the revocation log has not been read within revocation_max_staleness")]
struct StaleRevocationFeed;

impl Engine {
    /// Ends a session and every credential of it. Records `logout` (the session's user as
    /// the actor) with the revocation.
    pub async fn logout(&self, session: &ValidSession) -> Result<(), Error> {
        let id = &session.record().id;
        let user_id = &session.record().user_id;
        let event = self
            .audit_event(AuditKind::Logout)
            .actor(Actor::User(user_id.clone()))
            .user(user_id)
            .session(id);
        if self.revoke_audited(id, event).await? {
            tracing::info!(target: "tessera::audit", event = "logout", user_id = %session.record().user_id, session_id = %id);
        } else if self
            .inner
            .stores
            .sessions
            .log_lost_revocation(id, user_id, self.now())
            .await?
        {
            // Proved live a moment ago (from this process's cache), yet unknown to the store:
            // a store that forgot it. The log now names it, so other instances drop it too.
            tracing::warn!(session_id = %id, "logout of a session the session store had lost; revocation logged");
            self.revoke_children(id, user_id).await?;
        }
        self.forget_revoked(id);
        Ok(())
    }

    /// The user's live sessions, newest first.
    pub async fn sessions_of(&self, user_id: &UserId) -> Result<Vec<SessionRecord>, Error> {
        let mut sessions = self
            .inner
            .stores
            .sessions
            .sessions_of_user(user_id, self.now())
            .await?;
        // The store's activity times lag by up to the touch interval; this process may know
        // better for the sessions it has cached.
        for session in &mut sessions {
            if let Some(entry) = self.inner.cache.get(&session.id) {
                let seen = Timestamp::from_unix_millis(entry.last_seen.load(Ordering::Relaxed));
                if seen > session.last_seen_at {
                    session.last_seen_at = seen;
                    session.idle_expires_at = self
                        .inner
                        .config
                        .session
                        .idle_expiry(seen, session.expires_at);
                }
            }
        }
        Ok(sessions)
    }

    /// Revokes one of `owner`'s sessions. [`Error::SessionNotFound`] if it is not theirs or
    /// not live, so nobody learns about other users' sessions. Records `session_revoked`
    /// with `owner` as the actor.
    pub async fn revoke_session_of(&self, owner: &UserId, id: &SessionId) -> Result<(), Error> {
        let sessions = &self.inner.stores.sessions;
        match sessions.session_by_id(id).await? {
            Some(record) if &record.user_id == owner && record.is_live(self.now()) => {}
            _ => return Err(Error::SessionNotFound),
        }
        let event = self
            .audit_event(AuditKind::SessionRevoked)
            .actor(Actor::User(owner.clone()))
            .user(owner)
            .session(id);
        self.revoke_one(id, event).await
    }

    /// Revokes a session by id, whoever owns it (administration). Records
    /// `session_revoked` with the context's actor.
    pub async fn revoke_session(&self, id: &SessionId) -> Result<(), Error> {
        let mut event = self.audit_event(AuditKind::SessionRevoked).session(id);
        if self.audits() {
            // The event names the owner; only administration pays for the read.
            event.user_id = self
                .inner
                .stores
                .sessions
                .session_by_id(id)
                .await?
                .map(|record| record.user_id);
        }
        self.revoke_one(id, event).await
    }

    /// Revokes a session, recording `event` with it; [`Error::SessionNotFound`] if it was
    /// unknown or revoked already (and nothing is recorded).
    async fn revoke_one(&self, id: &SessionId, event: AuditEvent) -> Result<(), Error> {
        if !self.revoke_audited(id, event).await? {
            self.inner.cache.forget(id);
            return Err(Error::SessionNotFound);
        }
        tracing::info!(target: "tessera::audit", event = "session_revoked", session_id = %id);
        self.forget_revoked(id);
        Ok(())
    }

    /// The store's revoke, with `event` recorded in its transaction when the store can, or
    /// after it; only if the session was revoked now.
    pub(super) async fn revoke_audited(
        &self,
        id: &SessionId,
        event: AuditEvent,
    ) -> Result<bool, Error> {
        let sessions = &self.inner.stores.sessions;
        let owner = event.user_id.clone();
        let revoked = if self.audits() {
            sessions
                .revoke_session_audited(id, self.now(), &event)
                .await?
        } else {
            Audited::left_to_caller(sessions.revoke_session(id, self.now()).await?)
        };
        let revoked = self.settle(revoked, |revoked| *revoked, event).await;
        if revoked {
            // Its child sessions end with it (they share its user).
            let owner = match owner {
                Some(owner) => Some(owner),
                None => sessions
                    .session_by_id(id)
                    .await?
                    .map(|record| record.user_id),
            };
            if let Some(owner) = owner {
                self.revoke_children(id, &owner).await?;
            }
        }
        Ok(revoked)
    }

    /// The store's bulk revoke, with `event` recorded (with `count` added) in its
    /// transaction when the store can, or after it; only if something was revoked.
    async fn revoke_all_audited(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        event: AuditEvent,
    ) -> Result<Vec<SessionId>, Error> {
        let sessions = &self.inner.stores.sessions;
        let now = self.now();
        let revoked = if self.audits() {
            sessions
                .revoke_user_sessions_audited(user_id, keep, now, &event)
                .await?
        } else {
            Audited::left_to_caller(sessions.revoke_user_sessions(user_id, keep, now).await?)
        };
        let count = revoked.value.len();
        Ok(self
            .settle(revoked, |ids| !ids.is_empty(), event.detail("count", count))
            .await)
    }

    /// Revokes the caller's other sessions, or all of them. Returns how many were revoked.
    /// Records `sessions_revoked` (the caller as the actor, `scope` and `count` in the
    /// detail) if there were any.
    ///
    /// A sensitive action: without a recent authentication
    /// ([`Engine::require_recent_authentication`]) it fails with
    /// [`Error::ReauthenticationRequired`] and revokes nothing, so a stolen session cannot
    /// lock its owner out of every other device.
    pub async fn revoke_sessions(
        &self,
        current: &ValidSession,
        scope: RevokeScope,
    ) -> Result<usize, Error> {
        self.require_recent_authentication(current).await?;
        let record = current.record();
        let (keep, scope_name) = match scope {
            RevokeScope::Others => (Some(&record.id), "others"),
            RevokeScope::All => (None, "all"),
        };
        let event = self
            .audit_event(AuditKind::SessionsRevoked)
            .actor(Actor::User(record.user_id.clone()))
            .user(&record.user_id)
            .session(&record.id)
            .detail("scope", scope_name);
        let revoked = self
            .revoke_all_audited(&record.user_id, keep, event)
            .await?;
        let count = revoked.len();
        tracing::info!(target: "tessera::audit", event = "sessions_revoked", user_id = %record.user_id, count);
        self.revoked(revoked);
        Ok(count)
    }

    /// Revokes every session of a user (administration). Returns how many were revoked.
    /// Records `sessions_revoked` (the context's actor) if there were any.
    pub async fn revoke_user_sessions(&self, user_id: &UserId) -> Result<usize, Error> {
        let event = self
            .audit_event(AuditKind::SessionsRevoked)
            .user(user_id)
            .detail("scope", "all");
        let revoked = self.revoke_all_audited(user_id, None, event).await?;
        let count = revoked.len();
        tracing::info!(target: "tessera::audit", event = "sessions_revoked", user_id = %user_id, count);
        self.revoked(revoked);
        Ok(count)
    }

    /// Succeeds if every store answers and the revocation feed is within its staleness bound.
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.inner.stores.users.ping().await?;
        self.inner.stores.sessions.ping().await?;
        match self.inner.config.revocation_max_staleness {
            Some(max) if self.revocation_feed_age() > max => {
                Err(StoreError::unavailable(StaleRevocationFeed))
            }
            _ => Ok(()),
        }
    }

    /// Applies revocations written to the store by other processes (the CLI, other
    /// instances) to the cache. Returns how many were applied.
    pub async fn sync_revocations(&self) -> Result<usize, StoreError> {
        const BATCH: usize = 1000;
        // Freshness counts from before the read: whatever was logged before this instant is
        // applied when it succeeds.
        let started = self.now();
        let mut applied = 0;
        loop {
            let after = self.inner.revocation_cursor.load(Ordering::SeqCst);
            let batch = self
                .inner
                .stores
                .sessions
                .revocations_since(after, BATCH)
                .await?;
            for revocation in &batch {
                match &revocation.kind {
                    RevocationKind::Session(id) => {
                        self.inner.revoked.insert(id.clone(), revocation.revoked_at);
                        self.inner.cache.forget(id);
                    }
                    RevocationKind::User => {
                        self.remember_stale(&revocation.user_id, revocation.stale_before());
                    }
                }
            }
            applied += batch.len();
            if !batch.is_empty() {
                self.log_grew();
            }
            if let Some(last) = batch.last() {
                self.inner
                    .revocation_cursor
                    .fetch_max(last.sequence, Ordering::SeqCst);
            }
            if batch.len() < BATCH {
                self.inner
                    .revocations_synced_at
                    .fetch_max(started.unix_millis(), Ordering::SeqCst);
                return Ok(applied);
            }
        }
    }

    /// Deletes ended sessions, expired refresh tokens and old revocation-log entries in
    /// batches, yielding between them so requests are never stalled, and trims the cache.
    /// Returns how many records went.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        const BATCH: usize = 500;
        let now = self.now();
        self.inner
            .cache
            .sweep(now, self.inner.config.session.idle_timeout);
        let forget_before = now.saturating_sub(self.inner.config.revocation_retention);
        self.inner
            .revoked
            .retain(|_, revoked_at| *revoked_at >= forget_before);
        self.inner
            .stale_users
            .retain(|_, stale_before| *stale_before >= forget_before);
        // The store's idle expiry lags activity this process has seen by up to one touch
        // interval; purging only what ended that long ago never deletes a session a cache
        // still considers live.
        let cutoff = now.saturating_sub(self.inner.config.session.touch_interval);
        let mut total = 0;
        loop {
            let removed = self
                .inner
                .stores
                .sessions
                .purge_expired(cutoff, self.inner.config.revocation_retention, BATCH)
                .await?;
            total += removed;
            if removed < BATCH as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        loop {
            let removed = self
                .inner
                .stores
                .refresh
                .purge_refresh(cutoff, BATCH)
                .await?;
            total += removed;
            if removed < BATCH as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// How long ago the revocation log was last read successfully.
    pub fn revocation_feed_age(&self) -> Duration {
        let synced =
            Timestamp::from_unix_millis(self.inner.revocations_synced_at.load(Ordering::SeqCst));
        self.now().duration_since(synced)
    }

    pub(super) fn revoked(&self, ids: Vec<SessionId>) {
        for id in &ids {
            self.forget_revoked(id);
        }
    }

    /// Drops a session this process just revoked from the cache and remembers the revocation
    /// without waiting for the log to come round.
    pub(crate) fn forget_revoked(&self, id: &SessionId) {
        self.inner.revoked.insert(id.clone(), self.now());
        self.inner.cache.forget(id);
        self.log_grew();
    }

    /// Wakes whoever waits on [`Engine::revocation_log_grew`].
    pub(super) fn log_grew(&self) {
        self.inner
            .log_grew
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// A signal that changes whenever this process knows the revocation log grew: it
    /// revoked a session or marked a user stale itself, or [`Engine::sync_revocations`]
    /// read entries other processes wrote. A reader of the log (the revocation stream) marks
    /// the signal seen, reads the log, and waits for the next change — so nothing logged
    /// after its read waits for a poll.
    pub fn revocation_log_grew(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.log_grew.subscribe()
    }

    /// Revokes a session by id if it is still live; `false` if it was not.
    pub async fn revoke_quietly(&self, id: &SessionId) -> Result<bool, Error> {
        match self.revoke_session(id).await {
            Ok(()) => Ok(true),
            Err(Error::SessionNotFound) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Revocations after `after`, oldest first, at most `limit`: the feed verifiers outside
    /// the server follow.
    pub async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Revocation>, Error> {
        Ok(self
            .inner
            .stores
            .sessions
            .revocations_since(after, limit)
            .await?)
    }

    /// The newest revocation sequence.
    pub async fn revocation_cursor(&self) -> Result<u64, Error> {
        Ok(self.inner.stores.sessions.revocation_cursor().await?)
    }
}
