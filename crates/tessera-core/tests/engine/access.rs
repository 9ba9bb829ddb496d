//! The session behind an access token (`Engine::session_for_access`): a verified JWT is only
//! as good as its session, which ends at its idle or its absolute expiry, whichever comes
//! first — even while the JWT itself is still unexpired.

use std::time::Duration;

use tessera_core::{EngineConfig, Error, TokenPolicy, Transport};

use crate::support::{Deployment, log_in, session_policy};

const MILLI: Duration = Duration::from_millis(1);

/// An idle timeout shorter than the access-token lifetime: a JWT outlives its session's
/// idleness, and must not outlive the check.
fn short_idle() -> EngineConfig {
    EngineConfig {
        tokens: TokenPolicy {
            access_ttl: Duration::from_secs(300),
            ..TokenPolicy::default()
        },
        ..session_policy(Duration::from_secs(60), Duration::from_secs(3600))
    }
}

#[tokio::test]
async fn an_access_token_of_an_idle_expired_session_is_refused() {
    let deployment = Deployment::new();
    let engine = deployment.engine(short_idle()).await;
    let login = log_in(&engine, "alice", Transport::Token).await;
    let id = &login.session.record().id;
    let grant = engine.issue_tokens(&login.session).await.unwrap();
    assert!(grant.access.expires_at > login.session.idle_expires_at());

    deployment.advance(Duration::from_secs(60) - MILLI);
    let valid = engine.session_for_access(id).await.unwrap();
    // A JWT request is not activity: the idle expiry stays where the login put it.
    assert_eq!(valid.idle_expires_at(), login.session.idle_expires_at());
    deployment.advance(MILLI);
    assert!(matches!(
        engine.session_for_access(id).await,
        Err(Error::SessionExpired)
    ));
    // So does an instance that reads it from the store.
    let other = deployment.engine(short_idle()).await;
    assert!(matches!(
        other.session_for_access(id).await,
        Err(Error::SessionExpired)
    ));
}

#[tokio::test]
async fn an_access_token_of_a_session_past_its_absolute_expiry_is_refused() {
    let deployment = Deployment::new();
    let config = session_policy(Duration::from_secs(600), Duration::from_secs(900));
    let engine = deployment.engine(config.clone()).await;
    let login = log_in(&engine, "alice", Transport::Token).await;
    let id = &login.session.record().id;
    let mut refresh = engine
        .issue_tokens(&login.session)
        .await
        .unwrap()
        .refresh_token;
    // Kept active by refreshes (each slides the idle expiry) up to its absolute expiry.
    for _ in 0..3 {
        deployment.advance(Duration::from_secs(290));
        refresh = engine.refresh(&refresh).await.unwrap().tokens.refresh_token;
    }
    deployment.advance(Duration::from_secs(30) - MILLI);
    engine.session_for_access(id).await.unwrap();
    deployment.advance(MILLI);
    assert!(matches!(
        engine.session_for_access(id).await,
        Err(Error::SessionExpired)
    ));
    let other = deployment.engine(config).await;
    assert!(matches!(
        other.session_for_access(id).await,
        Err(Error::SessionExpired)
    ));
}
