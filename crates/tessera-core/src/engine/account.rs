//! The account's owner acting on it, and an administrator resetting it: re-authentication,
//! the recent-authentication rule for sensitive actions, password change, password reset and
//! self-service deletion.
//!
//! Every password check here goes through the same throttle and the same bounded hasher as a
//! login, and a wrong password counts as a failed login: a stolen session cannot be used to
//! guess its owner's password faster than the login form allows.

use std::net::IpAddr;
use std::sync::Arc;

use super::login::Seen;
use super::{Engine, LoggedIn, ValidSession};
use crate::audit::{Actor, AuditKind};
use crate::cache::CachedSession;
use crate::error::Error;
use crate::id::{SessionToken, UserId};
use crate::password::Verification;
use crate::session::SessionRecord;
use crate::throttle::ThrottleKey;
use crate::time::Timestamp;
use crate::user::Username;

/// A self-service password change, as the transport layer received it.
#[derive(Debug, Clone, Copy)]
pub struct PasswordChange<'a> {
    /// The password the user has now: proof that the session's holder knows it.
    pub current_password: &'a str,
    /// The password to set; checked against the password policy like a registration's.
    pub new_password: &'a str,
    /// The client's address, if known (for the address throttle).
    pub ip: Option<IpAddr>,
}

impl Engine {
    /// Checks the session owner's password and records the proof: the session's `auth_time`
    /// becomes now, so the recent-authentication rule
    /// ([`Engine::require_recent_authentication`]) is met for
    /// [`EngineConfig::reauthentication_window`](super::EngineConfig::reauthentication_window).
    ///
    /// A wrong password is [`Error::InvalidCredentials`], like a failed login, and counts
    /// toward the same account and address throttles; a throttled account or address gets
    /// [`Error::RateLimited`] without the password being checked. Returns the new
    /// `auth_time`.
    pub async fn reauthenticate(
        &self,
        session: &ValidSession,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<Timestamp, Error> {
        let record = session.record();
        self.prove_password(&record.user_id, session.username(), password, ip)
            .await?;
        let now = self.now();
        if !self
            .inner
            .stores
            .sessions
            .record_authentication(&record.id, now)
            .await?
        {
            // Revoked while the password was being checked.
            self.inner.cache.forget(&record.id);
            return Err(Error::Unauthenticated);
        }
        // The cached copy holds the old `auth_time`; the next request reads the new one.
        self.inner.cache.forget(&record.id);
        tracing::info!(
            target: "tessera::audit",
            event = "reauthenticated",
            user_id = %record.user_id,
            session_id = %record.id,
        );
        Ok(now)
    }

    /// Succeeds if the session's owner proved their password within
    /// [`EngineConfig::reauthentication_window`](super::EngineConfig::reauthentication_window),
    /// else [`Error::ReauthenticationRequired`].
    ///
    /// Reads `auth_time` from the store, not from the cache: a re-authentication on another
    /// instance counts at once. Sensitive actions are rare, so the read costs nothing that
    /// matters.
    pub async fn require_recent_authentication(&self, session: &ValidSession) -> Result<(), Error> {
        let now = self.now();
        let stored = self.live_session(&session.record().id, now).await?;
        let window = self.inner.config.reauthentication_window;
        if now.duration_since(stored.record.auth_time) <= window {
            Ok(())
        } else {
            Err(Error::ReauthenticationRequired)
        }
    }

    /// Changes the session owner's password (a sensitive action: it needs a recent
    /// authentication, and the current password besides).
    ///
    /// Every other session of the user ends — every credential of them, refresh chains
    /// included. The caller's session continues under a new id and token (returned; the old
    /// id is revoked, so its access tokens die too), with the same absolute expiry and
    /// `auth_time` now. Nothing changes unless every check passes: recent authentication
    /// ([`Error::ReauthenticationRequired`]), the new password's policy
    /// ([`Error::PasswordRejected`]), then the current password
    /// ([`Error::InvalidCredentials`] or [`Error::RateLimited`], as for a login).
    pub async fn change_password(
        &self,
        session: &ValidSession,
        change: PasswordChange<'_>,
    ) -> Result<LoggedIn, Error> {
        self.require_recent_authentication(session).await?;
        let username = Username::parse(session.username())?;
        self.inner
            .config
            .password
            .check(&username, change.new_password)?;
        let old = session.record();
        self.prove_password(
            &old.user_id,
            session.username(),
            change.current_password,
            change.ip,
        )
        .await?;
        let password_hash = self.inner.hasher.hash(change.new_password).await?;
        if !self
            .inner
            .stores
            .users
            .set_password_hash(&old.user_id, &password_hash)
            .await?
        {
            return Err(Error::UserNotFound);
        }

        let now = self.now();
        let token = SessionToken::generate()?;
        let successor = SessionRecord {
            id: token.session_id(),
            verifier: token.verifier(),
            auth_time: now,
            last_seen_at: now,
            idle_expires_at: self.inner.config.session.idle_expiry(now, old.expires_at),
            revoked_at: None,
            parent: None,
            ..old.clone()
        };
        let sessions = &self.inner.stores.sessions;
        sessions.insert_session(&successor).await?;
        // The old id goes with the others: its cookie, bearer token, access tokens and
        // refresh chain all end here.
        let revoked = sessions
            .revoke_user_sessions(&old.user_id, Some(&successor.id), now)
            .await?;
        let ended = revoked.len();
        self.revoked(revoked);
        tracing::info!(
            target: "tessera::audit",
            event = "password_changed",
            user_id = %old.user_id,
            session_id = %successor.id,
            replaced_session_id = %old.id,
            sessions_ended = ended,
        );
        let event = self
            .audit_event(AuditKind::PasswordChanged)
            .actor(Actor::User(old.user_id.clone()))
            .user(&old.user_id)
            .session(&successor.id)
            .detail("sessions_ended", ended);
        self.record_audit(event).await;
        // A change of standing: access tokens issued before now are refused everywhere. The
        // successor's tokens, issued after this, carry a later `iat` (see `issue_time`).
        self.mark_user_stale(&old.user_id).await?;
        let idle_expires_at = successor.idle_expires_at;
        let entry = Arc::new(CachedSession::new(successor, Arc::from(session.username())));
        self.inner
            .cache
            .insert(Arc::clone(&entry), self.inner.cache.epoch());
        Ok(LoggedIn {
            session: ValidSession {
                entry,
                last_seen_at: now,
                idle_expires_at,
            },
            token,
        })
    }

    /// Sets a user's password without the old one (administration: the CLI, the admin API),
    /// after the password policy's check, ends every session of the user and makes every
    /// access token of theirs stale. Also clears the account's failed-login count, so a
    /// locked-out user can log in with the new password at once. Returns how many sessions
    /// ended. Records `password_reset` (actor from the context).
    pub async fn reset_password(
        &self,
        user_id: &UserId,
        new_password: &str,
    ) -> Result<usize, Error> {
        let users = &self.inner.stores.users;
        let Some(record) = users.user_by_id(user_id).await? else {
            return Err(Error::UserNotFound);
        };
        let username = Username::parse(&record.user.username)?;
        self.inner.config.password.check(&username, new_password)?;
        let password_hash = self.inner.hasher.hash(new_password).await?;
        if !users.set_password_hash(user_id, &password_hash).await? {
            return Err(Error::UserNotFound);
        }
        let revoked = self
            .inner
            .stores
            .sessions
            .revoke_user_sessions(user_id, None, self.now())
            .await?;
        let ended = revoked.len();
        self.revoked(revoked);
        tracing::info!(
            target: "tessera::audit",
            event = "password_reset",
            user_id = %user_id,
            sessions_ended = ended,
        );
        let event = self
            .audit_event(AuditKind::PasswordReset)
            .user(user_id)
            .detail("sessions_ended", ended);
        self.record_audit(event).await;
        self.mark_user_stale(user_id).await?;
        self.inner
            .stores
            .throttle
            .reset(&ThrottleKey::Account(username.key().to_owned()))
            .await?;
        Ok(ended)
    }

    /// Deletes the session owner's account and ends every session of it (a sensitive
    /// action: it needs a recent authentication, and the password again as a second sign of
    /// intent). Checks in that order, changing nothing unless both pass.
    pub async fn delete_account(
        &self,
        session: &ValidSession,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), Error> {
        self.require_recent_authentication(session).await?;
        let user_id = &session.record().user_id;
        self.prove_password(user_id, session.username(), password, ip)
            .await?;
        self.delete_user(user_id).await?;
        tracing::info!(
            target: "tessera::audit",
            event = "account_deleted",
            user_id = %user_id,
            session_id = %session.record().id,
        );
        Ok(())
    }

    /// Checks `password` against the user's, through the login throttle and the bounded
    /// hasher: throttled → [`Error::RateLimited`]; wrong → a counted failure and
    /// [`Error::InvalidCredentials`]; right → the account's failures forgotten, and the hash
    /// upgraded if its parameters are old.
    async fn prove_password(
        &self,
        user_id: &UserId,
        username: &str,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), Error> {
        let now = self.now();
        let account = ThrottleKey::Account(username.to_ascii_lowercase());
        let address = ip.map(ThrottleKey::for_address);
        // A re-authentication is not a login: it records no login event of its own.
        self.check_throttle(&account, address.as_ref(), now, &mut Seen::default())
            .await?;
        let user = self.inner.stores.users.user_by_id(user_id).await?;
        let too_long = password.len() > self.inner.config.password.max_bytes;
        let verification = match (&user, too_long) {
            (Some(record), false) => {
                self.inner
                    .hasher
                    .verify(&record.password_hash, password)
                    .await?
            }
            _ => self.inner.hasher.verify_decoy(password).await?,
        };
        match verification {
            Verification::Valid { needs_rehash } if user.is_some() => {
                self.inner.stores.throttle.reset(&account).await?;
                if needs_rehash {
                    self.rehash(user_id, password).await;
                }
                Ok(())
            }
            _ => {
                self.record_failure(&account, address.as_ref(), now).await?;
                tracing::info!(
                    target: "tessera::audit",
                    event = "reauthentication_failed",
                    user_id = %user_id,
                    ip = ip.map(tracing::field::display),
                );
                Err(Error::InvalidCredentials)
            }
        }
    }
}
