//! The storage contract: what every backend (memory, SQLite, and later PostgreSQL and Redis)
//! must do, and must do the same way. `tessera-store`'s conformance suite holds each backend
//! to this text.
//!
//! Users and sessions are separate traits so a deployment can keep durable users in SQL and
//! hot sessions elsewhere. Every method is safe to call concurrently; "atomic" below means no
//! other caller can observe or interleave with a half-done change.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::audit::{AuditEvent, Audited};
use crate::id::{SessionId, TokenHash, UserId};
use crate::session::SessionRecord;
use crate::time::Timestamp;
use crate::user::{CustomClaims, Roles, User, UserRecord, Username};

/// A store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A record with the same unique key (id, username, token hash) already exists.
    /// Nothing was written.
    #[error("a record with the same key already exists")]
    Conflict,
    /// The backend could not be reached, timed out or failed. The operation may be retried;
    /// callers fail closed.
    #[error("the store is unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// A record read back could not be understood (a corrupt or foreign row).
    #[error("the store returned a malformed record")]
    Corrupt(#[source] Box<dyn StdError + Send + Sync>),
}

impl StoreError {
    /// Wraps a backend failure as [`StoreError::Unavailable`].
    pub fn unavailable(error: impl StdError + Send + Sync + 'static) -> Self {
        StoreError::Unavailable(Box::new(error))
    }

    /// Wraps a decoding failure as [`StoreError::Corrupt`].
    pub fn corrupt(error: impl StdError + Send + Sync + 'static) -> Self {
        StoreError::Corrupt(Box::new(error))
    }
}

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync + fmt::Debug + 'static {
    /// Adds a user under `username.key()`.
    ///
    /// Fails with [`StoreError::Conflict`] if the username (compared by key) or the id exists;
    /// never overwrites.
    async fn create_user(&self, username: &Username, record: &UserRecord)
    -> Result<(), StoreError>;

    /// The user whose username key is `username_key`, or `None`.
    async fn user_by_username(&self, username_key: &str) -> Result<Option<UserRecord>, StoreError>;

    /// The user with this id, or `None`.
    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError>;

    /// Every user, oldest first.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;

    /// One page of users in username-key order (byte order of [`Username::key`]): at most
    /// `limit` users whose key is greater than `after` (all of them when `None`) and, when
    /// `contains` is given, contains it (compared exactly: the caller folds case).
    ///
    /// Paging by key rather than by position keeps a walk through the pages stable while
    /// users are added or deleted: passing the last key of one page as `after` of the next
    /// never repeats a user and never skips one that existed for the whole walk.
    async fn users_page(
        &self,
        after: Option<&str>,
        limit: usize,
        contains: Option<&str>,
    ) -> Result<Vec<User>, StoreError>;

    /// Replaces the password hash (after a rehash or a password change). `false` if there is
    /// no such user.
    async fn set_password_hash(&self, id: &UserId, password_hash: &str)
    -> Result<bool, StoreError>;

    /// Deletes the user. Idempotent: `false` if there was no such user. Does not touch
    /// sessions: the engine revokes them around this call.
    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError>;

    /// Replaces the user's roles (the whole set: concurrent changes are last-writer-wins; a
    /// change computed from the current set uses [`swap_roles`](UserStore::swap_roles)).
    /// `false` if there is no such user.
    async fn set_roles(&self, id: &UserId, roles: &Roles) -> Result<bool, StoreError>;

    /// Replaces the user's roles with `roles` only if they are `expected` at that moment,
    /// atomically (compare-and-set): two read-modify-write changes racing on one user (each
    /// adding a role) cannot both land on the same read, so neither is lost — the loser reads
    /// again and retries. `false`, and nothing written, if the stored roles are not `expected`
    /// or there is no such user.
    async fn swap_roles(
        &self,
        id: &UserId,
        expected: &Roles,
        roles: &Roles,
    ) -> Result<bool, StoreError>;

    /// Replaces the user's custom claims (the whole object). `false` if there is no such
    /// user.
    async fn set_claims(&self, id: &UserId, claims: &CustomClaims) -> Result<bool, StoreError>;

    /// Sets whether the account is disabled. Idempotent; `false` only if there is no such
    /// user. Does not touch sessions: the engine revokes them after this call.
    async fn set_disabled(&self, id: &UserId, disabled: bool) -> Result<bool, StoreError>;

    /// Succeeds if the store can serve requests now.
    async fn ping(&self) -> Result<(), StoreError>;

    /// [`create_user`](UserStore::create_user), and `event` appended to the store's audit
    /// trail in the same transaction if the store keeps one (see [`Audited`]). Nothing is
    /// appended when the user is not created.
    ///
    /// The default creates the user and leaves the event to the caller.
    async fn create_user_audited(
        &self,
        username: &Username,
        record: &UserRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let _ = event;
        self.create_user(username, record).await?;
        Ok(Audited::left_to_caller(()))
    }

    /// [`delete_user`](UserStore::delete_user), and `event` appended in the same
    /// transaction if the store keeps an audit trail and a user was deleted.
    ///
    /// The default deletes and leaves the event to the caller.
    async fn delete_user_audited(
        &self,
        id: &UserId,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let _ = event;
        Ok(Audited::left_to_caller(self.delete_user(id).await?))
    }
}

