//! The engine: register, log in, validate, log out, list and revoke — every rule about
//! sessions in one place, over whichever stores it is given.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

pub use self::clients::NewClient;
pub use self::tokens::{AccessGrant, Refreshed, TokenGrant, TokenPolicy};
use dashmap::DashMap;

use crate::cache::{CachedSession, SessionCache};
use crate::error::Error;
use crate::id::{Secret, SessionId, SessionToken, SessionVerifier, UserId};
use crate::password::{PasswordHasher, PasswordPolicy, Verification};
use crate::session::{SessionPolicy, SessionRecord, Transport};
use crate::store::{ClientStore, KeyStore, RefreshStore, SessionStore, StoreError, UserStore};
use crate::throttle::{LoginThrottle, ThrottleKey, ThrottleRule};
use crate::time::{Clock, Timestamp};
use crate::user::{User, UserRecord, Username};

mod clients;
mod tokens;

/// The stores an engine works over.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Accounts.
    pub users: Arc<dyn UserStore>,
    /// Sessions and the revocation log.
    pub sessions: Arc<dyn SessionStore>,
    /// Failed-login counters.
    pub throttle: Arc<dyn LoginThrottle>,
    /// Refresh-token chains of token-transport sessions.
    pub refresh: Arc<dyn RefreshStore>,
    /// Signing keys and server secrets.
    pub keys: Arc<dyn KeyStore>,
    /// Registered API clients.
    pub clients: Arc<dyn ClientStore>,
}

/// Everything about the engine's behaviour that an operator can set.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Session lifetimes.
    pub session: SessionPolicy,
    /// Rules for new passwords.
    pub password: PasswordPolicy,
    /// Failed logins allowed per account. Defaults to 10 in `15m`.
    pub account_throttle: ThrottleRule,
    /// Failed logins allowed per client address (IPv6: per /64). Defaults to 100 in `15m`.
    pub address_throttle: ThrottleRule,
    /// Sessions kept in the in-process cache; `0` turns the cache off. Defaults to `100000`.
    pub cache_capacity: usize,
    /// How long revocation-log entries are kept for verifiers to catch up. Defaults to `1h`.
    pub revocation_retention: Duration,
    /// Access- and refresh-token lifetimes for the token transport.
    pub tokens: TokenPolicy,
    /// How old the last successful read of the revocation log may be before cached sessions
    /// and access tokens stop being trusted: every check then goes to the store, and fails
    /// with `503` if the store is down. `None` trusts the cache however old the feed is (for
    /// embedders that never call [`Engine::sync_revocations`]). Defaults to `None`.
    pub revocation_max_staleness: Option<Duration>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            session: SessionPolicy::default(),
            password: PasswordPolicy::default(),
            account_throttle: ThrottleRule {
                max_failures: 10,
                window: Duration::from_secs(15 * 60),
            },
            address_throttle: ThrottleRule {
                max_failures: 100,
                window: Duration::from_secs(15 * 60),
            },
            cache_capacity: 100_000,
            revocation_retention: Duration::from_secs(60 * 60),
            tokens: TokenPolicy::default(),
            revocation_max_staleness: None,
        }
    }
}

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

/// A session that was valid when checked, with its current activity times.
#[derive(Debug, Clone)]
pub struct ValidSession {
    entry: Arc<CachedSession>,
    last_seen_at: Timestamp,
    idle_expires_at: Timestamp,
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

/// Which of a user's sessions to revoke in bulk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeScope {
    /// All but the caller's own.
    Others,
    /// All, the caller's own included.
    All,
}

/// The session engine. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    stores: Stores,
    hasher: PasswordHasher,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    cache: SessionCache,
    /// The last revocation-log sequence applied to the cache.
    revocation_cursor: AtomicU64,
    /// When the revocation log was last read successfully (clock milliseconds).
    revocations_synced_at: AtomicI64,
    /// Sessions the revocation log names, until `revocation_retention` after their
    /// revocation. Checked on every store read, so a session store that still shows a revoked
    /// session as live (Redis after a failure between logging a revocation and marking the
    /// record) cannot bring it back, and reloaded at start so a restart forgets none.
    revoked: DashMap<SessionId, Timestamp>,
    /// Usernames by user id, so a cache miss reads the session store only. Accounts are
    /// never renamed, and deleting one revokes its sessions first.
    usernames: DashMap<UserId, Arc<str>>,
    /// The key successor refresh tokens are derived under (shared by all instances).
    rotation_key: Vec<u8>,
}

/// The revocation log has not been read for longer than the configured bound.
#[derive(Debug, thiserror::Error)]
#[error("the revocation log has not been read within revocation_max_staleness")]
struct StaleRevocationFeed;

