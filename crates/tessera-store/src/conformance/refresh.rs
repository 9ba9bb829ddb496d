//! [`RefreshStore`](tessera_core::RefreshStore): insertion, rotation with exactly one winner,
//! what a spent token reports, and purging.

use std::sync::Arc;

use tessera_core::{RefreshRecord, RefreshStore, Rotation, StoreError};

use super::{Fixture, MINUTE, SECOND, at, minutes, new_refresh, new_session_id, spent};

async fn stored(refresh: &dyn RefreshStore, record: &RefreshRecord) -> Option<RefreshRecord> {
    refresh.refresh_by_token(&record.token_hash).await.unwrap()
}

/// A refresh record reads back field for field; an unknown hash finds nothing.
pub async fn refresh_insert_and_look_up(fixture: Fixture) {
    let refresh = fixture.refresh.as_ref();
    let first = new_refresh(&new_session_id(), at(0));
    let other = RefreshRecord {
        access_token_id: "a jti with “unicode” and spaces".to_owned(),
        ..new_refresh(&new_session_id(), at(MINUTE))
    };
    refresh.insert_refresh(&first).await.unwrap();
    refresh.insert_refresh(&other).await.unwrap();

    assert_eq!(stored(refresh, &first).await, Some(first.clone()));
    assert_eq!(stored(refresh, &other).await, Some(other));
    let unknown = new_refresh(&first.session_id, at(0));
    assert_eq!(stored(refresh, &unknown).await, None);
}

/// A second record with an existing hash — live or spent, first of a chain or successor —
/// conflicts and changes nothing.
pub async fn refresh_token_collision_conflicts(fixture: Fixture) {
    let refresh = fixture.refresh.as_ref();
    let original = new_refresh(&new_session_id(), at(0));
    refresh.insert_refresh(&original).await.unwrap();

    let intruder = RefreshRecord {
        token_hash: original.token_hash,
        ..new_refresh(&new_session_id(), at(MINUTE))
    };
    let result = refresh.insert_refresh(&intruder).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(stored(refresh, &original).await, Some(original.clone()));

    let successor = new_refresh(&original.session_id, at(2 * MINUTE));
    let rotation = refresh
        .rotate_refresh(&original.token_hash, &successor, at(2 * MINUTE))
        .await
        .unwrap();
    assert_eq!(rotation, Rotation::Rotated);
    for taken in [&original, &successor] {
        let intruder = RefreshRecord {
            token_hash: taken.token_hash,
            ..new_refresh(&new_session_id(), at(3 * MINUTE))
        };
        let result = refresh.insert_refresh(&intruder).await;
        assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    }
    assert_eq!(
        stored(refresh, &original).await,
        Some(spent(&original, at(2 * MINUTE), &successor))
    );
    assert_eq!(stored(refresh, &successor).await, Some(successor));
}

/// Rotating an unspent token spends it — `spent_at` and `successor_hash` set, nothing else
/// changed — and stores the successor unspent.
pub async fn refresh_rotate_spends_parent_and_stores_successor(fixture: Fixture) {
    let refresh = fixture.refresh.as_ref();
    let parent = new_refresh(&new_session_id(), at(0));
    refresh.insert_refresh(&parent).await.unwrap();
    let successor = new_refresh(&parent.session_id, at(MINUTE));

    let rotation = refresh
        .rotate_refresh(&parent.token_hash, &successor, at(MINUTE))
        .await
        .unwrap();
    assert_eq!(rotation, Rotation::Rotated);
    assert_eq!(
        stored(refresh, &parent).await,
        Some(spent(&parent, at(MINUTE), &successor))
    );
    assert_eq!(stored(refresh, &successor).await, Some(successor));
}

/// Rotating a spent token again reports when it was spent and exactly the successor it got
/// then, and writes nothing: the parent is unchanged and the new successor is not stored.
pub async fn refresh_rotate_spent_parent_reports_its_successor(fixture: Fixture) {
    let refresh = fixture.refresh.as_ref();
    let parent = new_refresh(&new_session_id(), at(0));
    refresh.insert_refresh(&parent).await.unwrap();
    let first = new_refresh(&parent.session_id, at(MINUTE));
    let rotation = refresh
        .rotate_refresh(&parent.token_hash, &first, at(MINUTE))
        .await
        .unwrap();
    assert_eq!(rotation, Rotation::Rotated);

    let second = new_refresh(&parent.session_id, at(2 * MINUTE));
    let rotation = refresh
        .rotate_refresh(&parent.token_hash, &second, at(2 * MINUTE))
        .await
        .unwrap();
    assert_eq!(
        rotation,
        Rotation::AlreadySpent {
            spent_at: at(MINUTE),
            successor: Some(first.clone()),
        }
    );
    assert_eq!(
        stored(refresh, &parent).await,
        Some(spent(&parent, at(MINUTE), &first))
    );
    assert_eq!(stored(refresh, &first).await, Some(first));
    assert_eq!(stored(refresh, &second).await, None);
}