/// An entry of the revocation log, as recorded for verifiers and in-process caches: one
/// session ended, or every access token of one user issued before a moment went stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Position in the store's revocation log; strictly increasing in commit order.
    pub sequence: u64,
    /// What was revoked.
    pub kind: RevocationKind,
    /// The user concerned: the session's owner, or the user whose tokens went stale.
    pub user_id: UserId,
    /// When it was recorded.
    pub revoked_at: Timestamp,
}

/// What a [`Revocation`] revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationKind {
    /// One session, and so every credential of it.
    Session(SessionId),
    /// The user's standing changed (roles or claims, disabled, password, deleted): every
    /// access token of theirs issued before [`Revocation::stale_before`] is stale. Sessions
    /// are untouched by this entry (those that must end are revoked by entries of their own).
    User,
}

impl Revocation {
    /// The session this entry revokes, if it is a session entry.
    pub fn session_id(&self) -> Option<&SessionId> {
        match &self.kind {
            RevocationKind::Session(id) => Some(id),
            RevocationKind::User => None,
        }
    }

    /// For a user entry: access tokens whose `iat` (whole seconds) is before this are stale.
    ///
    /// The whole second after `revoked_at`, because `iat` counts whole seconds: a token
    /// issued in the same second as the change, before it, has the same `iat` as one issued
    /// after it, so both are refused, and the engine issues no token with an earlier `iat`
    /// once it knows of the entry (see [`crate::Engine::mark_user_stale`]).
    pub fn stale_before(&self) -> Timestamp {
        stale_before(self.revoked_at)
    }
}

/// The first whole second strictly after `at` (see [`Revocation::stale_before`]).
pub(crate) fn stale_before(at: Timestamp) -> Timestamp {
    let millis = at.unix_millis();
    Timestamp::from_unix_millis(
        millis
            .div_euclid(1000)
            .saturating_add(1)
            .saturating_mul(1000),
    )
}