/// Name of the server secret refresh-token successors are derived under.
const REFRESH_ROTATION_SECRET: &str = "refresh-rotation";

/// Usernames cached at most, independently of the session cache (which may be off): a
/// session check that misses the session cache then costs one session-store read, not two.
const USERNAME_CACHE_CAPACITY: usize = 100_000;

/// Longest `User-Agent` kept with a session, in bytes.
const MAX_USER_AGENT: usize = 256;

impl Engine {
    /// An engine over `stores`. Reads the revocation log's position, so it fails if the
    /// session store is unreachable.
    pub async fn new(
        stores: Stores,
        hasher: PasswordHasher,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Self, StoreError> {
        let candidate = Secret::generate().map_err(StoreError::unavailable)?;
        let rotation_key = stores
            .keys
            .server_secret(REFRESH_ROTATION_SECRET, candidate.hash().as_bytes())
            .await?;
        let engine = Engine {
            inner: Arc::new(Inner {
                cache: SessionCache::new(config.cache_capacity),
                revocations_synced_at: AtomicI64::new(clock.now().unix_millis()),
                stores,
                hasher,
                clock,
                config,
                revocation_cursor: AtomicU64::new(0),
                revoked: DashMap::new(),
                usernames: DashMap::new(),
                rotation_key,
            }),
        };
        // Everything the log still holds: the revocations a restart must not forget.
        engine.sync_revocations().await?;
        Ok(engine)
    }

    /// The configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The clock in use.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// Creates an account after checking the username rules and the password policy.
    pub async fn create_user(&self, username: &str, password: &str) -> Result<User, Error> {
        let username = Username::parse(username)?;
        self.inner.config.password.check(&username, password)?;
        if self
            .inner
            .stores
            .users
            .user_by_username(username.key())
            .await?
            .is_some()
        {
            return Err(Error::UsernameTaken);
        }
        let password_hash = self.inner.hasher.hash(password).await?;
        let record = UserRecord {
            user: User {
                id: UserId::generate()?,
                username: username.as_str().to_owned(),
                created_at: self.now(),
            },
            password_hash,
        };
        match self
            .inner
            .stores
            .users
            .create_user(&username, &record)
            .await
        {
            Ok(()) => {}
            // Lost a race with another registration of the same name.
            Err(StoreError::Conflict) => return Err(Error::UsernameTaken),
            Err(other) => return Err(other.into()),
        }
        tracing::info!(target: "tessera::audit", event = "user_created", user_id = %record.user.id);
        Ok(record.user)
    }

    /// Every account, oldest first.
    pub async fn users(&self) -> Result<Vec<User>, Error> {
        Ok(self.inner.stores.users.list_users().await?)
    }

    /// The account with this username (any case).
    pub async fn user_by_username(&self, username: &str) -> Result<User, Error> {
        let key = username.to_ascii_lowercase();
        match self.inner.stores.users.user_by_username(&key).await? {
            Some(record) => Ok(record.user),
            None => Err(Error::UserNotFound),
        }
    }

    /// Deletes an account and ends all its sessions.
    pub async fn delete_user(&self, id: &UserId) -> Result<(), Error> {
        let sessions = &self.inner.stores.sessions;
        self.revoked(sessions.revoke_user_sessions(id, None, self.now()).await?);
        if !self.inner.stores.users.delete_user(id).await? {
            return Err(Error::UserNotFound);
        }
        self.inner.usernames.remove(id);
        // A login that raced the deletion may have created a session in between.
        self.revoked(sessions.revoke_user_sessions(id, None, self.now()).await?);
        tracing::info!(target: "tessera::audit", event = "user_deleted", user_id = %id);
        Ok(())
    }

    /// Checks a username and password and, if they are right and no throttle applies, opens a
    /// new session (always a new id and token: no fixation).
    pub async fn login(&self, attempt: LoginAttempt<'_>) -> Result<LoggedIn, Error> {
        let inner = &self.inner;
        let now = self.now();
        let account_key = attempt.username.to_ascii_lowercase();
        let account = ThrottleKey::Account(account_key.clone());
        let address = attempt.ip.map(ThrottleKey::for_address);
        self.check_throttle(&account, address.as_ref(), now).await?;

        let user = match Username::parse(attempt.username) {
            Ok(name) => inner.stores.users.user_by_username(name.key()).await?,
            Err(_) => None,
        };
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
            (Some(record), Verification::Valid { needs_rehash }) => (record, needs_rehash),
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
            last_seen_at: now,
            idle_expires_at: inner.config.session.idle_expiry(now, expires_at),
            expires_at,
            ip: attempt.ip.map(|ip| ip.to_canonical().to_string()),
            user_agent: attempt.user_agent.map(truncate_user_agent),
            revoked_at: None,
        };
        inner.stores.sessions.insert_session(&session).await?;
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

    /// Checks a session token and records the request as activity.
    ///
    /// The hot path: with the session cached this is a SHA-256, one map read, a
    /// constant-time comparison and two atomic operations; the store is written at most once
    /// per [`SessionPolicy::touch_interval`] per session.
    ///
    /// A token whose id names a session but whose secret does not match is refused like an
    /// unknown one, and changes nothing (it does not even evict the cached session).
    pub async fn validate(&self, token: &SessionToken) -> Result<ValidSession, Error> {
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

    /// Ends a session and every credential of it.
    pub async fn logout(&self, session: &ValidSession) -> Result<(), Error> {
        let id = &session.record().id;
        if self
            .inner
            .stores
            .sessions
            .revoke_session(id, self.now())
            .await?
        {
            tracing::info!(target: "tessera::audit", event = "logout", user_id = %session.record().user_id, session_id = %id);
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
    /// not live, so nobody learns about other users' sessions.
    pub async fn revoke_session_of(&self, owner: &UserId, id: &SessionId) -> Result<(), Error> {
        let sessions = &self.inner.stores.sessions;
        match sessions.session_by_id(id).await? {
            Some(record) if &record.user_id == owner && record.is_live(self.now()) => {}
            _ => return Err(Error::SessionNotFound),
        }
        self.revoke_session(id).await
    }

    /// Revokes a session by id, whoever owns it (administration).
    pub async fn revoke_session(&self, id: &SessionId) -> Result<(), Error> {
        if !self
            .inner
            .stores
            .sessions
            .revoke_session(id, self.now())
            .await?
        {
            self.inner.cache.forget(id);
            return Err(Error::SessionNotFound);
        }
        tracing::info!(target: "tessera::audit", event = "session_revoked", session_id = %id);
        self.forget_revoked(id);
        Ok(())
    }

    /// Revokes the caller's other sessions, or all of them. Returns how many were revoked.
    pub async fn revoke_sessions(
        &self,
        current: &ValidSession,
        scope: RevokeScope,
    ) -> Result<usize, Error> {
        let record = current.record();
        let keep = match scope {
            RevokeScope::Others => Some(&record.id),
            RevokeScope::All => None,
        };
        let revoked = self
            .inner
            .stores
            .sessions
            .revoke_user_sessions(&record.user_id, keep, self.now())
            .await?;
        let count = revoked.len();
        tracing::info!(target: "tessera::audit", event = "sessions_revoked", user_id = %record.user_id, count);
        self.revoked(revoked);
        Ok(count)
    }

    /// Revokes every session of a user (administration). Returns how many were revoked.
    pub async fn revoke_user_sessions(&self, user_id: &UserId) -> Result<usize, Error> {
        let revoked = self
            .inner
            .stores
            .sessions
            .revoke_user_sessions(user_id, None, self.now())
            .await?;
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
                self.inner
                    .revoked
                    .insert(revocation.session_id.clone(), revocation.revoked_at);
                self.inner.cache.forget(&revocation.session_id);
            }
            applied += batch.len();
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
                return None;
            }
        }
        lookup(&self.inner.cache)
    }

    /// How long ago the revocation log was last read successfully.
    pub fn revocation_feed_age(&self) -> Duration {
        let synced =
            Timestamp::from_unix_millis(self.inner.revocations_synced_at.load(Ordering::SeqCst));
        self.now().duration_since(synced)
    }

    /// Sessions held in the in-process cache (for metrics and tests).
    pub fn cached_sessions(&self) -> usize {
        self.inner.cache.len()
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn revoked(&self, ids: Vec<SessionId>) {
        for id in &ids {
            self.forget_revoked(id);
        }
    }

    /// Drops a session this process just revoked from the cache and remembers the revocation
    /// without waiting for the log to come round.
    pub(crate) fn forget_revoked(&self, id: &SessionId) {
        self.inner.revoked.insert(id.clone(), self.now());
        self.inner.cache.forget(id);
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

    async fn check_throttle(
        &self,
        account: &ThrottleKey,
        address: Option<&ThrottleKey>,
        now: Timestamp,
    ) -> Result<(), Error> {
        let throttle = &self.inner.stores.throttle;
        let config = &self.inner.config;
        let mut wait = throttle
            .blocked_for(account, config.account_throttle, now)
            .await?;
        if let Some(address) = address {
            let address_wait = throttle
                .blocked_for(address, config.address_throttle, now)
                .await?;
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

    async fn record_failure(
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
    async fn rehash(&self, user_id: &UserId, password: &str) {
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
