//! The stores the engine calls, wrapped to time every call by backend and operation and to
//! count the calls that failed.
//!
//! Wrapped: users, sessions (with the revocation log reads), refresh tokens and the login
//! throttle — every store call a login, a session check, a refresh or a revocation makes.
//! Not wrapped: signing keys and clients (read at start, on key reload and by client
//! authentication), and the Redis backend's own writes to the database's revocation log.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tessera_core::{
    AuditEvent, Audited, CustomClaims, LoginThrottle, RefreshRecord, RefreshStore, Revocation,
    Roles, Rotation, SessionId, SessionRecord, SessionStore, StoreError, Stores, ThrottleKey,
    ThrottleRule, Timestamp, TokenHash, User, UserId, UserRecord, UserStore, Username,
};

use super::Metrics;

/// Store series.
#[derive(Debug, Clone)]
pub(super) struct StoreMetrics {
    durations: HistogramVec,
    errors: IntCounterVec,
}

impl StoreMetrics {
    pub(super) fn register(registry: &Registry) -> prometheus::Result<Self> {
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "tessera_store_operation_duration_seconds",
                "Store calls by backend and operation, timed (failed ones included).",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            &["backend", "operation"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "tessera_store_errors_total",
                "Store calls that failed (unavailable or corrupt; a conflict is an answer), \
                 by backend and operation.",
            ),
            &["backend", "operation"],
        )?;
        registry.register(Box::new(durations.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        Ok(StoreMetrics { durations, errors })
    }
}

/// `stores` with the users, sessions, refresh and throttle stores timed into `metrics`,
/// each labelled with the backend that holds it.
pub(crate) fn instrument(stores: Stores, backends: Backends, metrics: &Metrics) -> Stores {
    let wrap = |backend| Measured {
        backend,
        metrics: metrics.0.stores.clone(),
    };
    Stores {
        users: Arc::new(Timed {
            inner: stores.users,
            measured: wrap(backends.users),
        }),
        sessions: Arc::new(Timed {
            inner: stores.sessions,
            measured: wrap(backends.sessions),
        }),
        refresh: Arc::new(Timed {
            inner: stores.refresh,
            measured: wrap(backends.sessions),
        }),
        throttle: Arc::new(Timed {
            inner: stores.throttle,
            measured: wrap(backends.sessions),
        }),
        keys: stores.keys,
        clients: stores.clients,
        services: stores.services,
    }
}

/// The `backend` label of the durable store (users) and of the session store (sessions,
/// refresh tokens and login throttle, which live together in every configuration).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backends {
    /// `"sqlite"`, `"postgres"` or `"memory"`.
    pub(crate) users: &'static str,
    /// The same, or `"redis"`.
    pub(crate) sessions: &'static str,
}

#[derive(Debug)]
struct Measured {
    backend: &'static str,
    metrics: StoreMetrics,
}

impl Measured {
    async fn time<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.record(operation, started.elapsed(), result.as_ref().err());
        result
    }

    fn record(&self, operation: &'static str, took: Duration, error: Option<&StoreError>) {
        let labels = [self.backend, operation];
        self.metrics
            .durations
            .with_label_values(&labels)
            .observe(took.as_secs_f64());
        if error.is_some_and(|error| !matches!(error, StoreError::Conflict)) {
            self.metrics.errors.with_label_values(&labels).inc();
        }
    }
}

/// A store `S` whose every call is timed.
#[derive(Debug)]
struct Timed<S: ?Sized> {
    measured: Measured,
    inner: Arc<S>,
}

#[async_trait]
impl UserStore for Timed<dyn UserStore> {
    async fn create_user(
        &self,
        username: &Username,
        record: &UserRecord,
    ) -> Result<(), StoreError> {
        let call = self.inner.create_user(username, record);
        self.measured.time("create_user", call).await
    }

    async fn user_by_username(&self, username_key: &str) -> Result<Option<UserRecord>, StoreError> {
        let call = self.inner.user_by_username(username_key);
        self.measured.time("user_by_username", call).await
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let call = self.inner.user_by_id(id);
        self.measured.time("user_by_id", call).await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let call = self.inner.list_users();
        self.measured.time("list_users", call).await
    }

    async fn users_page(
        &self,
        after: Option<&str>,
        limit: usize,
        contains: Option<&str>,
    ) -> Result<Vec<User>, StoreError> {
        let call = self.inner.users_page(after, limit, contains);
        self.measured.time("users_page", call).await
    }

    async fn set_password_hash(
        &self,
        id: &UserId,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let call = self.inner.set_password_hash(id, password_hash);
        self.measured.time("set_password_hash", call).await
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        let call = self.inner.delete_user(id);
        self.measured.time("delete_user", call).await
    }

    async fn set_roles(&self, id: &UserId, roles: &Roles) -> Result<bool, StoreError> {
        let call = self.inner.set_roles(id, roles);
        self.measured.time("set_roles", call).await
    }