/// Sessions and their revocation log.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug + 'static {
    /// Adds a new session.
    ///
    /// Fails with [`StoreError::Conflict`] if the id exists (live, expired or revoked); never
    /// overwrites, so a collision can never hand one user another's session.
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError>;

    /// The session with this public id, revoked or expired ones included (the caller decides),
    /// or `None`. A session token carries its session's id, so this is also how a token is
    /// looked up; the caller then checks the token against [`SessionRecord::verifier`].
    async fn session_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError>;

    /// Records activity: sets `last_seen_at = seen` and `idle_expires_at`, atomically and only
    /// if the session exists, is not revoked and was last seen before `seen`.
    ///
    /// Returns whether it changed anything. It never creates a session and never brings a
    /// revoked one back, however it races with [`SessionStore::revoke_session`].
    async fn touch_session(
        &self,
        id: &SessionId,
        seen: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Records a re-authentication: raises the session's `auth_time` to `auth_time`,
    /// atomically and only if the session exists and is not revoked (expiry is the caller's
    /// business). Never lowers it, never creates a session and never brings a revoked one
    /// back, however it races with [`SessionStore::revoke_session`].
    ///
    /// Returns `true` if the session exists unrevoked (its `auth_time` is then at least
    /// `auth_time`), `false` otherwise.
    async fn record_authentication(
        &self,
        id: &SessionId,
        auth_time: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The user's sessions that are live at `now` (see [`SessionRecord::is_live`]), newest
    /// first.
    async fn sessions_of_user(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// The ids of the child sessions of `parent` (those whose [`SessionRecord::parent`] names
    /// it) that are live at `now`, newest first. A child belongs to its parent's user, so
    /// only `user_id`'s sessions are looked at; `parent` itself is never among them. Empty if
    /// it has none, or is unknown.
    ///
    /// Revoking a session does not revoke its children: the engine revokes each id this
    /// returns after revoking the parent.
    ///
    /// The default filters [`sessions_of_user`](SessionStore::sessions_of_user); stores with
    /// an index of sessions by parent look there instead.
    async fn children_of(
        &self,
        parent: &SessionId,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        Ok(self
            .sessions_of_user(user_id, now)
            .await?
            .into_iter()
            .filter(|session| session.parent.as_ref().is_some_and(|of| &of.id == parent))
            .map(|session| session.id)
            .collect())
    }

    /// Revokes one session at `now` and appends it to the revocation log, atomically.
    ///
    /// Idempotent: `false`, and nothing logged, if the session is unknown or already revoked.
    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool, StoreError>;

    /// Revokes every unrevoked session of the user except `keep`, logging each, atomically.
    /// Returns the ids it revoked (empty when there were none).
    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError>;

    /// Logs the revocation of a session this store does not hold (any more), for a caller
    /// that has just proved the session live — from its own cache — and is ending it: a store
    /// that may forget sessions (Redis restarted without persistence) would otherwise log
    /// nothing, and other instances that still cache the session would keep accepting it
    /// until their next touch of the store. Appends a session entry for `(id, user_id)` at
    /// `now` and wakes listeners, like [`SessionStore::revoke_session`]; returns whether it
    /// logged one.
    ///
    /// The default logs nothing and returns `false`: a durable store never loses a session,
    /// so an unknown or revoked one was revoked (and logged) already.
    async fn log_lost_revocation(
        &self,
        id: &SessionId,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let _ = (id, user_id, now);
        Ok(false)
    }

    /// Appends a user entry ([`RevocationKind::User`]) recorded at `at` to the revocation
    /// log, under the same sequence as session revocations, and wakes listeners like them.
    async fn mark_user_stale(&self, user_id: &UserId, at: Timestamp) -> Result<(), StoreError>;

    /// Revocations with `sequence > after`, oldest first, at most `limit`.
    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Revocation>, StoreError>;

    /// The highest sequence the revocation log has assigned (`0` before the first
    /// revocation). Trimming old entries does not lower it, and no later entry gets a lower
    /// or equal sequence.
    async fn revocation_cursor(&self) -> Result<u64, StoreError>;

    /// Deletes at most `limit` sessions that ended (expired, or revoked and past their
    /// absolute expiry) before `now`, and at most `limit` revocation-log entries older than
    /// `now - revocation_retention`. Returns how many records went. Safe to run while
    /// serving; it must never delete a live session.
    async fn purge_expired(
        &self,
        now: Timestamp,
        revocation_retention: Duration,
        limit: usize,
    ) -> Result<u64, StoreError>;

    /// Succeeds if the store can serve requests now.
    async fn ping(&self) -> Result<(), StoreError>;

    /// [`revoke_session`](SessionStore::revoke_session), and `event` appended to the
    /// store's audit trail in the same transaction if the store keeps one and the session was
    /// revoked (see [`Audited`]).
    ///
    /// The default revokes and leaves the event to the caller.
    async fn revoke_session_audited(
        &self,
        id: &SessionId,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let _ = event;
        Ok(Audited::left_to_caller(self.revoke_session(id, now).await?))
    }

    /// [`revoke_user_sessions`](SessionStore::revoke_user_sessions), and `event` — with
    /// `count` (how many sessions it revoked) added to its detail — appended in the same
    /// transaction if the store keeps an audit trail and at least one session was revoked.
    ///
    /// The default revokes and leaves the event to the caller.
    async fn revoke_user_sessions_audited(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Audited<Vec<SessionId>>, StoreError> {
        let _ = event;
        Ok(Audited::left_to_caller(
            self.revoke_user_sessions(user_id, keep, now).await?,
        ))
    }
}

/// A refresh token of a token-transport session, as stored (its hash, never the token).
///
/// Each session has one chain of refresh tokens: every use spends the token and stores its
/// successor. The access token issued with a refresh token is described here too, so a retry
/// inside the grace window can be answered with the very same pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the refresh token.
    pub token_hash: TokenHash,
    /// The session it belongs to; revoking the session kills the chain.
    pub session_id: SessionId,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops being accepted (never after the session's absolute expiry).
    pub expires_at: Timestamp,
    /// The `jti` of the access token issued with it.
    pub access_token_id: String,
    /// The `exp` of that access token.
    pub access_expires_at: Timestamp,
    /// When it was used; `None` while it is the live end of the chain.
    pub spent_at: Option<Timestamp>,
    /// The hash of the token that replaced it.
    pub successor_hash: Option<TokenHash>,
}

/// What [`RefreshStore::rotate_refresh`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The parent was unspent: it is now spent (at `now`, pointing at the successor) and the
    /// successor is stored.
    Rotated,
    /// The parent had been spent already (by an earlier call or a concurrent winner); nothing
    /// was written. `successor` is the record it points at, if that still exists.
    AlreadySpent {
        /// When the parent was spent.
        spent_at: Timestamp,
        /// The immediate successor.
        successor: Option<RefreshRecord>,
    },
    /// No refresh token has that hash; nothing was written.
    Unknown,
}

/// Refresh-token chains.
#[async_trait]
pub trait RefreshStore: Send + Sync + fmt::Debug + 'static {
    /// Stores the first refresh token of a session. [`StoreError::Conflict`] if the hash
    /// exists; never overwrites.
    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), StoreError>;

    /// The record with this token hash, spent or not, or `None`.
    async fn refresh_by_token(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<RefreshRecord>, StoreError>;

    /// Spends `parent` and stores `successor`, atomically: of any number of concurrent calls
    /// for one parent exactly one returns [`Rotation::Rotated`]; the others see
    /// [`Rotation::AlreadySpent`] with the winner's successor. Expiry is the caller's
    /// business; the store only guarantees the single winner.
    ///
    /// Fails with [`StoreError::Conflict`] if the parent is unspent but the successor's hash
    /// exists; nothing is written and the parent stays unspent.
    async fn rotate_refresh(
        &self,
        parent: &TokenHash,
        successor: &RefreshRecord,
        now: Timestamp,
    ) -> Result<Rotation, StoreError>;

    /// Deletes at most `limit` records that expired before `now`. Returns how many went.
    async fn purge_refresh(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError>;
}

/// A signing key or server secret, as stored. The store keeps the bytes opaque; the JOSE
/// layer gives them meaning.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Key id (`kid`), unique.
    pub kid: String,
    /// What the key is for: a JOSE algorithm name (`EdDSA`, `ES256`, `RS256`, `HS256`).
    pub algorithm: String,
    /// Private key (PKCS#8 DER) or secret bytes.
    pub secret: Vec<u8>,
    /// Unix seconds from which it is published.
    pub created_at: i64,
    /// Unix seconds from which it may sign.
    pub activates_at: i64,
    /// Unix seconds from which it no longer signs, once a successor took over.
    pub retired_at: Option<i64>,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Signing keys and named server secrets, shared by every instance.
#[async_trait]
pub trait KeyStore: Send + Sync + fmt::Debug + 'static {
    /// Every stored signing key, oldest first.
    async fn signing_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Adds a signing key. [`StoreError::Conflict`] if the kid exists.
    async fn insert_signing_key(&self, key: &KeyRecord) -> Result<(), StoreError>;

    /// Sets `retired_at` of every key that has none and is not `except`, atomically (a new key
    /// took over). Returns how many keys it retired.
    async fn retire_signing_keys(&self, except: &str, retired_at: i64) -> Result<u64, StoreError>;

    /// Deletes keys retired before `before`. Returns how many went.
    async fn delete_signing_keys_retired_before(&self, before: i64) -> Result<u64, StoreError>;

    /// The secret stored under `name`, storing `candidate` first if there is none — atomically,
    /// so concurrent first starts of several instances agree on one secret.
    async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// [`insert_signing_key`](KeyStore::insert_signing_key), and `event` appended to the
    /// store's audit trail in the same transaction if the store keeps one (see [`Audited`]).
    /// Nothing is appended when the key is not inserted.
    ///
    /// The default inserts and leaves the event to the caller.
    async fn insert_signing_key_audited(
        &self,
        key: &KeyRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let _ = event;
        self.insert_signing_key(key).await?;
        Ok(Audited::left_to_caller(()))
    }
}

/// A resource server allowed to introspect tokens and read the revocation feed, or an
/// operator's script allowed the admin API as well.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// Public client id.
    pub id: String,
    /// A name for people (unique).
    pub name: String,
    /// SHA-256 of the client secret (a 256-bit random value, so a fast hash is enough).
    pub secret_hash: TokenHash,
    /// When it was added.
    pub created_at: Timestamp,
    /// Whether it carries the admin scope: it may call the admin API (`/v1/admin/…`). Clients
    /// are not admins unless added as one; clients stored before the scope existed are not.
    pub admin: bool,
}

