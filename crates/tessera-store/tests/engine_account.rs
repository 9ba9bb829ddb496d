//! The engine's account rules over real stores with a fixed clock: re-authentication and the
//! recent-authentication window, password change (the other sessions end, the caller's
//! continues under a new id), administrative reset, and self-service deletion — and that a
//! refused request changes nothing.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::password::{HashingLimits, HashingParams};
use tessera_core::{
    Engine, EngineConfig, Error, LoginAttempt, ManualClock, PasswordChange, PasswordHasher,
    RevokeScope, SessionToken, Stores, SystemClock, Transport, ValidSession,
};
use tessera_store::sqlite::SqliteStore;

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a brand new passphrase";
const WINDOW: Duration = Duration::from_secs(10 * 60);

struct Setup {
    engine: Engine,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("tessera.db"))
        .await
        .unwrap();
    let stores = Stores {
        users: Arc::new(store.clone()),
        sessions: Arc::new(store.clone()),
        refresh: Arc::new(store.clone()),
        keys: Arc::new(store.clone()),
        services: Arc::new(store.clone()),
        clients: Arc::new(store.clone()),
        throttle: Arc::new(store),
    };
    let clock = ManualClock::new(tessera_core::Clock::now(&SystemClock));
    let config = EngineConfig {
        reauthentication_window: WINDOW,
        ..EngineConfig::default()
    };
    let hasher = PasswordHasher::new(HashingParams::default(), HashingLimits::default()).unwrap();
    let engine = Engine::new(stores, hasher, Arc::new(clock.clone()), config)
        .await
        .unwrap();
    engine.create_user("alice", PASSWORD).await.unwrap();
    Setup {
        engine,
        clock,
        _dir: dir,
    }
}

async fn log_in(engine: &Engine, password: &str) -> Result<(ValidSession, SessionToken), Error> {
    let login = engine
        .login(LoginAttempt {
            username: "alice",
            password,
            transport: Transport::Cookie,
            ip: None,
            user_agent: Some("test"),
        })
        .await?;
    Ok((login.session, login.token))
}

fn change<'a>(current: &'a str, new: &'a str) -> PasswordChange<'a> {
    PasswordChange {
        current_password: current,
        new_password: new,
        ip: Some(IpAddr::from([192, 0, 2, 7])),
    }
}

#[tokio::test]
async fn the_window_counts_from_login_and_reauthentication_restarts_it() {
    let Setup {
        engine,
        clock,
        _dir,
    } = setup().await;
    let (session, token) = log_in(&engine, PASSWORD).await.unwrap();
    assert_eq!(session.record().auth_time, session.record().created_at);
    engine
        .require_recent_authentication(&session)
        .await
        .unwrap();

    clock.advance(WINDOW);
    engine
        .require_recent_authentication(&session)
        .await
        .unwrap();
    clock.advance(Duration::from_millis(1));
    assert!(matches!(
        engine.require_recent_authentication(&session).await,
        Err(Error::ReauthenticationRequired)
    ));

    // A wrong password changes nothing.
    assert!(matches!(
        engine
            .reauthenticate(&session, "wrong password", None)
            .await,
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        engine.require_recent_authentication(&session).await,
        Err(Error::ReauthenticationRequired)
    ));

    let proven = engine
        .reauthenticate(&session, PASSWORD, None)
        .await
        .unwrap();
    assert_eq!(proven, tessera_core::Clock::now(&clock));
    engine
        .require_recent_authentication(&session)
        .await
        .unwrap();
    // The next check of the token sees the new auth_time, not a cached old one.
    let checked = engine.validate(&token).await.unwrap();
    assert_eq!(checked.record().auth_time, proven);
}