/// Rotating a hash no record has reports `Unknown` and stores nothing.
pub async fn refresh_rotate_unknown_parent(fixture: Fixture) {
    let refresh = fixture.refresh.as_ref();
    let never_stored = new_refresh(&new_session_id(), at(0));
    let successor = new_refresh(&never_stored.session_id, at(MINUTE));
    let rotation = refresh
        .rotate_refresh(&never_stored.token_hash, &successor, at(MINUTE))
        .await
        .unwrap();
    assert_eq!(rotation, Rotation::Unknown);
    assert_eq!(stored(refresh, &never_stored).await, None);
    assert_eq!(stored(refresh, &successor).await, None);
}

/// Down a chain of three rotations, a reused ancestor reports its immediate successor, not
/// the newest token of the chain.
pub async fn refresh_rotate_reports_the_immediate_successor(fixture: Fixture) {
    let refresh = fixture.refresh.as_ref();
    let session = new_session_id();
    let chain: Vec<RefreshRecord> = (0..4)
        .map(|n| new_refresh(&session, at(n * MINUTE)))
        .collect();
    refresh.insert_refresh(&chain[0]).await.unwrap();
    for n in 1..4 {
        let rotation = refresh
            .rotate_refresh(&chain[n - 1].token_hash, &chain[n], at(n as i64 * MINUTE))
            .await
            .unwrap();
        assert_eq!(rotation, Rotation::Rotated, "rotation {n}");
    }

    let late = new_refresh(&session, at(10 * MINUTE));
    for (n, ancestor) in chain[..3].iter().enumerate() {
        let successor_as_stored = if n + 2 < chain.len() {
            spent(&chain[n + 1], at((n as i64 + 2) * MINUTE), &chain[n + 2])
        } else {
            chain[n + 1].clone()
        };
        let rotation = refresh
            .rotate_refresh(&ancestor.token_hash, &late, at(10 * MINUTE))
            .await
            .unwrap();
        assert_eq!(
            rotation,
            Rotation::AlreadySpent {
                spent_at: at((n as i64 + 1) * MINUTE),
                successor: Some(successor_as_stored),
            },
            "reusing chain[{n}]"
        );
    }
    assert_eq!(stored(refresh, &late).await, None);
    assert_eq!(stored(refresh, &chain[3]).await, Some(chain[3].clone()));
}

/// A successor whose hash is taken (by another record, or by the parent itself) fails with
/// `Conflict` and writes nothing: the parent stays unspent and can still be rotated.
pub async fn refresh_rotate_successor_conflict_leaves_parent_unspent(fixture: Fixture) {
    let refresh = fixture.refresh.as_ref();
    let parent = new_refresh(&new_session_id(), at(0));
    let bystander = new_refresh(&new_session_id(), at(0));
    refresh.insert_refresh(&parent).await.unwrap();
    refresh.insert_refresh(&bystander).await.unwrap();

    for taken in [&bystander, &parent] {
        let successor = RefreshRecord {
            token_hash: taken.token_hash,
            ..new_refresh(&parent.session_id, at(MINUTE))
        };
        let result = refresh
            .rotate_refresh(&parent.token_hash, &successor, at(MINUTE))
            .await;
        assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
        assert_eq!(stored(refresh, &parent).await, Some(parent.clone()));
        assert_eq!(stored(refresh, &bystander).await, Some(bystander.clone()));
    }

    let successor = new_refresh(&parent.session_id, at(2 * MINUTE));
    let rotation = refresh
        .rotate_refresh(&parent.token_hash, &successor, at(2 * MINUTE))
        .await
        .unwrap();
    assert_eq!(rotation, Rotation::Rotated);
}

