//! The in-process session cache as the engine uses it: bounded, swept of ended sessions,
//! still caching after revocations, and never re-filled by a slow read that a revocation
//! overtook.

use std::time::Duration;

use tessera_core::{CacheLookups, Engine, EngineConfig, Error, Transport};

use crate::support::{Deployment, log_in, session_policy};

fn capacity(sessions: usize) -> EngineConfig {
    EngineConfig {
        cache_capacity: sessions,
        ..EngineConfig::default()
    }
}

fn lookups(engine: &Engine) -> (u64, u64) {
    let CacheLookups { hits, misses } = engine.cache_lookups();
    (hits, misses)
}

#[tokio::test]
async fn the_cache_holds_at_most_its_capacity_and_counts_its_lookups() {
    let deployment = Deployment::new();
    let engine = deployment.engine(capacity(2)).await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(log_in(&engine, "alice", Transport::Cookie).await.token);
    }
    assert_eq!(engine.cached_sessions(), 2);
    // Every session still validates; the one left out is read from the store each time.
    for token in &tokens {
        engine.validate(token).await.unwrap();
    }
    assert_eq!(engine.cached_sessions(), 2);
    assert_eq!(lookups(&engine), (2, 1));

    let off = deployment.engine(capacity(0)).await;
    off.validate(&tokens[0]).await.unwrap();
    off.validate(&tokens[0]).await.unwrap();
    assert_eq!(off.cached_sessions(), 0);
    assert_eq!(lookups(&off), (0, 2));
}

#[tokio::test]
async fn a_revocation_does_not_stop_the_cache_from_caching() {
    let deployment = Deployment::new();
    let first = deployment.engine(EngineConfig::default()).await;
    let mut logins = Vec::new();
    for _ in 0..3 {
        logins.push(log_in(&first, "alice", Transport::Cookie).await);
    }

    // A second instance, its cache empty: a miss is cached, and the next check is a hit.
    let engine = deployment.engine(EngineConfig::default()).await;
    engine.validate(&logins[0].token).await.unwrap();
    engine.validate(&logins[0].token).await.unwrap();
    assert_eq!((engine.cached_sessions(), lookups(&engine)), (1, (1, 1)));

    // Revocations, here and read from the log …
    engine
        .revoke_session(&logins[1].session.record().id)
        .await
        .unwrap();
    first.logout(&logins[0].session).await.unwrap();
    assert_eq!(engine.sync_revocations().await.unwrap(), 2);
    assert_eq!(engine.cached_sessions(), 0);

    // … and a later miss is cached again.
    engine.validate(&logins[2].token).await.unwrap();
    engine.validate(&logins[2].token).await.unwrap();
    assert_eq!((engine.cached_sessions(), lookups(&engine)), (1, (2, 2)));
}

#[tokio::test]
async fn a_purge_sweeps_ended_sessions_from_the_cache() {
    let deployment = Deployment::new();
    let config = session_policy(Duration::from_secs(300), Duration::from_secs(3600));
    let engine = deployment.engine(config).await;
    let idle = log_in(&engine, "alice", Transport::Cookie).await;
    let active = log_in(&engine, "alice", Transport::Cookie).await;
    assert_eq!(engine.cached_sessions(), 2);

    deployment.advance(Duration::from_secs(200));
    engine.validate(&active.token).await.unwrap();
    // `idle` has seen nothing for exactly its idle timeout; `active` for 100 s.
    deployment.advance(Duration::from_secs(100));
    engine.purge_expired().await.unwrap();
    assert_eq!(engine.cached_sessions(), 1);
    engine.validate(&active.token).await.unwrap();
    assert!(matches!(
        engine.validate(&idle.token).await,
        Err(Error::SessionExpired)
    ));
}

/// A cache miss reads the store, then the user (for the username), then caches. A
/// revocation applied between the two reads finds nothing in the cache to remove; the miss
/// must not then cache the session it read before the revocation — this instance would
/// accept it from memory ever after.
#[tokio::test]
async fn a_slow_miss_never_caches_a_session_revoked_meanwhile() {
    for transport in [Transport::Cookie, Transport::Token] {
        let deployment = Deployment::new();
        let first = deployment.engine(EngineConfig::default()).await;
        let login = log_in(&first, "alice", transport).await;
        let id = &login.session.record().id;
        let engine = deployment.engine(EngineConfig::default()).await;

        let pause = deployment.store.pause_next_user_lookup();
        let slow_miss = async {
            match transport {
                Transport::Cookie => engine.validate(&login.token).await.map(drop),
                _ => engine.session_for_access(id).await.map(drop),
            }
        };
        let revocation = async {
            pause.reached().await;
            first.logout(&login.session).await.unwrap();
            assert_eq!(engine.sync_revocations().await.unwrap(), 1);
            pause.release();
        };
        // The request that raced the revocation may go either way; what it leaves behind
        // may not.
        let raced = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(slow_miss, revocation)
        });
        let (_raced_request, ()) = raced
            .await
            .expect("the miss reached the paused user lookup");

        assert_eq!(engine.cached_sessions(), 0, "{transport:?}");
        let later = match transport {
            Transport::Cookie => engine.validate(&login.token).await.map(drop),
            _ => engine.session_for_access(id).await.map(drop),
        };
        assert!(
            matches!(later, Err(Error::Unauthenticated)),
            "{transport:?}: {later:?}"
        );
    }
}
