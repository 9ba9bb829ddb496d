//! Refresh-token chains (`engine/tokens.rs`): rotation, the grace window and its exact end,
//! theft and where it is remembered, the user's standing at each refresh, introspection and
//! revocation by refresh token.

use std::time::Duration;

use tessera_core::{
    Engine, EngineConfig, Error, RefreshStore, RefreshToken, RevocationKind, Roles, TokenGrant,
    TokenPolicy, Transport, UserStore, ValidSession,
};

use crate::support::{Deployment, log_in, session_policy, stored_session};

const MINUTE: Duration = Duration::from_secs(60);
const MILLI: Duration = Duration::from_millis(1);
/// The default `token.refresh_grace`.
const GRACE: Duration = Duration::from_secs(10);

/// Alice logged in with the token transport: her session and its first pair.
async fn token_session(engine: &Engine) -> (ValidSession, TokenGrant) {
    let login = log_in(engine, "alice", Transport::Token).await;
    let grant = engine.issue_tokens(&login.session).await.unwrap();
    (login.session, grant)
}

fn refresh_ttl(ttl: Duration) -> EngineConfig {
    EngineConfig {
        tokens: TokenPolicy {
            refresh_ttl: ttl,
            ..TokenPolicy::default()
        },
        ..EngineConfig::default()
    }
}

fn is_invalid_grant<T>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::InvalidGrant))
}

#[tokio::test]
async fn issuing_starts_a_chain_that_each_refresh_rotates() {
    let deployment = Deployment::new();
    let engine = deployment.engine(EngineConfig::default()).await;
    let start = deployment.now();
    let (session, first) = token_session(&engine).await;
    let record = session.record();
    assert_eq!(first.access.session_id, record.id);
    assert_eq!(first.access.user_id, record.user_id);
    assert_eq!(first.access.issued_at, start);
    assert_eq!(first.access.expires_at, start.saturating_add(5 * MINUTE));
    assert_eq!(first.access.auth_time, start);
    // Thirty days of refresh-token life, cut to the session's twelve hours.
    assert_eq!(first.refresh_expires_at, record.expires_at);
    let stored = deployment
        .store
        .refresh_by_token(&first.refresh_token.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.session_id, record.id);
    assert_eq!(stored.spent_at, None);
    assert_eq!(stored.access_token_id, first.access.token_id);

    deployment.advance(MINUTE);
    let now = deployment.now();
    let refreshed = engine.refresh(&first.refresh_token).await.unwrap();
    let next = &refreshed.tokens;
    assert_ne!(next.refresh_token, first.refresh_token);
    assert_ne!(next.access.token_id, first.access.token_id);
    assert_eq!(next.access.session_id, record.id);
    assert_eq!(next.access.issued_at, now);
    assert_eq!(next.access.expires_at, now.saturating_add(5 * MINUTE));
    assert_eq!(
        next.access.auth_time, start,
        "the password was proven at login"
    );
    let parent = deployment
        .store
        .refresh_by_token(&first.refresh_token.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parent.spent_at, Some(now));
    assert_eq!(parent.successor_hash, Some(next.refresh_token.hash()));

    // A refresh is activity: the idle expiry slides in the store and in this instance's
    // cache, so an access token still works past the idle expiry the login had set.
    assert_eq!(refreshed.session.record().id, record.id);
    assert_eq!(refreshed.session.last_seen_at(), now);
    assert_eq!(
        refreshed.session.idle_expires_at(),
        now.saturating_add(30 * MINUTE)
    );
    let in_store = stored_session(&deployment, &record.id).await;
    assert_eq!(in_store.last_seen_at, now);
    assert_eq!(in_store.idle_expires_at, now.saturating_add(30 * MINUTE));
    deployment.advance(30 * MINUTE - MILLI);
    engine.session_for_access(&record.id).await.unwrap();
    let restarted = deployment.engine(EngineConfig::default()).await;
    restarted.session_for_access(&record.id).await.unwrap();
}