impl fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("created_at", &self.created_at)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// Registered API clients (resource servers).
#[async_trait]
pub trait ClientStore: Send + Sync + fmt::Debug + 'static {
    /// Adds a client, its admin scope included. [`StoreError::Conflict`] if the id or the name
    /// exists.
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;

    /// The client with this id, or `None`.
    async fn client_by_id(&self, id: &str) -> Result<Option<ClientRecord>, StoreError>;

    /// Every client, oldest first.
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;

    /// Removes the client named `name`. Idempotent: `false` if there was none.
    async fn delete_client(&self, name: &str) -> Result<bool, StoreError>;

    /// [`insert_client`](ClientStore::insert_client), and `event` appended to the store's
    /// audit trail in the same transaction if the store keeps one (see [`Audited`]).
    /// Nothing is appended when the client is not inserted.
    ///
    /// The default inserts and leaves the event to the caller.
    async fn insert_client_audited(
        &self,
        client: &ClientRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let _ = event;
        self.insert_client(client).await?;
        Ok(Audited::left_to_caller(()))
    }

    /// [`delete_client`](ClientStore::delete_client), and `event` appended in the same
    /// transaction if the store keeps an audit trail and a client was removed.
    ///
    /// The default removes and leaves the event to the caller.
    async fn delete_client_audited(
        &self,
        name: &str,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let _ = event;
        Ok(Audited::left_to_caller(self.delete_client(name).await?))
    }
}