#[tokio::test]
async fn wrong_reauthentications_count_toward_the_login_throttle() {
    let Setup { engine, _dir, .. } = setup().await;
    let (session, _) = log_in(&engine, PASSWORD).await.unwrap();
    let limit = EngineConfig::default().account_throttle.max_failures;
    for _ in 0..limit {
        assert!(matches!(
            engine
                .reauthenticate(&session, "wrong password", None)
                .await,
            Err(Error::InvalidCredentials)
        ));
    }
    // The account is locked for re-authentication and login alike, right password or not.
    assert!(matches!(
        engine.reauthenticate(&session, PASSWORD, None).await,
        Err(Error::RateLimited { .. })
    ));
    assert!(matches!(
        log_in(&engine, PASSWORD).await,
        Err(Error::RateLimited { .. })
    ));
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_and_renames_the_current_one() {
    let Setup {
        engine,
        clock,
        _dir,
    } = setup().await;
    let (other, other_token) = log_in(&engine, PASSWORD).await.unwrap();
    clock.advance(Duration::from_secs(60));
    let (current, current_token) = log_in(&engine, PASSWORD).await.unwrap();
    clock.advance(Duration::from_secs(60));

    let renamed = engine
        .change_password(&current, change(PASSWORD, NEW_PASSWORD))
        .await
        .unwrap();
    let new = renamed.session.record();
    let old = current.record();
    assert_ne!(new.id, old.id);
    assert_eq!(new.user_id, old.user_id);
    assert_eq!(new.expires_at, old.expires_at, "no longer life than before");
    assert_eq!(new.auth_time, tessera_core::Clock::now(&clock));

    for token in [&other_token, &current_token] {
        assert!(matches!(
            engine.validate(token).await,
            Err(Error::Unauthenticated)
        ));
    }
    let live = engine.sessions_of(&new.user_id).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, new.id);
    engine.validate(&renamed.token).await.unwrap();
    drop(other);

    assert!(matches!(
        log_in(&engine, PASSWORD).await,
        Err(Error::InvalidCredentials)
    ));
    log_in(&engine, NEW_PASSWORD).await.unwrap();
}

#[tokio::test]
async fn a_refused_password_change_changes_nothing() {
    let Setup {
        engine,
        clock,
        _dir,
    } = setup().await;
    let (other, other_token) = log_in(&engine, PASSWORD).await.unwrap();
    let (current, current_token) = log_in(&engine, PASSWORD).await.unwrap();

    // The new password is checked like a registration's.
    assert!(matches!(
        engine
            .change_password(&current, change(PASSWORD, "password"))
            .await,
        Err(Error::PasswordRejected(_))
    ));
    assert!(matches!(
        engine
            .change_password(&current, change("wrong password", NEW_PASSWORD))
            .await,
        Err(Error::InvalidCredentials)
    ));
    clock.advance(WINDOW + Duration::from_secs(1));
    assert!(matches!(
        engine
            .change_password(&current, change(PASSWORD, NEW_PASSWORD))
            .await,
        Err(Error::ReauthenticationRequired)
    ));

    for token in [&other_token, &current_token] {
        engine.validate(token).await.unwrap();
    }
    assert_eq!(
        engine
            .sessions_of(&other.record().user_id)
            .await
            .unwrap()
            .len(),
        2
    );
    log_in(&engine, PASSWORD).await.unwrap();
    assert!(matches!(
        log_in(&engine, NEW_PASSWORD).await,
        Err(Error::InvalidCredentials)
    ));

    // Re-authenticated, the same request succeeds.
    engine
        .reauthenticate(&current, PASSWORD, None)
        .await
        .unwrap();
    engine
        .change_password(&current, change(PASSWORD, NEW_PASSWORD))
        .await
        .unwrap();
}