#[tokio::test]
async fn no_credential_outlives_its_session() {
    let deployment = Deployment::new();
    let config = session_policy(MINUTE, 2 * MINUTE);
    let engine = deployment.engine(config).await;
    let (session, first) = token_session(&engine).await;
    let ends = session.record().expires_at;
    assert_eq!(ends, deployment.now().saturating_add(2 * MINUTE));
    // Five minutes of access token and thirty days of refresh token, both cut to two minutes.
    assert_eq!(first.access.expires_at, ends);
    assert_eq!(first.refresh_expires_at, ends);

    deployment.advance(MINUTE - MILLI);
    let refreshed = engine.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(refreshed.tokens.access.expires_at, ends);
    assert_eq!(refreshed.tokens.refresh_expires_at, ends);
    // Refreshes keep it from idling out, never past its absolute expiry.
    deployment.advance(MINUTE - MILLI);
    let refreshed = engine
        .refresh(&refreshed.tokens.refresh_token)
        .await
        .unwrap();
    assert_eq!(refreshed.session.idle_expires_at(), ends);
    deployment.advance(2 * MILLI);
    assert!(is_invalid_grant(
        engine.refresh(&refreshed.tokens.refresh_token).await
    ));
}

#[tokio::test]
async fn a_refresh_token_expires_exactly_at_its_lifetime() {
    let deployment = Deployment::new();
    let config = refresh_ttl(MINUTE);
    let engine = deployment.engine(config).await;
    let (_, early) = token_session(&engine).await;
    let (session, late) = token_session(&engine).await;
    assert_eq!(
        late.refresh_expires_at,
        deployment.now().saturating_add(MINUTE)
    );

    deployment.advance(MINUTE - MILLI);
    engine.refresh(&early.refresh_token).await.unwrap();
    deployment.advance(MILLI);
    assert!(is_invalid_grant(engine.refresh(&late.refresh_token).await));
    // An expired token is not a stolen one: its session lives on.
    engine
        .session_for_access(&session.record().id)
        .await
        .unwrap();
    let in_store = stored_session(&deployment, &session.record().id).await;
    assert_eq!(in_store.revoked_at, None);
}

#[tokio::test]
async fn a_refresh_without_a_live_session_is_an_invalid_grant() {
    let deployment = Deployment::new();
    let config = session_policy(MINUTE, 60 * MINUTE);
    let engine = deployment.engine(config).await;

    let unknown = RefreshToken::generate().unwrap();
    assert!(is_invalid_grant(engine.refresh(&unknown).await));

    let (session, logged_out) = token_session(&engine).await;
    engine.logout(&session).await.unwrap();
    assert!(is_invalid_grant(
        engine.refresh(&logged_out.refresh_token).await
    ));

    // Idle for exactly the idle timeout: the session has ended, and so has its chain.
    let (_, idle) = token_session(&engine).await;
    deployment.advance(MINUTE);
    assert!(is_invalid_grant(engine.refresh(&idle.refresh_token).await));
}

