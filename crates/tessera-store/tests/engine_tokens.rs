//! The engine's refresh-token and access-token rules at their edges, over real stores with a
//! fixed clock: what a mutation of `engine/tokens.rs` or `engine/validation.rs` would break.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tessera_core::password::{HashingLimits, HashingParams};
use tessera_core::{
    Engine, EngineConfig, Error, LoginAttempt, ManualClock, PasswordHasher, RefreshToken, Role,
    SessionPolicy, SessionStore, Stores, SystemClock, TokenGrant, Transport, ValidSession,
};
use tessera_store::memory::{MemoryStore, MemoryThrottle};
use tessera_store::sqlite::SqliteStore;

const PASSWORD: &str = "correct horse battery staple";
const GRACE: Duration = Duration::from_secs(10);

fn clock() -> ManualClock {
    ManualClock::new(tessera_core::Clock::now(&SystemClock))
}

fn memory_stores() -> Stores {
    let memory = Arc::new(MemoryStore::new());
    Stores {
        users: memory.clone(),
        sessions: memory.clone(),
        refresh: memory.clone(),
        keys: memory.clone(),
        services: memory.clone(),
        clients: memory,
        throttle: Arc::new(MemoryThrottle::new()),
    }
}

fn sqlite_stores(store: &SqliteStore) -> Stores {
    Stores {
        users: Arc::new(store.clone()),
        sessions: Arc::new(store.clone()),
        refresh: Arc::new(store.clone()),
        keys: Arc::new(store.clone()),
        services: Arc::new(store.clone()),
        clients: Arc::new(store.clone()),
        throttle: Arc::new(store.clone()),
    }
}

fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.tokens.refresh_grace = GRACE;
    config
}

async fn engine(stores: Stores, clock: &ManualClock, config: EngineConfig) -> Engine {
    let hasher = PasswordHasher::new(HashingParams::default(), HashingLimits::default()).unwrap();
    Engine::new(stores, hasher, Arc::new(clock.clone()), config)
        .await
        .unwrap()
}

/// Alice logged in with the token transport: her session and its first refresh token.
async fn token_login(engine: &Engine) -> (ValidSession, TokenGrant) {
    if engine.user_by_username("alice").await.is_err() {
        engine.create_user("alice", PASSWORD).await.unwrap();
    }
    let login = engine
        .login(LoginAttempt {
            username: "alice",
            password: PASSWORD,
            transport: Transport::Token,
            ip: None,
            user_agent: None,
        })
        .await
        .unwrap();
    let grant = engine.issue_tokens(&login.session).await.unwrap();
    (login.session, grant)
}

fn same_token(a: &RefreshToken, b: &RefreshToken) -> bool {
    a.encode() == b.encode()
}

#[tokio::test]
async fn reuse_after_grace_revokes_the_session_in_the_store_not_only_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let clock = clock();
    let first = engine(sqlite_stores(&store), &clock, config()).await;
    let (session, grant) = token_login(&first).await;
    first.refresh(&grant.refresh_token).await.unwrap();
    clock.advance(GRACE + Duration::from_secs(1));
    assert!(matches!(
        first.refresh(&grant.refresh_token).await,
        Err(Error::InvalidGrant)
    ));

    // The theft is in the store: another instance, or this one after a restart, refuses the
    // session too.
    let id = &session.record().id;
    let stored = store.session_by_id(id).await.unwrap().unwrap();
    assert!(stored.revoked_at.is_some(), "revoked in the store");
    let reopened = SqliteStore::open(&path).await.unwrap();
    let second = engine(sqlite_stores(&reopened), &clock, config()).await;
    assert!(matches!(
        second.session_for_access(id).await,
        Err(Error::Unauthenticated)
    ));
}

#[tokio::test]
async fn a_parent_replayed_inside_grace_after_its_successor_was_used_is_theft() {
    let clock = clock();
    let engine = engine(memory_stores(), &clock, config()).await;
    let (session, grant) = token_login(&engine).await;
    let successor = engine.refresh(&grant.refresh_token).await.unwrap();
    // The real client moves on: the successor is spent too.
    engine
        .refresh(&successor.tokens.refresh_token)
        .await
        .unwrap();
    // A thief replays the parent while its grace window is still open.
    clock.advance(Duration::from_secs(1));
    assert!(matches!(
        engine.refresh(&grant.refresh_token).await,
        Err(Error::InvalidGrant)
    ));
    assert!(matches!(
        engine.session_for_access(&session.record().id).await,
        Err(Error::Unauthenticated)
    ));
}

