//! Engine behaviour that depends on what the stores do when they fail or disagree: a stale
//! revocation feed, and a session store that still shows a logged revocation as live.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::password::{HashingLimits, HashingParams};
use tessera_core::{
    Engine, EngineConfig, Error, LoginAttempt, ManualClock, PasswordHasher, Revocation, SessionId,
    SessionRecord, SessionStore, SessionToken, StoreError, Stores, SystemClock, Timestamp,
    Transport, UserId,
};
use tessera_store::memory::{MemoryStore, MemoryThrottle};
use tessera_store::sqlite::SqliteStore;

const PASSWORD: &str = "correct horse battery staple";

fn stores(sessions: Arc<dyn SessionStore>, rest: Arc<MemoryStore>) -> Stores {
    Stores {
        users: rest.clone(),
        sessions,
        refresh: rest.clone(),
        keys: rest.clone(),
        services: rest.clone(),
        clients: rest,
        throttle: Arc::new(MemoryThrottle::new()),
    }
}

async fn engine(stores: Stores, clock: &ManualClock, config: EngineConfig) -> Engine {
    let hasher = PasswordHasher::new(HashingParams::default(), HashingLimits::default()).unwrap();
    Engine::new(stores, hasher, Arc::new(clock.clone()), config)
        .await
        .unwrap()
}

async fn log_in(engine: &Engine) -> SessionToken {
    engine
        .login(LoginAttempt {
            username: "alice",
            password: PASSWORD,
            transport: Transport::Cookie,
            ip: None,
            user_agent: None,
        })
        .await
        .unwrap()
        .token
}

fn clock() -> ManualClock {
    ManualClock::new(tessera_core::Clock::now(&SystemClock))
}

#[tokio::test]
async fn a_stale_revocation_feed_stops_trusting_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("tessera.db"))
        .await
        .unwrap();
    let clock = clock();
    let config = EngineConfig {
        revocation_max_staleness: Some(Duration::from_secs(5)),
        ..EngineConfig::default()
    };
    let stores = Stores {
        users: Arc::new(store.clone()),
        sessions: Arc::new(store.clone()),
        refresh: Arc::new(store.clone()),
        keys: Arc::new(store.clone()),
        services: Arc::new(store.clone()),
        clients: Arc::new(store.clone()),
        throttle: Arc::new(store.clone()),
    };
    let engine = engine(stores, &clock, config).await;
    engine.create_user("alice", PASSWORD).await.unwrap();
    let token = log_in(&engine).await;
    engine.validate(&token).await.unwrap();

    // The store goes away; a fresh feed still lets the cache answer.
    store.close().await;
    clock.advance(Duration::from_secs(4));
    engine.validate(&token).await.unwrap();

    // Past the bound, nothing is answered from memory: the store must decide, and cannot.
    clock.advance(Duration::from_secs(2));
    assert!(matches!(
        engine.validate(&token).await,
        Err(Error::Store(StoreError::Unavailable(_)))
    ));
    assert!(engine.revocation_feed_age() > Duration::from_secs(5));
    assert!(engine.sync_revocations().await.is_err());
    assert!(matches!(
        engine.validate(&token).await,
        Err(Error::Store(StoreError::Unavailable(_)))
    ));
}

#[tokio::test]
async fn without_a_bound_the_cache_is_trusted_however_old_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("tessera.db"))
        .await
        .unwrap();
    let clock = clock();
    let stores = Stores {
        users: Arc::new(store.clone()),
        sessions: Arc::new(store.clone()),
        refresh: Arc::new(store.clone()),
        keys: Arc::new(store.clone()),
        services: Arc::new(store.clone()),
        clients: Arc::new(store.clone()),
        throttle: Arc::new(store.clone()),
    };
    let engine = engine(stores, &clock, EngineConfig::default()).await;
    engine.create_user("alice", PASSWORD).await.unwrap();
    let token = log_in(&engine).await;
    engine.validate(&token).await.unwrap();
    store.close().await;
    // Well past any staleness bound, short of the touch interval (which writes).
    clock.advance(Duration::from_secs(30));
    engine.validate(&token).await.unwrap();
}

/// A session store that logs revocations but keeps showing every session as unrevoked, as
/// Redis does after a failure between logging a revocation and marking the record.
#[derive(Debug)]
struct StillLooksLive(Arc<MemoryStore>);

fn unrevoked(record: Option<SessionRecord>) -> Option<SessionRecord> {
    record.map(|mut record| {
        record.revoked_at = None;
        record
    })
}

#[async_trait]
impl SessionStore for StillLooksLive {
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.0.insert_session(record).await
    }
    async fn session_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        Ok(unrevoked(self.0.session_by_id(id).await?))
    }
    async fn touch_session(
        &self,
        id: &SessionId,
        seen: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.0.touch_session(id, seen, idle_expires_at).await
    }
    async fn record_authentication(
        &self,
        id: &SessionId,
        auth_time: Timestamp,
    ) -> Result<bool, StoreError> {
        self.0.record_authentication(id, auth_time).await
    }
    async fn sessions_of_user(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.0.sessions_of_user(user_id, now).await
    }
    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool, StoreError> {
        self.0.revoke_session(id, now).await
    }
    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        self.0.revoke_user_sessions(user_id, keep, now).await
    }
    async fn mark_user_stale(&self, user_id: &UserId, at: Timestamp) -> Result<(), StoreError> {
        self.0.mark_user_stale(user_id, at).await
    }
    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Revocation>, StoreError> {
        self.0.revocations_since(after, limit).await
    }
    async fn revocation_cursor(&self) -> Result<u64, StoreError> {
        self.0.revocation_cursor().await
    }
    async fn purge_expired(
        &self,
        now: Timestamp,
        revocation_retention: Duration,
        limit: usize,
    ) -> Result<u64, StoreError> {
        self.0.purge_expired(now, revocation_retention, limit).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        SessionStore::ping(self.0.as_ref()).await
    }
}

