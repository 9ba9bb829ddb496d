//! The token transport: refresh-token chains and the access grants the server signs.
//!
//! A token-transport session hands the client a short-lived access token (a JWT whose `sid`
//! is the session id, signed by the server) and an opaque refresh token. Every refresh spends
//! the refresh token and issues a successor pair. Two rules make rotation safe:
//!
//! - **Grace.** A spent token presented again within `refresh_grace` of its use, while its
//!   immediate successor is still unused, gets the *same* successor pair back — concurrent
//!   tabs and lost responses never fork the chain or log anyone out.
//! - **Theft.** Presented any other time, it is treated as stolen: the whole session, and so
//!   every credential of it, is revoked.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Engine, ValidSession};
use crate::audit::{Actor, AuditKind, Outcome};
use crate::cache::CachedSession;
use crate::error::Error;
use crate::id::{RefreshToken, SessionId, TokenId, UserId};
use crate::session::SessionRecord;
use crate::store::{RefreshRecord, Rotation};
use crate::time::Timestamp;
use crate::user::{CustomClaims, Roles, Standing};

/// Lifetimes of the token transport's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Access-token lifetime. Defaults to `5m`.
    pub access_ttl: Duration,
    /// Refresh-token lifetime, never beyond the session's absolute expiry. Defaults to `30d`.
    pub refresh_ttl: Duration,
    /// How long a spent refresh token still returns its successor. Defaults to `10s`.
    pub refresh_grace: Duration,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            access_ttl: Duration::from_secs(5 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            refresh_grace: Duration::from_secs(10),
        }
    }
}

/// What an access token must say; the server turns it into a signed JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    /// `jti`.
    pub token_id: String,
    /// `sid`.
    pub session_id: SessionId,
    /// `sub`.
    pub user_id: UserId,
    /// `iat`.
    pub issued_at: Timestamp,
    /// `exp`: never after the session's absolute expiry.
    pub expires_at: Timestamp,
    /// `auth_time`: when the user last proved their password for the session, as the
    /// session record said when the grant was made.
    pub auth_time: Timestamp,
    /// `roles`: the user's roles when the grant was made.
    pub roles: Roles,
    /// Extra top-level claims: the user's custom claims when the grant was made.
    pub claims: CustomClaims,
}

/// A refresh token and the access grant issued with it.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// The opaque refresh token; hand it to the client and forget it.
    pub refresh_token: RefreshToken,
    /// When the refresh token stops being accepted.
    pub refresh_expires_at: Timestamp,
    /// The access token to sign.
    pub access: AccessGrant,
}

/// A successful refresh.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The session the tokens belong to.
    pub session: ValidSession,
    /// The successor pair (the same one again for a retry inside the grace window).
    pub tokens: TokenGrant,
}

impl Engine {
    /// Starts the refresh chain of a session that logged in with the token transport.
    pub async fn issue_tokens(&self, session: &ValidSession) -> Result<TokenGrant, Error> {
        let now = self.now();
        let record = session.record();
        let standing = self.standing_for_tokens(&record.user_id).await?;
        let refresh_token = RefreshToken::generate()?;
        let chain_start = self.refresh_record(&refresh_token, record, now)?;
        self.inner
            .stores
            .refresh
            .insert_refresh(&chain_start)
            .await?;
        let issued_at = self.issue_time(&record.user_id, now).await;
        Ok(grant(
            refresh_token,
            &chain_start,
            record,
            standing,
            issued_at,
        ))
    }

    /// The user's standing for a new access token: read afresh (so a refresh after a role
    /// change carries the new roles), and refused like a dead refresh token when the account
    /// is disabled or gone.
    async fn standing_for_tokens(&self, user_id: &UserId) -> Result<Standing, Error> {
        match self.inner.stores.users.user_by_id(user_id).await? {
            Some(record) if !record.standing.disabled => Ok(record.standing),
            _ => Err(Error::InvalidGrant),
        }
    }