#[tokio::test]
async fn the_grace_window_ends_exactly_at_its_length() {
    let clock = clock();
    let engine = engine(memory_stores(), &clock, config()).await;

    // One millisecond before the end: the same successor pair again.
    let (_, grant) = token_login(&engine).await;
    let successor = engine.refresh(&grant.refresh_token).await.unwrap();
    clock.advance(GRACE - Duration::from_millis(1));
    let retried = engine.refresh(&grant.refresh_token).await.unwrap();
    assert!(same_token(
        &retried.tokens.refresh_token,
        &successor.tokens.refresh_token
    ));
    assert_eq!(
        retried.tokens.access.token_id,
        successor.tokens.access.token_id
    );

    // At the end itself: theft.
    let (session, grant) = token_login(&engine).await;
    engine.refresh(&grant.refresh_token).await.unwrap();
    clock.advance(GRACE);
    assert!(matches!(
        engine.refresh(&grant.refresh_token).await,
        Err(Error::InvalidGrant)
    ));
    assert!(matches!(
        engine.session_for_access(&session.record().id).await,
        Err(Error::Unauthenticated)
    ));
}

#[tokio::test]
async fn an_access_token_of_an_idle_expired_session_is_refused() {
    let clock = clock();
    let mut config = config();
    // Idle timeout shorter than the access-token lifetime: a JWT can outlive its session's
    // idleness, and must not outlive the check.
    config.session = SessionPolicy::new(Duration::from_secs(60), Duration::from_secs(3600));
    config.tokens.access_ttl = Duration::from_secs(300);
    let engine = engine(memory_stores(), &clock, config).await;
    let (session, _) = token_login(&engine).await;
    let id = &session.record().id;
    engine.session_for_access(id).await.unwrap();
    clock.advance(Duration::from_secs(61));
    assert!(matches!(
        engine.session_for_access(id).await,
        Err(Error::SessionExpired)
    ));
}

#[tokio::test]
async fn an_access_token_of_a_session_past_its_absolute_expiry_is_refused() {
    let clock = clock();
    let mut config = config();
    config.session = SessionPolicy::new(Duration::from_secs(600), Duration::from_secs(900));
    let engine = engine(memory_stores(), &clock, config).await;
    let (session, grant) = token_login(&engine).await;
    let id = &session.record().id;
    // Keep it active (a refresh slides the idle expiry) until past the absolute expiry.
    let mut refresh = grant.refresh_token;
    for _ in 0..3 {
        clock.advance(Duration::from_secs(290));
        refresh = engine.refresh(&refresh).await.unwrap().tokens.refresh_token;
    }
    clock.advance(Duration::from_secs(60));
    assert!(matches!(
        engine.session_for_access(id).await,
        Err(Error::SessionExpired)
    ));
}

fn alice_login(transport: Transport) -> LoginAttempt<'static> {
    LoginAttempt {
        username: "alice",
        password: PASSWORD,
        transport,
        ip: None,
        user_agent: None,
    }
}

#[tokio::test]
async fn a_change_of_standing_stales_earlier_access_tokens_on_every_engine_and_a_refresh_carries_it()
 {
    let stores = memory_stores();
    let clock = clock();
    let a = engine(stores.clone(), &clock, config()).await;
    let b = engine(stores, &clock, config()).await;
    let (session, grant) = token_login(&a).await;
    let user = session.record().user_id.clone();
    let iat = grant.access.issued_at.unix_seconds();
    assert!(grant.access.roles.is_empty() && grant.access.claims.is_empty());
    assert!(!a.is_token_stale(&user, iat) && !b.is_token_stale(&user, iat));

    clock.advance(Duration::from_millis(300));
    assert!(
        a.add_role(&user, Role::parse("admin").unwrap())
            .await
            .unwrap()
    );
    assert!(
        a.is_token_stale(&user, iat),
        "the engine that made the change knows"
    );
    assert!(
        !b.is_token_stale(&user, iat),
        "the other has not read the log yet"
    );
    b.sync_revocations().await.unwrap();
    assert!(b.is_token_stale(&user, iat), "… and knows once it has");
    let stranger = tessera_core::UserId::generate().unwrap();
    assert!(
        !b.is_token_stale(&stranger, iat),
        "other users are untouched"
    );
    // Sessions are untouched by a role change: the session check still passes.
    b.session_for_access(&session.record().id).await.unwrap();
    assert!(
        !a.add_role(&user, Role::parse("admin").unwrap())
            .await
            .unwrap()
    );

    let refreshed = b.refresh(&grant.refresh_token).await.unwrap();
    let access = &refreshed.tokens.access;
    assert_eq!(access.roles.iter().collect::<Vec<_>>(), ["admin"]);
    assert!(
        access.issued_at.unix_seconds() > iat,
        "issued in a later second"
    );
    assert!(!a.is_token_stale(&user, access.issued_at.unix_seconds()));
    assert!(!b.is_token_stale(&user, access.issued_at.unix_seconds()));

    // Claims too; an invalid claim changes nothing and stales nothing.
    let before = b.revocation_cursor().await.unwrap();
    assert!(matches!(
        a.set_claim(&user, "sub", serde_json::json!("someone-else"))
            .await,
        Err(Error::InvalidStanding(_))
    ));
    assert_eq!(b.revocation_cursor().await.unwrap(), before);
    a.set_claim(&user, "tenant", serde_json::json!("acme"))
        .await
        .unwrap();
    assert!(b.revocation_cursor().await.unwrap() > before);
    let again = a.refresh(&refreshed.tokens.refresh_token).await.unwrap();
    assert_eq!(again.tokens.access.claims.as_map()["tenant"], "acme");
}

