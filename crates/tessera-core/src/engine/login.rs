//! Logging in: throttling per account and per address, password verification (a decoy for
//! unknown users), rehash when the parameters changed, and a new session every time.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Engine, ValidSession};
use crate::audit::{Actor, AuditEvent, AuditKind, Outcome};
use crate::cache::CachedSession;
use crate::error::Error;
use crate::id::{SessionToken, UserId};
use crate::password::Verification;
use crate::session::{SessionRecord, Transport};
use crate::throttle::ThrottleKey;
use crate::time::Timestamp;
use crate::user::Username;

/// A login attempt, as the transport layer received it.
#[derive(Debug, Clone, Copy)]
pub struct LoginAttempt<'a> {
    /// The username typed.
    pub username: &'a str,
    /// The password typed.
    pub password: &'a str,
    /// How the client wants to carry the session.
    pub transport: Transport,
    /// The client's address, if known.
    pub ip: Option<IpAddr>,
    /// The client's `User-Agent`, if sent.
    pub user_agent: Option<&'a str>,
}

/// A successful login: the new session and the secret that proves it.
#[derive(Debug)]
pub struct LoggedIn {
    /// The new session.
    pub session: ValidSession,
    /// The secret session token; hand it to the client and forget it.
    pub token: SessionToken,
}

/// Login attempts since start by outcome, from [`Engine::login_outcomes`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginOutcomes {
    /// A session was opened.
    pub ok: u64,
    /// Unknown user or wrong password.
    pub invalid_credentials: u64,
    /// Refused by the account or address throttle.
    pub rate_limited: u64,
    /// Refused because the password hasher's queue was full.
    pub busy: u64,
    /// Failed otherwise (store unavailable, hashing or randomness failure).
    pub failed: u64,
}

/// The counters behind [`LoginOutcomes`].
#[derive(Debug, Default)]
pub(super) struct LoginCounters {
    ok: AtomicU64,
    invalid_credentials: AtomicU64,
    rate_limited: AtomicU64,
    busy: AtomicU64,
    failed: AtomicU64,
}

