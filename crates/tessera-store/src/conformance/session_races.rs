//! [`SessionStore`](tessera_core::SessionStore) under concurrency: touches racing a
//! revocation, revocations racing each other, inserts racing for one id.

use std::sync::Arc;

use tessera_core::{SessionId, SessionRecord, StoreError};

use super::sessions::{times_logged, user};
use super::{Fixture, MINUTE, SECOND, at, new_session};

/// Touches racing a revocation never leave the session unrevoked, and every touch after the
/// revocation committed fails.
pub async fn concurrent_touches_never_unrevoke(fixture: Fixture) {
    const ROUNDS: i64 = 8;
    const TOUCHES: i64 = 24;
    let sessions = Arc::clone(&fixture.sessions);
    for round in 0..ROUNDS {
        let record = new_session(&user(), at(round * MINUTE));
        sessions.insert_session(&record).await.unwrap();
        let revoke_at = at(round * MINUTE + 30 * SECOND);

        let mut touches = Vec::new();
        let mut revoke = None;
        for n in 0..TOUCHES {
            if n == TOUCHES / 2 {
                let (sessions, id) = (Arc::clone(&sessions), record.id.clone());
                revoke = Some(tokio::spawn(async move {
                    sessions.revoke_session(&id, revoke_at).await.unwrap()
                }));
            }
            let (sessions, id) = (Arc::clone(&sessions), record.id.clone());
            let seen = at(round * MINUTE + (n + 1) * 100);
            touches.push(tokio::spawn(async move {
                sessions
                    .touch_session(&id, seen, seen.saturating_add(super::minutes(30)))
                    .await
                    .unwrap()
            }));
        }
        assert!(revoke.unwrap().await.unwrap(), "the one revoke must win");
        for touch in touches {
            touch.await.unwrap();
        }

        let stored = sessions.session_by_id(&record.id).await.unwrap().unwrap();
        assert_eq!(
            stored.revoked_at,
            Some(revoke_at),
            "round {round}: unrevoked"
        );
        assert_eq!(times_logged(sessions.as_ref(), &record.id).await, 1);
        let late = at(round * MINUTE + 50 * SECOND);
        assert!(
            !sessions
                .touch_session(&record.id, late, late.saturating_add(super::minutes(30)))
                .await
                .unwrap()
        );
    }
}

/// Re-authentications racing a revocation never leave the session unrevoked, and every one
/// after the revocation committed is refused.
pub async fn concurrent_reauthentications_never_unrevoke(fixture: Fixture) {
    const ROUNDS: i64 = 8;
    const CALLS: i64 = 24;
    let sessions = Arc::clone(&fixture.sessions);
    for round in 0..ROUNDS {
        let record = new_session(&user(), at(round * MINUTE));
        sessions.insert_session(&record).await.unwrap();
        let revoke_at = at(round * MINUTE + 30 * SECOND);

        let mut calls = Vec::new();
        let mut revoke = None;
        for n in 0..CALLS {
            if n == CALLS / 2 {
                let (sessions, id) = (Arc::clone(&sessions), record.id.clone());
                revoke = Some(tokio::spawn(async move {
                    sessions.revoke_session(&id, revoke_at).await.unwrap()
                }));
            }
            let (sessions, id) = (Arc::clone(&sessions), record.id.clone());
            let auth_time = at(round * MINUTE + (n + 1) * 100);
            calls.push(tokio::spawn(async move {
                sessions
                    .record_authentication(&id, auth_time)
                    .await
                    .unwrap()
            }));
        }
        assert!(revoke.unwrap().await.unwrap(), "the one revoke must win");
        for call in calls {
            call.await.unwrap();
        }

        let stored = sessions.session_by_id(&record.id).await.unwrap().unwrap();
        assert_eq!(
            stored.revoked_at,
            Some(revoke_at),
            "round {round}: unrevoked"
        );
        assert!(stored.auth_time <= at(round * MINUTE + CALLS * 100));
        assert_eq!(times_logged(sessions.as_ref(), &record.id).await, 1);
        assert!(
            !sessions
                .record_authentication(&record.id, at(round * MINUTE + 50 * SECOND))
                .await
                .unwrap()
        );
    }
}

/// Many revocations of one session at once: exactly one succeeds and one entry is logged.
pub async fn concurrent_revokes_log_once(fixture: Fixture) {
    let sessions = Arc::clone(&fixture.sessions);
    for round in 0..4 {
        let record = new_session(&user(), at(round * MINUTE));
        sessions.insert_session(&record).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|n| {
                let (sessions, id) = (Arc::clone(&sessions), record.id.clone());
                tokio::spawn(async move {
                    sessions
                        .revoke_session(&id, at(round * MINUTE + SECOND + n))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.unwrap());
        }
        assert_eq!(winners, 1, "round {round}");
        assert_eq!(times_logged(sessions.as_ref(), &record.id).await, 1);
    }
}

/// Inserts racing on one id: exactly one succeeds, the rest conflict, and the winner's
/// record is the one stored.
pub async fn concurrent_inserts_have_one_winner(fixture: Fixture) {
    let sessions = Arc::clone(&fixture.sessions);
    let owner = user();
    let shared_id = SessionId::generate().unwrap();
    let contenders: Vec<_> = (0..16)
        .map(|n| SessionRecord {
            id: shared_id.clone(),
            ..new_session(&owner, at(n))
        })
        .collect();
    {
        let tasks: Vec<_> = contenders
            .iter()
            .cloned()
            .map(|record| {
                let sessions = Arc::clone(&sessions);
                tokio::spawn(async move {
                    let result = sessions.insert_session(&record).await;
                    (record, result)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (record, Ok(())) => winners.push(record),
                (_, Err(StoreError::Conflict)) => {}
                (_, Err(other)) => panic!("an insert failed with {other:?}, not Conflict"),
            }
        }
        assert_eq!(winners.len(), 1, "{} inserts succeeded", winners.len());
        let winner = &winners[0];
        assert_eq!(
            sessions.session_by_id(&winner.id).await.unwrap().as_ref(),
            Some(winner)
        );
        assert_eq!(
            sessions
                .sessions_of_user(&owner, at(16))
                .await
                .unwrap()
                .as_slice(),
            std::slice::from_ref(winner)
        );
    }
}