    /// Rotates a refresh token: a new pair for a live token, the same pair again for a retry
    /// inside the grace window, and revocation of the whole session for a reuse outside it.
    pub async fn refresh(&self, token: &RefreshToken) -> Result<Refreshed, Error> {
        let now = self.now();
        let stores = &self.inner.stores;
        let parent_hash = token.hash();
        let Some(parent) = stores.refresh.refresh_by_token(&parent_hash).await? else {
            return Err(Error::InvalidGrant);
        };
        let session =
            self.live_session(&parent.session_id, now)
                .await
                .map_err(|error| match error {
                    Error::Unauthenticated | Error::SessionExpired => Error::InvalidGrant,
                    other => other,
                })?;
        let (spent_at, successor) = match parent.spent_at {
            Some(spent_at) => {
                let successor = match parent.successor_hash {
                    Some(hash) => stores.refresh.refresh_by_token(&hash).await?,
                    None => None,
                };
                (spent_at, successor)
            }
            None => {
                if now >= parent.expires_at {
                    return Err(Error::InvalidGrant);
                }
                let successor_token = token.successor(&self.inner.rotation_key);
                let successor = self.refresh_record(&successor_token, &session.record, now)?;
                // Read before the rotation commits: with the user store down the refresh fails
                // having changed nothing, and the client's retry after the outage still works
                // (a failure after the rotation would make that retry, once past the grace
                // window, look like reuse of a spent token and revoke the session).
                let standing = self.standing_for_tokens(&session.record.user_id).await?;
                match stores
                    .refresh
                    .rotate_refresh(&parent_hash, &successor, now)
                    .await?
                {
                    Rotation::Rotated => {
                        let session = self.refreshed_activity(session, now).await?;
                        tracing::debug!(session_id = %successor.session_id, "refresh token rotated");
                        let tokens = self
                            .fresh_grant(successor_token, &successor, session.record(), standing)
                            .await;
                        return Ok(Refreshed { session, tokens });
                    }
                    Rotation::AlreadySpent {
                        spent_at,
                        successor,
                    } => (spent_at, successor),
                    Rotation::Unknown => return Err(Error::InvalidGrant),
                }
            }
        };
        self.replay(token, spent_at, successor, session, now).await
    }

    /// A spent token came back: the same successor pair inside the grace window, otherwise
    /// theft.
    async fn replay(
        &self,
        token: &RefreshToken,
        spent_at: Timestamp,
        successor: Option<RefreshRecord>,
        session: Arc<CachedSession>,
        now: Timestamp,
    ) -> Result<Refreshed, Error> {
        let grace_ends = spent_at.saturating_add(self.inner.config.tokens.refresh_grace);
        let successor_token = token.successor(&self.inner.rotation_key);
        if let Some(successor) = successor
            && now < grace_ends
            && successor.spent_at.is_none()
            && successor.token_hash == successor_token.hash()
        {
            let standing = self.standing_for_tokens(&session.record.user_id).await?;
            let session = self.refreshed_activity(session, now).await?;
            let tokens = self
                .fresh_grant(successor_token, &successor, session.record(), standing)
                .await;
            return Ok(Refreshed { session, tokens });
        }
        let record = &session.record;
        tracing::warn!(
            target: "tessera::audit",
            event = "refresh_reuse_detected",
            user_id = %record.user_id,
            session_id = %record.id,
        );
        // The presenter is anonymous (anyone holding the token); the revocation is the
        // server's own rule.
        let reuse = self
            .audit_event(AuditKind::RefreshReuseDetected)
            .user(&record.user_id)
            .session(&record.id)
            .outcome(Outcome::Failure);
        self.record_audit(reuse).await;
        let revocation = self
            .audit_event(AuditKind::SessionRevoked)
            .actor(Actor::System)
            .user(&record.user_id)
            .session(&record.id)
            .detail("reason", "refresh_reuse");
        if self.revoke_audited(&record.id, revocation).await? {
            tracing::info!(target: "tessera::audit", event = "session_revoked", session_id = %record.id, reason = "refresh_reuse");
        }
        self.forget_revoked(&record.id);
        Err(Error::InvalidGrant)
    }