    async fn swap_roles(
        &self,
        id: &UserId,
        expected: &Roles,
        roles: &Roles,
    ) -> Result<bool, StoreError> {
        let call = self.inner.swap_roles(id, expected, roles);
        self.measured.time("swap_roles", call).await
    }

    async fn set_claims(&self, id: &UserId, claims: &CustomClaims) -> Result<bool, StoreError> {
        let call = self.inner.set_claims(id, claims);
        self.measured.time("set_claims", call).await
    }

    async fn set_disabled(&self, id: &UserId, disabled: bool) -> Result<bool, StoreError> {
        let call = self.inner.set_disabled(id, disabled);
        self.measured.time("set_disabled", call).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.measured.time("ping", self.inner.ping()).await
    }

    // The audited forms go through to the store (so its event stays in the change's
    // transaction), timed under the plain operation's name.
    async fn create_user_audited(
        &self,
        username: &Username,
        record: &UserRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let call = self.inner.create_user_audited(username, record, event);
        self.measured.time("create_user", call).await
    }

    async fn delete_user_audited(
        &self,
        id: &UserId,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let call = self.inner.delete_user_audited(id, event);
        self.measured.time("delete_user", call).await
    }
}

#[async_trait]
impl SessionStore for Timed<dyn SessionStore> {
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let call = self.inner.insert_session(record);
        self.measured.time("insert_session", call).await
    }

    async fn session_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let call = self.inner.session_by_id(id);
        self.measured.time("session_by_id", call).await
    }

    async fn touch_session(
        &self,
        id: &SessionId,
        seen: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let call = self.inner.touch_session(id, seen, idle_expires_at);
        self.measured.time("touch_session", call).await
    }

    async fn record_authentication(
        &self,
        id: &SessionId,
        auth_time: Timestamp,
    ) -> Result<bool, StoreError> {
        let call = self.inner.record_authentication(id, auth_time);
        self.measured.time("record_authentication", call).await
    }

    async fn sessions_of_user(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let call = self.inner.sessions_of_user(user_id, now);
        self.measured.time("sessions_of_user", call).await
    }

    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool, StoreError> {
        let call = self.inner.revoke_session(id, now);
        self.measured.time("revoke_session", call).await
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let call = self.inner.revoke_user_sessions(user_id, keep, now);
        self.measured.time("revoke_user_sessions", call).await
    }

    async fn mark_user_stale(&self, user_id: &UserId, at: Timestamp) -> Result<(), StoreError> {
        let call = self.inner.mark_user_stale(user_id, at);
        self.measured.time("mark_user_stale", call).await
    }

    async fn children_of(
        &self,
        parent: &SessionId,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let call = self.inner.children_of(parent, user_id, now);
        self.measured.time("children_of", call).await
    }

    async fn log_lost_revocation(
        &self,
        id: &SessionId,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let call = self.inner.log_lost_revocation(id, user_id, now);
        self.measured.time("log_lost_revocation", call).await
    }

    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Revocation>, StoreError> {
        let call = self.inner.revocations_since(after, limit);
        self.measured.time("revocations_since", call).await
    }

    async fn revocation_cursor(&self) -> Result<u64, StoreError> {
        let call = self.inner.revocation_cursor();
        self.measured.time("revocation_cursor", call).await
    }

    async fn purge_expired(
        &self,
        now: Timestamp,
        revocation_retention: Duration,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let call = self.inner.purge_expired(now, revocation_retention, limit);
        self.measured.time("purge_expired", call).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.measured.time("ping", self.inner.ping()).await
    }

    async fn revoke_session_audited(
        &self,
        id: &SessionId,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let call = self.inner.revoke_session_audited(id, now, event);
        self.measured.time("revoke_session", call).await
    }

    async fn revoke_user_sessions_audited(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Audited<Vec<SessionId>>, StoreError> {
        let call = self
            .inner
            .revoke_user_sessions_audited(user_id, keep, now, event);
        self.measured.time("revoke_user_sessions", call).await
    }
}

#[async_trait]
impl RefreshStore for Timed<dyn RefreshStore> {
    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        let call = self.inner.insert_refresh(record);
        self.measured.time("insert_refresh", call).await
    }

    async fn refresh_by_token(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let call = self.inner.refresh_by_token(token_hash);
        self.measured.time("refresh_by_token", call).await
    }

    async fn rotate_refresh(
        &self,
        parent: &TokenHash,
        successor: &RefreshRecord,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        let call = self.inner.rotate_refresh(parent, successor, now);
        self.measured.time("rotate_refresh", call).await
    }

    async fn purge_refresh(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let call = self.inner.purge_refresh(now, limit);
        self.measured.time("purge_refresh", call).await
    }
}

#[async_trait]
impl LoginThrottle for Timed<dyn LoginThrottle> {
    async fn blocked_for(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError> {
        let call = self.inner.blocked_for(key, rule, now);
        self.measured.time("throttle_blocked_for", call).await
    }

    async fn record_failure(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let call = self.inner.record_failure(key, rule, now);
        self.measured.time("throttle_record_failure", call).await
    }

    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        let call = self.inner.reset(key);
        self.measured.time("throttle_reset", call).await
    }
}