#[tokio::test]
async fn a_disabled_user_has_no_session_no_login_and_no_refresh_until_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("tessera.db"))
        .await
        .unwrap();
    let clock = clock();
    let engine = engine(sqlite_stores(&store), &clock, config()).await;
    let (token_session, grant) = token_login(&engine).await;
    let user = token_session.record().user_id.clone();
    let cookie = engine.login(alice_login(Transport::Cookie)).await.unwrap();

    assert_eq!(engine.disable_user(&user).await.unwrap(), 2);
    assert!(engine.standing_of(&user).await.unwrap().disabled);
    assert!(matches!(
        engine.validate(&cookie.token).await,
        Err(Error::Unauthenticated)
    ));
    assert!(matches!(
        engine.session_for_access(&token_session.record().id).await,
        Err(Error::Unauthenticated)
    ));
    assert!(engine.is_token_stale(&user, grant.access.issued_at.unix_seconds()));
    assert!(matches!(
        engine.refresh(&grant.refresh_token).await,
        Err(Error::InvalidGrant)
    ));
    assert!(matches!(
        engine.login(alice_login(Transport::Cookie)).await,
        Err(Error::InvalidCredentials)
    ));
    assert_eq!(engine.login_outcomes().invalid_credentials, 1);
    assert_eq!(engine.disable_user(&user).await.unwrap(), 0, "idempotent");

    engine.enable_user(&user).await.unwrap();
    let back = engine.login(alice_login(Transport::Cookie)).await.unwrap();
    engine.validate(&back.token).await.unwrap();
    let stranger = tessera_core::UserId::generate().unwrap();
    assert!(matches!(
        engine.disable_user(&stranger).await,
        Err(Error::UserNotFound)
    ));
}

/// Role changes racing on two instances over one store all land: adding and removing a role
/// read the set, change it and store it only over the set they read (compare-and-set),
/// trying again when another change came first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_role_changes_on_two_instances_lose_none() {
    const ADDS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("tessera.db"))
        .await
        .unwrap();
    let clock = clock();
    let a = engine(sqlite_stores(&store), &clock, config()).await;
    let b = engine(sqlite_stores(&store), &clock, config()).await;
    let user = a.create_user("alice", PASSWORD).await.unwrap().id;
    let doomed = Role::parse("doomed").unwrap();
    assert!(a.add_role(&user, doomed.clone()).await.unwrap());

    let start = Arc::new(tokio::sync::Barrier::new(ADDS + 1));
    let mut tasks = Vec::new();
    for n in 0..ADDS {
        let engine = if n % 2 == 0 { a.clone() } else { b.clone() };
        let (user, start) = (user.clone(), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            let role = Role::parse(&format!("role-{n:02}")).unwrap();
            start.wait().await;
            engine.add_role(&user, role).await.unwrap()
        }));
    }
    let remover = {
        let (engine, user, start) = (b.clone(), user.clone(), Arc::clone(&start));
        tokio::spawn(async move {
            start.wait().await;
            engine.remove_role(&user, &doomed).await.unwrap()
        })
    };
    for task in tasks {
        assert!(task.await.unwrap(), "every add changed something");
    }
    assert!(remover.await.unwrap());

    let roles = a.standing_of(&user).await.unwrap().roles;
    let wanted: Vec<String> = (0..ADDS).map(|n| format!("role-{n:02}")).collect();
    assert_eq!(
        roles.iter().collect::<Vec<_>>(),
        wanted,
        "a change was lost"
    );
}

#[tokio::test]
async fn stale_users_are_forgotten_once_every_token_they_stale_has_expired() {
    let stores = memory_stores();
    let clock = clock();
    let engine = engine(stores, &clock, config()).await;
    let (session, _) = token_login(&engine).await;
    let user = session.record().user_id.clone();
    engine.mark_user_stale(&user).await.unwrap();
    assert_eq!(engine.stale_users(), 1);
    clock.advance(engine.config().revocation_retention - Duration::from_secs(1));
    engine.purge_expired().await.unwrap();
    assert_eq!(
        engine.stale_users(),
        1,
        "kept while a token could still be live"
    );
    clock.advance(Duration::from_secs(2));
    engine.purge_expired().await.unwrap();
    assert_eq!(engine.stale_users(), 0);
}