/// A downstream service registered for token exchange (`tessera service add`): token
/// exchange only issues tokens whose audience is a registered service's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// A name for people (unique), as the CLI and the admin API name it.
    pub name: String,
    /// The audience its tokens carry in `aud` (unique), usually its base URL; what it
    /// configures its verifier with.
    pub audience: String,
    /// The scopes (operations) it understands, in the order registered. A user may receive a
    /// scope if it names no roles, or if the user holds one of the roles it names.
    pub scopes: Vec<ServiceScope>,
    /// The longest lifetime of a token issued for it (access or one-time). Its child
    /// sessions follow the session policy, within their parent's absolute expiry.
    pub max_ttl: Duration,
    /// Whether it may exchange an access token for a child session (a stateful service).
    pub sessions: bool,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// One scope a registered service understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceScope {
    /// The scope token (RFC 6749 §3.3 characters, no `=`).
    pub name: String,
    /// Roles of which a user needs one to receive it; empty means every user may.
    pub roles: Vec<String>,
}

impl fmt::Display for ServiceScope {
    /// `NAME`, or `NAME=ROLE|ROLE` when roles gate it: the form `tessera service add` takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.roles.is_empty() {
            write!(f, "={}", self.roles.join("|"))?;
        }
        Ok(())
    }
}