#[tokio::test]
async fn logging_out_in_bulk_needs_a_recent_authentication() {
    let Setup {
        engine,
        clock,
        _dir,
    } = setup().await;
    let (_, other_token) = log_in(&engine, PASSWORD).await.unwrap();
    let (current, _) = log_in(&engine, PASSWORD).await.unwrap();
    clock.advance(WINDOW + Duration::from_secs(1));
    assert!(matches!(
        engine.revoke_sessions(&current, RevokeScope::Others).await,
        Err(Error::ReauthenticationRequired)
    ));
    engine.validate(&other_token).await.unwrap();
    engine
        .reauthenticate(&current, PASSWORD, None)
        .await
        .unwrap();
    assert_eq!(
        engine
            .revoke_sessions(&current, RevokeScope::Others)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn an_administrative_reset_ends_every_session_and_the_lockout() {
    let Setup { engine, _dir, .. } = setup().await;
    let (session, token) = log_in(&engine, PASSWORD).await.unwrap();
    let (_, second) = log_in(&engine, PASSWORD).await.unwrap();
    let user_id = session.record().user_id.clone();
    let limit = EngineConfig::default().account_throttle.max_failures;
    for _ in 0..limit {
        assert!(log_in(&engine, "wrong password").await.is_err());
    }

    assert!(matches!(
        engine.reset_password(&user_id, "alice").await,
        Err(Error::PasswordRejected(_))
    ));
    engine.validate(&token).await.unwrap();

    assert_eq!(
        engine.reset_password(&user_id, NEW_PASSWORD).await.unwrap(),
        2
    );
    for token in [&token, &second] {
        assert!(matches!(
            engine.validate(token).await,
            Err(Error::Unauthenticated)
        ));
    }
    log_in(&engine, NEW_PASSWORD).await.unwrap();
    assert!(matches!(
        engine
            .reset_password(&tessera_core::UserId::generate().unwrap(), NEW_PASSWORD)
            .await,
        Err(Error::UserNotFound)
    ));
}

/// A password change and an administrative reset are changes of the user's standing: the
/// access tokens issued before are stale on every engine, while those issued afterwards (to
/// the session a change keeps, or after a new login) are not.
#[tokio::test]
async fn a_password_change_or_reset_stales_earlier_access_tokens_only() {
    let Setup {
        engine,
        clock,
        _dir,
    } = setup().await;
    let other = second_engine(&_dir, &clock).await;
    let login = engine.login(token_login()).await.unwrap();
    let user = login.session.record().user_id.clone();
    let before = engine.issue_tokens(&login.session).await.unwrap();
    let iat = before.access.issued_at.unix_seconds();
    assert!(!engine.is_token_stale(&user, iat));

    let renamed = engine
        .change_password(&login.session, change(PASSWORD, NEW_PASSWORD))
        .await
        .unwrap();
    assert!(engine.is_token_stale(&user, iat));
    other.sync_revocations().await.unwrap();
    assert!(other.is_token_stale(&user, iat), "pushed to other engines");
    let after = engine.issue_tokens(&renamed.session).await.unwrap();
    let fresh = after.access.issued_at.unix_seconds();
    assert!(!engine.is_token_stale(&user, fresh));
    assert!(!other.is_token_stale(&user, fresh));

    clock.advance(Duration::from_secs(1));
    assert_eq!(engine.reset_password(&user, PASSWORD).await.unwrap(), 1);
    assert!(engine.is_token_stale(&user, fresh));
    other.sync_revocations().await.unwrap();
    assert!(other.is_token_stale(&user, fresh));
    let login = engine.login(token_login()).await.unwrap();
    let newest = engine.issue_tokens(&login.session).await.unwrap();
    assert!(!engine.is_token_stale(&user, newest.access.issued_at.unix_seconds()));
}

fn token_login() -> LoginAttempt<'static> {
    LoginAttempt {
        username: "alice",
        password: PASSWORD,
        transport: Transport::Token,
        ip: None,
        user_agent: None,
    }
}

/// Another engine over `Setup`'s database: another instance.
async fn second_engine(dir: &tempfile::TempDir, clock: &ManualClock) -> Engine {
    let store = SqliteStore::open(&dir.path().join("tessera.db"))
        .await
        .unwrap();
    let stores = Stores {
        users: Arc::new(store.clone()),
        sessions: Arc::new(store.clone()),
        refresh: Arc::new(store.clone()),
        keys: Arc::new(store.clone()),
        services: Arc::new(store.clone()),
        clients: Arc::new(store.clone()),
        throttle: Arc::new(store),
    };
    let hasher = PasswordHasher::new(HashingParams::default(), HashingLimits::default()).unwrap();
    Engine::new(
        stores,
        hasher,
        Arc::new(clock.clone()),
        EngineConfig::default(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn deleting_the_account_needs_the_password_and_a_recent_authentication() {
    let Setup {
        engine,
        clock,
        _dir,
    } = setup().await;
    let (session, token) = log_in(&engine, PASSWORD).await.unwrap();
    let (_, other) = log_in(&engine, PASSWORD).await.unwrap();

    assert!(matches!(
        engine
            .delete_account(&session, "wrong password", None)
            .await,
        Err(Error::InvalidCredentials)
    ));
    clock.advance(WINDOW + Duration::from_secs(1));
    assert!(matches!(
        engine.delete_account(&session, PASSWORD, None).await,
        Err(Error::ReauthenticationRequired)
    ));
    engine.validate(&token).await.unwrap();
    engine.user_by_username("alice").await.unwrap();

    engine
        .reauthenticate(&session, PASSWORD, None)
        .await
        .unwrap();
    engine
        .delete_account(&session, PASSWORD, None)
        .await
        .unwrap();
    assert!(matches!(
        engine.user_by_username("alice").await,
        Err(Error::UserNotFound)
    ));
    for token in [&token, &other] {
        assert!(engine.validate(token).await.is_err());
    }
    assert!(matches!(
        log_in(&engine, PASSWORD).await,
        Err(Error::InvalidCredentials)
    ));
}