#[tokio::test]
async fn a_retry_inside_the_grace_window_gets_the_same_pair() {
    let deployment = Deployment::new();
    let engine = deployment.engine(EngineConfig::default()).await;
    let (session, first) = token_session(&engine).await;
    deployment.advance(MINUTE);
    let refreshed = engine.refresh(&first.refresh_token).await.unwrap();

    // The last millisecond of the window: a lost response or a second tab, not a thief.
    deployment.advance(GRACE - MILLI);
    let retried = engine.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(retried.tokens.refresh_token, refreshed.tokens.refresh_token);
    assert_eq!(retried.tokens.access, refreshed.tokens.access);
    assert_eq!(
        retried.tokens.refresh_expires_at,
        refreshed.tokens.refresh_expires_at
    );
    assert_eq!(retried.session.last_seen_at(), deployment.now());

    // Nothing was revoked, and the chain goes on from the successor.
    engine
        .session_for_access(&session.record().id)
        .await
        .unwrap();
    engine
        .refresh(&refreshed.tokens.refresh_token)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_parent_replayed_inside_the_grace_window_after_its_successor_was_used_is_theft() {
    let deployment = Deployment::new();
    let engine = deployment.engine(EngineConfig::default()).await;
    let (session, first) = token_session(&engine).await;
    let second = engine.refresh(&first.refresh_token).await.unwrap();
    // The real client has moved on: the successor is spent too.
    let third = engine.refresh(&second.tokens.refresh_token).await.unwrap();

    // A thief replays the parent while its window is still open: no valid pair for them,
    // and the session ends.
    deployment.advance(Duration::from_secs(1));
    assert!(is_invalid_grant(engine.refresh(&first.refresh_token).await));
    assert!(matches!(
        engine.session_for_access(&session.record().id).await,
        Err(Error::Unauthenticated)
    ));
    assert!(is_invalid_grant(
        engine.refresh(&third.tokens.refresh_token).await
    ));
}

#[tokio::test]
async fn the_grace_window_ends_exactly_at_its_length() {
    let deployment = Deployment::new();
    let engine = deployment.engine(EngineConfig::default()).await;
    let (session, first) = token_session(&engine).await;
    engine.refresh(&first.refresh_token).await.unwrap();

    // The clock stands exactly on `spent_at + refresh_grace`: the window is closed.
    deployment.advance(GRACE);
    assert!(is_invalid_grant(engine.refresh(&first.refresh_token).await));
    let in_store = stored_session(&deployment, &session.record().id).await;
    assert_eq!(in_store.revoked_at, Some(deployment.now()));
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_session_on_every_instance() {
    let deployment = Deployment::new();
    let first = deployment.engine(EngineConfig::default()).await;
    let other = deployment.engine(EngineConfig::default()).await;
    let (session, stolen) = token_session(&first).await;
    let id = &session.record().id;
    // Another instance has the session cached from an access-token request.
    other.session_for_access(id).await.unwrap();

    let real_client = first.refresh(&stolen.refresh_token).await.unwrap();
    deployment.advance(GRACE + Duration::from_secs(1));
    assert!(is_invalid_grant(first.refresh(&stolen.refresh_token).await));

    // The theft is in the store and its revocation log, not only in this process.
    let in_store = stored_session(&deployment, id).await;
    assert_eq!(in_store.revoked_at, Some(deployment.now()));
    assert!(
        deployment
            .store
            .revocations()
            .iter()
            .any(|entry| entry.kind == RevocationKind::Session(id.clone()))
    );
    assert!(matches!(
        first.session_for_access(id).await,
        Err(Error::Unauthenticated)
    ));
    assert!(is_invalid_grant(
        first.refresh(&real_client.tokens.refresh_token).await
    ));

    // The other instance drops it once it reads the log …
    assert!(other.sync_revocations().await.unwrap() >= 1);
    assert!(matches!(
        other.session_for_access(id).await,
        Err(Error::Unauthenticated)
    ));
    // … and an instance started afterwards (this one after a restart) never accepts it.
    let restarted = deployment.engine(EngineConfig::default()).await;
    assert!(matches!(
        restarted.session_for_access(id).await,
        Err(Error::Unauthenticated)
    ));
    assert!(is_invalid_grant(
        restarted.refresh(&real_client.tokens.refresh_token).await
    ));
}

#[tokio::test]
async fn a_disabled_account_gets_no_tokens() {
    let deployment = Deployment::new();
    let engine = deployment.engine(EngineConfig::default()).await;
    let (session, first) = token_session(&engine).await;
    let user_id = session.record().user_id.clone();
    // An administrator's disable stores the flag, then revokes the sessions: in between, the
    // session is still live and only the flag stops new tokens.
    deployment.store.set_disabled(&user_id, true).await.unwrap();
    assert!(is_invalid_grant(engine.issue_tokens(&session).await));
    assert!(is_invalid_grant(engine.refresh(&first.refresh_token).await));

    deployment
        .store
        .set_disabled(&user_id, false)
        .await
        .unwrap();
    engine.issue_tokens(&session).await.unwrap();
}

#[tokio::test]
async fn each_grant_carries_the_standing_read_when_it_is_made_and_is_never_stale() {
    let deployment = Deployment::new();
    let engine = deployment.engine(EngineConfig::default()).await;
    let (session, first) = token_session(&engine).await;
    let user_id = session.record().user_id.clone();
    assert!(first.access.roles.is_empty());
    deployment.advance(Duration::from_secs(1));
    let refreshed = engine.refresh(&first.refresh_token).await.unwrap();
    let issued = refreshed.tokens.access.issued_at;

    // A role change 200 ms later makes every token issued before the next whole second stale.
    deployment.advance(Duration::from_millis(200));
    engine
        .set_roles(&user_id, Roles::parse(["editor"]).unwrap())
        .await
        .unwrap();
    assert!(engine.is_token_stale(&user_id, issued.unix_seconds()));
    deployment.advance(Duration::from_millis(800));

    // A retry inside the grace window: the same pair, but with the new roles and an `iat`
    // at the change's whole second, so it is not stale on arrival.
    let retried = engine.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(retried.tokens.refresh_token, refreshed.tokens.refresh_token);
    assert_eq!(
        retried.tokens.access.token_id,
        refreshed.tokens.access.token_id
    );
    assert_eq!(
        retried.tokens.access.expires_at,
        refreshed.tokens.access.expires_at
    );
    assert!(retried.tokens.access.roles.contains("editor"));
    assert_eq!(retried.tokens.access.issued_at, deployment.now());
    assert!(!engine.is_token_stale(&user_id, retried.tokens.access.issued_at.unix_seconds()));

    // The next rotation reads the standing again.
    engine
        .set_roles(&user_id, Roles::parse(["admin"]).unwrap())
        .await
        .unwrap();
    deployment.advance(Duration::from_secs(1));
    let next = engine
        .refresh(&refreshed.tokens.refresh_token)
        .await
        .unwrap();
    assert!(next.tokens.access.roles.contains("admin"));
    assert!(!next.tokens.access.roles.contains("editor"));
    assert!(!engine.is_token_stale(&user_id, next.tokens.access.issued_at.unix_seconds()));
}

#[tokio::test]
async fn introspection_shows_only_an_unspent_unexpired_token_of_a_live_session() {
    let deployment = Deployment::new();
    let config = refresh_ttl(MINUTE);
    let engine = deployment.engine(config).await;

    let unknown = RefreshToken::generate().unwrap();
    assert!(engine.inspect_refresh(&unknown).await.unwrap().is_none());

    let (session, first) = token_session(&engine).await;
    let (record, of) = engine
        .inspect_refresh(&first.refresh_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.token_hash, first.refresh_token.hash());
    assert_eq!(of.id, session.record().id);

    // Looking changes nothing: the token still rotates, once, and is then spent.
    let next = engine.refresh(&first.refresh_token).await.unwrap();
    assert!(
        engine
            .inspect_refresh(&first.refresh_token)
            .await
            .unwrap()
            .is_none()
    );
    let successor = &next.tokens.refresh_token;
    assert!(engine.inspect_refresh(successor).await.unwrap().is_some());

    // Expired exactly at its lifetime.
    deployment.advance(MINUTE - MILLI);
    assert!(engine.inspect_refresh(successor).await.unwrap().is_some());
    deployment.advance(MILLI);
    assert!(engine.inspect_refresh(successor).await.unwrap().is_none());

    // Unspent and unexpired, but its session logged out.
    let (session, live) = token_session(&engine).await;
    engine.logout(&session).await.unwrap();
    assert!(
        engine
            .inspect_refresh(&live.refresh_token)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn revoking_by_refresh_token_ends_the_session() {
    let deployment = Deployment::new();
    let engine = deployment.engine(EngineConfig::default()).await;
    let unknown = RefreshToken::generate().unwrap();
    assert!(!engine.revoke_by_refresh(&unknown).await.unwrap());

    let (session, grant) = token_session(&engine).await;
    assert!(
        engine
            .revoke_by_refresh(&grant.refresh_token)
            .await
            .unwrap()
    );
    assert!(matches!(
        engine.session_for_access(&session.record().id).await,
        Err(Error::Unauthenticated)
    ));
    assert!(is_invalid_grant(engine.refresh(&grant.refresh_token).await));
    assert!(
        !engine
            .revoke_by_refresh(&grant.refresh_token)
            .await
            .unwrap(),
        "already revoked"
    );
}

/// The user's standing is read before the rotation commits, so a user store that fails then
/// (PostgreSQL paused) fails the refresh having spent nothing: the client's retry after the
/// outage, however long, still refreshes. Read after it, the retry would come past the grace
/// window to a spent token and be taken for theft.
#[tokio::test]
async fn a_refresh_reads_the_user_before_it_spends_the_token() {
    let deployment = Deployment::new();
    let engine = deployment.engine(EngineConfig::default()).await;
    let (_, first) = token_session(&engine).await;
    // A first refresh caches the session, so the paused lookup below is the standing's.
    let warm = engine.refresh(&first.refresh_token).await.unwrap();
    let parent = warm.tokens.refresh_token.hash();

    let pause = deployment.store.pause_next_user_lookup();
    let refresh = engine.refresh(&warm.tokens.refresh_token);
    let check = async {
        pause.reached().await;
        let stored = deployment.store.refresh_by_token(&parent).await.unwrap();
        assert_eq!(
            stored.unwrap().spent_at,
            None,
            "the token was spent before the user was read"
        );
        pause.release();
    };
    let (refreshed, ()) = tokio::join!(refresh, check);
    refreshed.unwrap();
    let spent = deployment.store.refresh_by_token(&parent).await.unwrap();
    assert!(spent.unwrap().spent_at.is_some());
}