/// Purging deletes exactly the records whose expiry `now` has reached, spent or not, and
/// leaves the rest.
pub async fn refresh_purge_removes_only_expired(fixture: Fixture) {
    let refresh = fixture.refresh.as_ref();
    let now = at(60 * MINUTE);
    let session = new_session_id();
    let expiring = |expires_at| RefreshRecord {
        expires_at,
        ..new_refresh(&session, at(0))
    };
    let long_gone = expiring(at(30 * MINUTE));
    let just_now = expiring(now);
    let spent_parent = expiring(at(59 * MINUTE));
    let live_successor = expiring(now.saturating_add(minutes(60)));
    let ending_soon = expiring(at(60 * MINUTE + 1));
    for record in [&long_gone, &just_now, &spent_parent, &ending_soon] {
        refresh.insert_refresh(record).await.unwrap();
    }
    let rotation = refresh
        .rotate_refresh(&spent_parent.token_hash, &live_successor, at(10 * MINUTE))
        .await
        .unwrap();
    assert_eq!(rotation, Rotation::Rotated);

    assert_eq!(refresh.purge_refresh(now, 100).await.unwrap(), 3);
    for gone in [&long_gone, &just_now, &spent_parent] {
        assert_eq!(stored(refresh, gone).await, None);
    }
    assert_eq!(stored(refresh, &ending_soon).await, Some(ending_soon));
    assert_eq!(stored(refresh, &live_successor).await, Some(live_successor));
    assert_eq!(refresh.purge_refresh(now, 100).await.unwrap(), 0);
}

/// A purge deletes at most `limit` records, so repeated purges drain the expired ones.
pub async fn refresh_purge_respects_limit(fixture: Fixture) {
    let refresh = fixture.refresh.as_ref();
    let now = at(60 * MINUTE);
    let session = new_session_id();
    let mut expired = Vec::new();
    for n in 0..5 {
        let record = RefreshRecord {
            expires_at: at(30 * MINUTE + n * MINUTE),
            ..new_refresh(&session, at(0))
        };
        refresh.insert_refresh(&record).await.unwrap();
        expired.push(record);
    }
    let live: Vec<RefreshRecord> = (0..3)
        .map(|n| new_refresh(&session, at(50 * MINUTE + n * MINUTE)))
        .collect();
    for record in &live {
        refresh.insert_refresh(record).await.unwrap();
    }

    assert_eq!(refresh.purge_refresh(now, 0).await.unwrap(), 0);
    let mut counts = Vec::new();
    for _ in 0..4 {
        counts.push(refresh.purge_refresh(now, 2).await.unwrap());
    }
    assert_eq!(counts, [2, 2, 1, 0]);
    for record in &expired {
        assert_eq!(stored(refresh, record).await, None);
    }
    for record in &live {
        assert_eq!(stored(refresh, record).await, Some(record.clone()));
    }
}

/// Ten rotations of one parent at once, each with its own successor: exactly one wins, the
/// nine others see the parent spent at the winner's time with the winner's successor, and
/// only that successor is stored.
pub async fn concurrent_rotations_have_one_winner(fixture: Fixture) {
    const CONTENDERS: i64 = 10;
    let refresh = Arc::clone(&fixture.refresh);
    for round in 0..4 {
        let start = round * MINUTE;
        let parent = new_refresh(&new_session_id(), at(start));
        refresh.insert_refresh(&parent).await.unwrap();
        let tasks: Vec<_> = (0..CONTENDERS)
            .map(|n| {
                let refresh = Arc::clone(&refresh);
                let now = at(start + SECOND + n);
                let successor = new_refresh(&parent.session_id, now);
                tokio::spawn(async move {
                    let rotation = refresh
                        .rotate_refresh(&parent.token_hash, &successor, now)
                        .await
                        .unwrap();
                    (successor, now, rotation)
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }

        let winners: Vec<_> = outcomes
            .iter()
            .filter(|(_, _, rotation)| *rotation == Rotation::Rotated)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {} winners", winners.len());
        let (winner, won_at, _) = winners[0];
        let reported = Rotation::AlreadySpent {
            spent_at: *won_at,
            successor: Some(winner.clone()),
        };
        for (loser, _, rotation) in outcomes.iter().filter(|(record, _, _)| record != winner) {
            assert_eq!(rotation, &reported, "round {round}");
            assert_eq!(stored(refresh.as_ref(), loser).await, None);
        }
        assert_eq!(
            stored(refresh.as_ref(), &parent).await,
            Some(spent(&parent, *won_at, winner))
        );
        assert_eq!(stored(refresh.as_ref(), winner).await, Some(winner.clone()));
    }
}