#[tokio::test]
async fn a_logged_revocation_wins_over_a_store_that_still_shows_the_session() {
    let memory = Arc::new(MemoryStore::new());
    let sessions: Arc<dyn SessionStore> = Arc::new(StillLooksLive(memory.clone()));
    let clock = clock();
    let revoker = engine(
        stores(sessions.clone(), memory.clone()),
        &clock,
        EngineConfig::default(),
    )
    .await;
    let other = engine(
        stores(sessions.clone(), memory.clone()),
        &clock,
        EngineConfig::default(),
    )
    .await;
    revoker.create_user("alice", PASSWORD).await.unwrap();
    let token = log_in(&revoker).await;
    let session = revoker.validate(&token).await.unwrap();
    other.validate(&token).await.unwrap();

    revoker.logout(&session).await.unwrap();
    // The instance that revoked knows at once, though the store still says "live".
    assert!(matches!(
        revoker.validate(&token).await,
        Err(Error::Unauthenticated)
    ));
    // Another instance, once the log reached it.
    other.sync_revocations().await.unwrap();
    assert!(matches!(
        other.validate(&token).await,
        Err(Error::Unauthenticated)
    ));
    assert!(matches!(
        other.session_for_access(&session.record().id).await,
        Err(Error::Unauthenticated)
    ));
    // And an instance started afterwards (a restart) reads the log at start.
    let restarted = engine(stores(sessions, memory), &clock, EngineConfig::default()).await;
    assert!(matches!(
        restarted.validate(&token).await,
        Err(Error::Unauthenticated)
    ));
}

/// A session store that keeps no audit trail of its own (as Redis): the audited methods keep
/// their defaults, which leave the event to the engine.
#[derive(Debug)]
struct NoTrail(Arc<MemoryStore>);

#[async_trait]
impl SessionStore for NoTrail {
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.0.insert_session(record).await
    }
    async fn session_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.0.session_by_id(id).await
    }
    async fn touch_session(
        &self,
        id: &SessionId,
        seen: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.0.touch_session(id, seen, idle_expires_at).await
    }
    async fn sessions_of_user(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.0.sessions_of_user(user_id, now).await
    }
    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool, StoreError> {
        self.0.revoke_session(id, now).await
    }
    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        self.0.revoke_user_sessions(user_id, keep, now).await
    }
    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Revocation>, StoreError> {
        self.0.revocations_since(after, limit).await
    }
    async fn revocation_cursor(&self) -> Result<u64, StoreError> {
        self.0.revocation_cursor().await
    }
    async fn purge_expired(
        &self,
        now: Timestamp,
        revocation_retention: Duration,
        limit: usize,
    ) -> Result<u64, StoreError> {
        self.0.purge_expired(now, revocation_retention, limit).await
    }
    async fn record_authentication(
        &self,
        id: &SessionId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.0.record_authentication(id, at).await
    }
    async fn mark_user_stale(&self, user_id: &UserId, now: Timestamp) -> Result<(), StoreError> {
        self.0.mark_user_stale(user_id, now).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        SessionStore::ping(self.0.as_ref()).await
    }
}

/// With a session store that leaves events to the engine, the engine appends them after the
/// change, once, and never for a revocation that revoked nothing.
#[tokio::test]
async fn events_left_to_the_engine_are_appended_after_the_change_and_only_then() {
    use tessera_core::{AuditFilter, AuditKind};

    let memory = Arc::new(MemoryStore::new());
    let clock = clock();
    let hasher = PasswordHasher::new(HashingParams::default(), HashingLimits::default()).unwrap();
    let engine = Engine::with_audit_trail(
        stores(Arc::new(NoTrail(memory.clone())), memory.clone()),
        memory.clone(),
        hasher,
        Arc::new(clock.clone()),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    let alice = engine.create_user("alice", PASSWORD).await.unwrap();
    let first = engine.validate(&log_in(&engine).await).await.unwrap();
    log_in(&engine).await;

    engine.logout(&first).await.unwrap();
    // Already revoked: the store revokes nothing, so nothing is recorded.
    engine.logout(&first).await.unwrap();
    let unknown = SessionId::generate().unwrap();
    assert!(matches!(
        engine.revoke_session(&unknown).await,
        Err(Error::SessionNotFound)
    ));
    assert_eq!(engine.revoke_user_sessions(&alice.id).await.unwrap(), 1);
    assert_eq!(engine.revoke_user_sessions(&alice.id).await.unwrap(), 0);

    let records = engine
        .audit_events(&AuditFilter::default(), 0, 100)
        .await
        .unwrap();
    let kinds: Vec<AuditKind> = records.iter().map(|record| record.event.kind).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::UserCreated,
            AuditKind::LoginSucceeded,
            AuditKind::LoginSucceeded,
            AuditKind::Logout,
            AuditKind::SessionsRevoked,
        ]
    );
    assert_eq!(records[4].event.detail.get("count"), Some("1"));
    assert_eq!(
        records[3].event.session_id.as_ref(),
        Some(&first.record().id)
    );
}