impl LoginCounters {
    fn count(&self, result: &Result<LoggedIn, Error>) {
        let counter = match result {
            Ok(_) => &self.ok,
            Err(Error::InvalidCredentials) => &self.invalid_credentials,
            Err(Error::RateLimited { .. }) => &self.rate_limited,
            Err(Error::Busy) => &self.busy,
            Err(_) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> LoginOutcomes {
        LoginOutcomes {
            ok: self.ok.load(Ordering::Relaxed),
            invalid_credentials: self.invalid_credentials.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// Longest `User-Agent` kept with a session, in bytes.
const MAX_USER_AGENT: usize = crate::audit::MAX_USER_AGENT;

/// What a login attempt learnt on its way, for its audit event.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// The account the username names, once looked up.
    user: Option<UserId>,
    /// The throttle key that refused the attempt.
    refused_by: Option<ThrottleKey>,
}

impl Engine {
    /// Checks a username and password and, if they are right and no throttle applies, opens a
    /// new session (always a new id and token: no fixation).
    ///
    /// Records `login_succeeded`, `login_failed` or `login_throttled` in the audit trail
    /// with the attempt's address and user agent (throttled attempts at most once a minute
    /// per throttle key and instance).
    pub async fn login(&self, attempt: LoginAttempt<'_>) -> Result<LoggedIn, Error> {
        let mut seen = Seen::default();
        let result = self.attempt_login(attempt, &mut seen).await;
        self.inner.logins.count(&result);
        if self.audits() {
            self.audit_login(&attempt, &result, seen).await;
        }
        result
    }

    async fn audit_login(
        &self,
        attempt: &LoginAttempt<'_>,
        result: &Result<LoggedIn, Error>,
        seen: Seen,
    ) {
        let event = |kind| {
            AuditEvent::new(kind, self.now(), Actor::Anonymous)
                .client(attempt.ip, attempt.user_agent)
        };
        let event = match result {
            Ok(logged_in) => {
                let record = logged_in.session.record();
                event(AuditKind::LoginSucceeded)
                    .actor(Actor::User(record.user_id.clone()))
                    .user(&record.user_id)
                    .session(&record.id)
                    .detail("transport", record.transport.as_str())
            }
            Err(Error::InvalidCredentials) => {
                let mut event = event(AuditKind::LoginFailed).outcome(Outcome::Failure);
                event.user_id = seen.user;
                event
            }
            Err(Error::RateLimited { retry_after }) => {
                let Some(key) = seen.refused_by else { return };
                if !self.throttle_worth_recording(&key, self.now()) {
                    return;
                }
                // The throttle refused before the account was looked up; look now so the
                // event names it. Failing that, the event goes without a subject.
                let user = match Username::parse(attempt.username) {
                    Ok(name) => self
                        .inner
                        .stores
                        .users
                        .user_by_username(name.key())
                        .await
                        .ok()
                        .flatten()
                        .map(|record| record.user.id),
                    Err(_) => None,
                };
                let scope = match key {
                    ThrottleKey::Account(_) => "account",
                    ThrottleKey::Address(_) => "address",
                };
                let mut event = event(AuditKind::LoginThrottled)
                    .outcome(Outcome::Failure)
                    .detail("throttle", scope)
                    .detail("retry_after_secs", retry_after.as_secs());
                event.user_id = user;
                event
            }
            // Not a decision about the credentials (busy, store down): nothing to audit.
            Err(_) => return,
        };
        self.record_audit(event).await;
    }

    async fn attempt_login(
        &self,
        attempt: LoginAttempt<'_>,
        seen: &mut Seen,
    ) -> Result<LoggedIn, Error> {
        let inner = &self.inner;
        let now = self.now();
        let account_key = attempt.username.to_ascii_lowercase();
        let account = ThrottleKey::Account(account_key.clone());
        let address = attempt.ip.map(ThrottleKey::for_address);
        self.check_throttle(&account, address.as_ref(), now, seen)
            .await?;

        let user = match Username::parse(attempt.username) {
            Ok(name) => inner.stores.users.user_by_username(name.key()).await?,
            Err(_) => None,
        };
        seen.user = user.as_ref().map(|record| record.user.id.clone());
        let verification = match (
            &user,
            attempt.password.len() > inner.config.password.max_bytes,
        ) {
            (Some(record), false) => {
                inner
                    .hasher
                    .verify(&record.password_hash, attempt.password)
                    .await?
            }
            // Unknown users, and passwords too long to be real, cost a decoy verification so
            // neither is told apart by timing.
            _ => inner.hasher.verify_decoy(attempt.password).await?,
        };
        let (record, needs_rehash) = match (user, verification) {
            // A disabled account is refused exactly like a wrong password, after the same
            // hash check, so a login attempt cannot tell the two apart.
            (Some(record), Verification::Valid { needs_rehash }) if !record.standing.disabled => {
                (record, needs_rehash)
            }
            _ => {
                self.record_failure(&account, address.as_ref(), now).await?;
                tracing::info!(
                    target: "tessera::audit",
                    event = "login_failed",
                    ip = attempt.ip.map(tracing::field::display),
                );
                return Err(Error::InvalidCredentials);
            }
        };
        inner.stores.throttle.reset(&account).await?;
        if needs_rehash {
            self.rehash(&record.user.id, attempt.password).await;
        }

        let token = SessionToken::generate()?;
        let expires_at = now.saturating_add(inner.config.session.absolute_timeout);
        let session = SessionRecord {
            id: token.session_id(),
            verifier: token.verifier(),
            user_id: record.user.id.clone(),
            transport: attempt.transport,
            created_at: now,
            auth_time: now,
            last_seen_at: now,
            idle_expires_at: inner.config.session.idle_expiry(now, expires_at),
            expires_at,
            ip: attempt.ip.map(|ip| ip.to_canonical().to_string()),
            user_agent: attempt.user_agent.map(truncate_user_agent),
            revoked_at: None,
            parent: None,
        };
        inner.stores.sessions.insert_session(&session).await?;
        if self.disabled_meanwhile(&session).await? {
            return Err(Error::InvalidCredentials);
        }
        tracing::info!(
            target: "tessera::audit",
            event = "login_succeeded",
            user_id = %session.user_id,
            session_id = %session.id,
            transport = session.transport.as_str(),
            ip = attempt.ip.map(tracing::field::display),
        );
        let idle_expires_at = session.idle_expires_at;
        let entry = Arc::new(CachedSession::new(session, Arc::from(record.user.username)));
        inner.cache.insert(Arc::clone(&entry), inner.cache.epoch());
        Ok(LoggedIn {
            session: ValidSession {
                entry,
                last_seen_at: now,
                idle_expires_at,
            },
            token,
        })
    }

    /// Whether the account was disabled (or deleted) while this login checked the password:
    /// the disabling revoked every session it could see, so it missed the one just added;
    /// revoke it here.
    async fn disabled_meanwhile(&self, session: &SessionRecord) -> Result<bool, Error> {
        let stores = &self.inner.stores;
        match stores.users.user_by_id(&session.user_id).await? {
            Some(user) if !user.standing.disabled => Ok(false),
            _ => {
                stores
                    .sessions
                    .revoke_session(&session.id, self.now())
                    .await?;
                self.forget_revoked(&session.id);
                Ok(true)
            }
        }
    }

    pub(super) async fn check_throttle(
        &self,
        account: &ThrottleKey,
        address: Option<&ThrottleKey>,
        now: Timestamp,
        seen: &mut Seen,
    ) -> Result<(), Error> {
        let throttle = &self.inner.stores.throttle;
        let config = &self.inner.config;
        let mut wait = throttle
            .blocked_for(account, config.account_throttle, now)
            .await?;
        if wait.is_some() {
            seen.refused_by = Some(account.clone());
        }
        if let Some(address) = address {
            let address_wait = throttle
                .blocked_for(address, config.address_throttle, now)
                .await?;
            if address_wait > wait {
                seen.refused_by = Some(address.clone());
            }
            wait = wait.max(address_wait);
        }
        match wait {
            Some(retry_after) => {
                tracing::info!(target: "tessera::audit", event = "login_throttled", retry_after_secs = retry_after.as_secs());
                Err(Error::RateLimited { retry_after })
            }
            None => Ok(()),
        }
    }

    pub(super) async fn record_failure(
        &self,
        account: &ThrottleKey,
        address: Option<&ThrottleKey>,
        now: Timestamp,
    ) -> Result<(), Error> {
        let throttle = &self.inner.stores.throttle;
        let config = &self.inner.config;
        throttle
            .record_failure(account, config.account_throttle, now)
            .await?;
        if let Some(address) = address {
            throttle
                .record_failure(address, config.address_throttle, now)
                .await?;
        }
        Ok(())
    }

    /// Upgrades a hash made with older parameters. A failure here must not fail the login
    /// that proved the password: it is logged, and retried at the next login.
    pub(super) async fn rehash(&self, user_id: &UserId, password: &str) {
        let result = match self.inner.hasher.hash(password).await {
            Ok(hash) => self
                .inner
                .stores
                .users
                .set_password_hash(user_id, &hash)
                .await
                .map_err(Error::from),
            Err(error) => Err(error.into()),
        };
        match result {
            Ok(_) => {
                tracing::info!(target: "tessera::audit", event = "password_rehashed", user_id = %user_id)
            }
            Err(error) => {
                tracing::warn!(user_id = %user_id, error = %error, "password rehash failed")
            }
        }
    }
}

fn truncate_user_agent(user_agent: &str) -> String {
    let mut end = user_agent.len().min(MAX_USER_AGENT);
    while !user_agent.is_char_boundary(end) {
        end -= 1;
    }
    user_agent[..end].to_owned()
}