/// Registered downstream services.
#[async_trait]
pub trait ServiceStore: Send + Sync + fmt::Debug + 'static {
    /// Adds a service. [`StoreError::Conflict`] if the name or the audience exists; never
    /// overwrites.
    async fn insert_service(&self, service: &ServiceRecord) -> Result<(), StoreError>;

    /// The service registered for exactly this audience, or `None`.
    async fn service_by_audience(
        &self,
        audience: &str,
    ) -> Result<Option<ServiceRecord>, StoreError>;

    /// Every service, oldest first.
    async fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError>;

    /// Removes the service named `name`. Idempotent: `false` if there was none. Tokens
    /// already issued for it stay valid until they expire; its child sessions stay until
    /// they end.
    async fn delete_service(&self, name: &str) -> Result<bool, StoreError>;

    /// [`insert_service`](ServiceStore::insert_service), and `event` appended to the store's
    /// audit trail in the same transaction if the store keeps one (see [`Audited`]). Nothing
    /// is appended when the service is not inserted.
    ///
    /// The default inserts and leaves the event to the caller.
    async fn insert_service_audited(
        &self,
        service: &ServiceRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let _ = event;
        self.insert_service(service).await?;
        Ok(Audited::left_to_caller(()))
    }

    /// [`delete_service`](ServiceStore::delete_service), and `event` appended in the same
    /// transaction if the store keeps an audit trail and a service was removed.
    ///
    /// The default removes and leaves the event to the caller.
    async fn delete_service_audited(
        &self,
        name: &str,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let _ = event;
        Ok(Audited::left_to_caller(self.delete_service(name).await?))
    }
}

/// A durable revocation log on its own, for session stores that keep sessions somewhere that
/// may forget them (Redis).
///
/// Losing a session is safe (its user logs in again); losing a revocation is not (a verifier
/// would accept the revoked session's tokens again). So a non-durable session store writes
/// every revocation here — a SQL database — before it marks the session revoked, and
/// [`SessionStore::revocations_since`] and [`SessionStore::revocation_cursor`] read from here.
/// The sequence and ordering rules are those of [`Revocation`].
#[async_trait]
pub trait RevocationLog: Send + Sync + fmt::Debug + 'static {
    /// Appends one entry per `(session, user)`, all revoked at `revoked_at`, atomically and
    /// durably, with strictly increasing sequences in the order given.
    async fn log_revocations(
        &self,
        entries: &[(SessionId, UserId)],
        revoked_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Appends one user entry ([`RevocationKind::User`]) recorded at `at`, durably, after
    /// every entry already logged.
    async fn log_user_stale(&self, user_id: &UserId, at: Timestamp) -> Result<(), StoreError>;

    /// Entries with `sequence > after`, oldest first, at most `limit`.
    async fn logged_since(&self, after: u64, limit: usize) -> Result<Vec<Revocation>, StoreError>;

    /// The highest sequence assigned (`0` before the first entry); trimming never lowers it.
    async fn log_cursor(&self) -> Result<u64, StoreError>;

    /// Deletes at most `limit` entries revoked before `before`. Returns how many went.
    async fn trim_log(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError>;
}

/// A push hint that the revocation log may have grown (PostgreSQL `LISTEN`/`NOTIFY`, Redis
/// pub/sub), so other processes apply a revocation in milliseconds instead of at their next
/// poll.
///
/// A hint only: the log stays the truth. A listener reads the log after it subscribes (the
/// snapshot that covers anything missed while disconnected) and after every notification,
/// and keeps a slow poll as a backstop.
#[async_trait]
pub trait RevocationNotifier: Send + Sync + fmt::Debug + 'static {
    /// Opens a subscription. Notifications sent before this returns may be missed; read the
    /// log afterwards.
    async fn subscribe(&self) -> Result<Box<dyn RevocationSubscription>, StoreError>;
}

/// An open [`RevocationNotifier`] subscription.
#[async_trait]
pub trait RevocationSubscription: Send + fmt::Debug {
    /// Waits for the next notification (several may be folded into one). An error means the
    /// subscription is lost: subscribe again, then read the log.
    async fn notified(&mut self) -> Result<(), StoreError>;
}