    /// The grant for a refreshed pair, given the user's standing.
    async fn fresh_grant(
        &self,
        refresh_token: RefreshToken,
        record: &RefreshRecord,
        session: &SessionRecord,
        standing: Standing,
    ) -> TokenGrant {
        let issued_at = self.issue_time(&session.user_id, record.issued_at).await;
        grant(refresh_token, record, session, standing, issued_at)
    }

    /// A refresh is activity: it slides the idle expiry, in the store and in any cached copy.
    async fn refreshed_activity(
        &self,
        session: Arc<CachedSession>,
        now: Timestamp,
    ) -> Result<ValidSession, Error> {
        let record = &session.record;
        let idle_expires_at = self
            .inner
            .config
            .session
            .idle_expiry(now, record.expires_at);
        self.inner
            .stores
            .sessions
            .touch_session(&record.id, now, idle_expires_at)
            .await?;
        if let Some(cached) = self.inner.cache.get(&record.id) {
            cached
                .last_seen
                .fetch_max(now.unix_millis(), Ordering::Relaxed);
            cached
                .persisted_seen
                .fetch_max(now.unix_millis(), Ordering::Relaxed);
        }
        session
            .last_seen
            .fetch_max(now.unix_millis(), Ordering::Relaxed);
        Ok(ValidSession {
            entry: session,
            last_seen_at: now,
            idle_expires_at,
        })
    }

    fn refresh_record(
        &self,
        token: &RefreshToken,
        session: &SessionRecord,
        now: Timestamp,
    ) -> Result<RefreshRecord, Error> {
        let policy = &self.inner.config.tokens;
        Ok(RefreshRecord {
            token_hash: token.hash(),
            session_id: session.id.clone(),
            issued_at: now,
            expires_at: now
                .saturating_add(policy.refresh_ttl)
                .min(session.expires_at),
            access_token_id: TokenId::generate()?.as_str().to_owned(),
            access_expires_at: now
                .saturating_add(policy.access_ttl)
                .min(session.expires_at),
            spent_at: None,
            successor_hash: None,
        })
    }

    /// The refresh token's record and its session, if the token is unspent, unexpired and its
    /// session live — for introspection. Changes nothing.
    pub async fn inspect_refresh(
        &self,
        token: &RefreshToken,
    ) -> Result<Option<(RefreshRecord, SessionRecord)>, Error> {
        let now = self.now();
        let stores = &self.inner.stores;
        let Some(record) = stores.refresh.refresh_by_token(&token.hash()).await? else {
            return Ok(None);
        };
        if record.spent_at.is_some() || now >= record.expires_at {
            return Ok(None);
        }
        match stores.sessions.session_by_id(&record.session_id).await? {
            Some(session) if session.is_live(now) => Ok(Some((record, session))),
            _ => Ok(None),
        }
    }

    /// Revokes the session a refresh token belongs to (RFC 7009: revoking a refresh token
    /// ends the grant, access tokens included). `false` if the token is unknown.
    pub async fn revoke_by_refresh(&self, token: &RefreshToken) -> Result<bool, Error> {
        let Some(record) = self
            .inner
            .stores
            .refresh
            .refresh_by_token(&token.hash())
            .await?
        else {
            return Ok(false);
        };
        self.revoke_quietly(&record.session_id).await
    }
}

/// The pair described by `record`, for a user of this `standing`. `issued_at` is the
/// record's issue time, or later when a change of standing since requires it (see
/// [`Engine::mark_user_stale`]); the expiry stays the record's.
fn grant(
    refresh_token: RefreshToken,
    record: &RefreshRecord,
    session: &SessionRecord,
    standing: Standing,
    issued_at: Timestamp,
) -> TokenGrant {
    TokenGrant {
        refresh_token,
        refresh_expires_at: record.expires_at,
        access: AccessGrant {
            token_id: record.access_token_id.clone(),
            session_id: session.id.clone(),
            user_id: session.user_id.clone(),
            issued_at: issued_at
                .max(record.issued_at)
                .min(record.access_expires_at),
            expires_at: record.access_expires_at,
            auth_time: session.auth_time,
            roles: standing.roles,
            claims: standing.claims,
        },
    }
}
