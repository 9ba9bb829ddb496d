//! The engine: register, log in, validate, log out, list and revoke — every rule about
//! sessions in one place, over whichever stores it is given.
//!
//! One file per reason to change:
//!
//! - [`config`](EngineConfig): what an operator can set, and the defaults.
//! - `users`: accounts (create, list, delete).
//! - `account`: the owner's re-authentication, password change and deletion, and the
//!   administrator's password reset.
//! - `login`: log in, throttling, rehash on login.
//! - `validation`: the hot path — session tokens and access-token sessions, the cache.
//! - `revocation`: logout, listing, revocation, following the revocation log, purge.
//! - `tokens`: refresh-token chains (rotation, grace, theft).
//! - `standing`: roles, custom claims, disable/enable, and the user entries of the
//!   revocation log that make access tokens stale.
//! - `clients`: registered API clients.
//! - `audit`: the audit trail — who is acting ([`Engine::with_context`]), recording events,
//!   querying and purging them.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};

use dashmap::DashMap;

pub use self::account::PasswordChange;
pub use self::clients::NewClient;
pub use self::config::EngineConfig;
pub use self::exchange::{
    ExchangeRejection, MAX_SERVICE_TTL, NewService, ServiceRejection, allowed_scopes, grant_scopes,
    is_scope_token,
};
pub use self::login::{LoggedIn, LoginAttempt, LoginOutcomes};
pub use self::revocation::{RememberedRevocations, RevokeScope};
pub use self::standing::StandingChange;
pub use self::tokens::{AccessGrant, Refreshed, TokenGrant, TokenPolicy};
pub use self::validation::ValidSession;
use crate::audit::{AuditContext, AuditStore};
use crate::cache::{CacheLookups, SessionCache};
use crate::id::{Secret, SessionId, UserId};
use crate::password::{HashingLoad, PasswordHasher};
use crate::store::{
    ClientStore, KeyStore, RefreshStore, ServiceStore, SessionStore, StoreError, UserStore,
};
use crate::throttle::{LoginThrottle, ThrottleKey};
use crate::time::{Clock, Timestamp};

mod account;
mod audit;
mod clients;
mod config;
mod exchange;
mod login;
mod revocation;
mod standing;
mod tokens;
mod users;
mod validation;

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
    /// Registered downstream services (token-exchange audiences).
    pub services: Arc<dyn ServiceStore>,
}

/// The session engine. Cheap to clone; clones share everything but the audit context
/// ([`Engine::with_context`]).
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
    /// Who is acting and from where, for the audit events this handle records.
    context: Option<Arc<AuditContext>>,
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
    /// Users whose standing changed, with the `stale_before` of their latest user entry:
    /// their access tokens with an earlier `iat` are refused. Kept, like `revoked`, for
    /// `revocation_retention`, which outlasts every access token.
    stale_users: DashMap<UserId, Timestamp>,
    /// Usernames by user id, so a cache miss reads the session store only. Accounts are
    /// never renamed, and deleting one revokes its sessions first.
    usernames: DashMap<UserId, Arc<str>>,
    /// The key successor refresh tokens are derived under (shared by all instances).
    rotation_key: Vec<u8>,
    /// Login attempts by outcome, for metrics.
    logins: login::LoginCounters,
    /// Where audit events go; `None` for an engine built without an audit trail.
    audit: Option<Arc<dyn AuditStore>>,
    /// When a throttled login was last recorded, by the throttle key that refused it, so a
    /// flood of refused attempts (which cost no password hash) writes one event a minute
    /// per key and instance instead of one per request.
    throttle_recorded: DashMap<ThrottleKey, Timestamp>,
    /// Bumped whenever the revocation log is known to have grown: this process revoked a
    /// session or marked a user stale, or read new entries other processes wrote. The
    /// revocation stream waits on it instead of only polling.
    log_grew: tokio::sync::watch::Sender<u64>,
}

/// Name of the server secret refresh-token successors are derived under.
const REFRESH_ROTATION_SECRET: &str = "refresh-rotation";

impl Engine {
    /// An engine over `stores`, without an audit trail (events go to the log only). Reads
    /// the revocation log's position, so it fails if the session store is unreachable.
    pub async fn new(
        stores: Stores,
        hasher: PasswordHasher,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Self, StoreError> {
        Engine::build(stores, None, hasher, clock, config).await
    }

    /// An engine over `stores` that records authentication and administration events in
    /// `audit` as well as in the log.
    ///
    /// `audit` must be the database that holds `stores.users` (and, for SQL session stores,
    /// the sessions): stores that write an event in the same transaction as its change
    /// write it to their own trail.
    pub async fn with_audit_trail(
        stores: Stores,
        audit: Arc<dyn AuditStore>,
        hasher: PasswordHasher,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Self, StoreError> {
        Engine::build(stores, Some(audit), hasher, clock, config).await
    }

    async fn build(
        stores: Stores,
        audit: Option<Arc<dyn AuditStore>>,
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
                stale_users: DashMap::new(),
                usernames: DashMap::new(),
                rotation_key,
                logins: login::LoginCounters::default(),
                audit,
                throttle_recorded: DashMap::new(),
                log_grew: tokio::sync::watch::Sender::new(0),
            }),
            context: None,
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

    /// Sessions held in the in-process cache (for metrics and tests).
    pub fn cached_sessions(&self) -> usize {
        self.inner.cache.len()
    }

    /// Revoked sessions and users whose standing changed, remembered in process (for
    /// metrics): each until `revocation_retention` after its revocation, so the count
    /// follows the revocation rate over that window and no further.
    pub fn remembered_revocations(&self) -> RememberedRevocations {
        RememberedRevocations {
            sessions: self.inner.revoked.len(),
            users: self.inner.stale_users.len(),
        }
    }

    /// Session-cache hits and misses since start (for metrics).
    pub fn cache_lookups(&self) -> CacheLookups {
        self.inner.cache.lookups()
    }

    /// Login attempts by outcome since start (for metrics).
    pub fn login_outcomes(&self) -> LoginOutcomes {
        self.inner.logins.snapshot()
    }

    /// The password hasher's current load and its callers' waits so far (for metrics).
    pub fn hashing_load(&self) -> HashingLoad {
        self.inner.hasher.load()
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }
}
