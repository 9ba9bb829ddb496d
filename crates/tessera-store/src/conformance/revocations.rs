//! The revocation log and purging of ended sessions.

use std::time::Duration;

use tessera_core::{Revocation, RevocationKind, SessionId, SessionRecord, UserId};

use super::{Fixture, MINUTE, at, minutes, new_session, session_ending};

/// Inserts `count` sessions of `owner` created at `BASE`, ending a day later, and revokes them one by one, a
/// minute apart from `first_at_minute` on. Returns them in revocation order.
async fn revoke_many(
    fixture: &Fixture,
    owner: &UserId,
    count: i64,
    first_at_minute: i64,
) -> Vec<SessionRecord> {
    let mut revoked = Vec::new();
    let day = at(24 * 60 * MINUTE);
    for n in 0..count {
        let record = session_ending(owner, at(0), day, day);
        fixture.sessions.insert_session(&record).await.unwrap();
        let when = at((first_at_minute + n) * MINUTE);
        assert!(
            fixture
                .sessions
                .revoke_session(&record.id, when)
                .await
                .unwrap()
        );
        revoked.push(SessionRecord {
            revoked_at: Some(when),
            ..record
        });
    }
    revoked
}

fn assert_strictly_increasing(log: &[Revocation]) {
    assert!(log.iter().all(|revocation| revocation.sequence > 0));
    assert!(
        log.windows(2)
            .all(|pair| pair[0].sequence < pair[1].sequence),
        "sequences not strictly increasing: {:?}",
        log.iter()
            .map(|revocation| revocation.sequence)
            .collect::<Vec<_>>()
    );
}

/// Every revocation, single or bulk, gets a log entry with a strictly greater sequence, and
/// the cursor is the last of them.
pub async fn revocation_sequences_increase(fixture: Fixture) {
    let sessions = &fixture.sessions;
    assert_eq!(sessions.revocation_cursor().await.unwrap(), 0);
    assert_eq!(sessions.revocations_since(0, 100).await.unwrap(), []);

    let owner = UserId::generate().unwrap();
    let singles = revoke_many(&fixture, &owner, 2, 1).await;
    let bulk_owner = UserId::generate().unwrap();
    for n in 0..3 {
        let record = new_session(&bulk_owner, at(n * MINUTE));
        sessions.insert_session(&record).await.unwrap();
    }
    let bulk = sessions
        .revoke_user_sessions(&bulk_owner, None, at(5 * MINUTE))
        .await
        .unwrap();
    let last = revoke_many(&fixture, &owner, 1, 6).await;

    let log = sessions.revocations_since(0, 100).await.unwrap();
    assert_eq!(log.len(), 6);
    assert_strictly_increasing(&log);
    let logged = |range: std::ops::Range<usize>| -> Vec<SessionId> {
        log[range]
            .iter()
            .map(|revocation| revocation.session_id().cloned().unwrap())
            .collect()
    };
    assert_eq!(logged(0..2), [singles[0].id.clone(), singles[1].id.clone()]);
    let mut bulk_logged = logged(2..5);
    bulk_logged.sort();
    let mut bulk = bulk;
    bulk.sort();
    assert_eq!(bulk_logged, bulk);
    assert_eq!(logged(5..6), [last[0].id.clone()]);
    assert_eq!(
        log[0],
        Revocation {
            sequence: log[0].sequence,
            kind: RevocationKind::Session(singles[0].id.clone()),
            user_id: owner.clone(),
            revoked_at: at(MINUTE),
        }
    );
    assert!(log[2..5].iter().all(|revocation| {
        revocation.user_id == bulk_owner && revocation.revoked_at == at(5 * MINUTE)
    }));
    assert_eq!(sessions.revocation_cursor().await.unwrap(), log[5].sequence);
}

/// `revocations_since` pages through the log: entries after the given sequence, oldest
/// first, at most `limit`.
pub async fn revocation_pages(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let owner = UserId::generate().unwrap();
    revoke_many(&fixture, &owner, 7, 1).await;
    let all = sessions.revocations_since(0, 100).await.unwrap();
    assert_eq!(all.len(), 7);

    let mut paged = Vec::new();
    let mut after = 0;
    let mut page_sizes = Vec::new();
    loop {
        let page = sessions.revocations_since(after, 3).await.unwrap();
        page_sizes.push(page.len());
        let Some(last) = page.last() else { break };
        after = last.sequence;
        paged.extend(page);
    }
    assert_eq!(page_sizes, [3, 3, 1, 0]);
    assert_eq!(paged, all);

    let from_middle = sessions
        .revocations_since(all[3].sequence, 100)
        .await
        .unwrap();
    assert_eq!(from_middle, all[4..]);
    assert_eq!(
        sessions
            .revocations_since(all[6].sequence, 100)
            .await
            .unwrap(),
        []
    );
    assert_eq!(sessions.revocations_since(0, 0).await.unwrap(), []);
    assert_eq!(sessions.revocations_since(u64::MAX, 10).await.unwrap(), []);
    let cursor = sessions.revocation_cursor().await.unwrap();
    assert_eq!(cursor, all[6].sequence);
    assert_eq!(sessions.revocations_since(cursor, 100).await.unwrap(), []);
}

/// Purging deletes sessions whose idle or absolute expiry has passed, revoked or not, and
/// keeps every live session — including one whose idle expiry a touch moved — and revoked
/// sessions not yet expired. It leaves the log alone within the retention.
pub async fn purge_removes_only_ended_sessions(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let owner = UserId::generate().unwrap();
    let now = at(60 * MINUTE);
    let day = 24 * 60 * MINUTE;
    let live = new_session(&owner, at(50 * MINUTE));
    let extended = session_ending(&owner, at(0), at(30 * MINUTE), at(day));
    let ending_soon = session_ending(
        &owner,
        at(0),
        now.saturating_add(Duration::from_millis(1)),
        at(day),
    );
    let idle = session_ending(&owner, at(0), at(30 * MINUTE), at(day));
    let idle_just_now = session_ending(&owner, at(0), now, at(day));
    let ended = session_ending(&owner, at(0), at(90 * MINUTE), at(45 * MINUTE));
    let revoked_ended = session_ending(&owner, at(0), at(40 * MINUTE), at(day));
    let revoked_live = new_session(&owner, at(40 * MINUTE));
    for record in [
        &live,
        &extended,
        &ending_soon,
        &idle,
        &idle_just_now,
        &ended,
        &revoked_ended,
        &revoked_live,
    ] {
        sessions.insert_session(record).await.unwrap();
    }
    assert!(
        sessions
            .touch_session(&extended.id, at(29 * MINUTE), at(59 * MINUTE + 30 * 60_000))
            .await
            .unwrap()
    );
    for record in [&revoked_ended, &revoked_live] {
        assert!(
            sessions
                .revoke_session(&record.id, at(41 * MINUTE))
                .await
                .unwrap()
        );
    }

    let removed = sessions
        .purge_expired(now, minutes(24 * 60), 100)
        .await
        .unwrap();
    assert_eq!(removed, 4, "idle, idle_just_now, ended, revoked_ended");
    for gone in [&idle, &idle_just_now, &ended, &revoked_ended] {
        assert_eq!(sessions.session_by_id(&gone.id).await.unwrap(), None);
    }
    for kept in [&live, &extended, &ending_soon, &revoked_live] {
        assert!(
            sessions.session_by_id(&kept.id).await.unwrap().is_some(),
            "purged {kept:?}"
        );
    }
    let still_live = sessions.sessions_of_user(&owner, now).await.unwrap();
    assert_eq!(still_live.len(), 3);
    assert_eq!(sessions.revocations_since(0, 100).await.unwrap().len(), 2);
    assert_eq!(
        sessions
            .purge_expired(now, minutes(24 * 60), 100)
            .await
            .unwrap(),
        0
    );
}

/// Purging deletes at most `limit` sessions per call and never a live one.
pub async fn purge_respects_limit(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let owner = UserId::generate().unwrap();
    let now = at(60 * MINUTE);
    let mut expired = Vec::new();
    for n in 0..5 {
        let record = session_ending(
            &owner,
            at(n * MINUTE),
            at(30 * MINUTE + n * MINUTE),
            at(12 * 60 * MINUTE),
        );
        sessions.insert_session(&record).await.unwrap();
        expired.push(record);
    }
    let live: Vec<SessionRecord> = (0..3)
        .map(|n| new_session(&owner, at(50 * MINUTE + n * MINUTE)))
        .collect();
    for record in &live {
        sessions.insert_session(record).await.unwrap();
    }

    let mut counts = Vec::new();
    for _ in 0..4 {
        counts.push(sessions.purge_expired(now, minutes(60), 2).await.unwrap());
    }
    assert_eq!(counts, [2, 2, 1, 0]);
    for record in &expired {
        assert_eq!(sessions.session_by_id(&record.id).await.unwrap(), None);
    }
    let remaining = sessions.sessions_of_user(&owner, now).await.unwrap();
    assert_eq!(remaining.len(), live.len());
    assert_eq!(
        sessions.purge_expired(now, minutes(60), 0).await.unwrap(),
        0
    );
}

/// Log entries older than the retention go (at most `limit` per call); newer ones stay,
/// and sequences keep increasing past the trimmed ones.
pub async fn purge_trims_old_revocations(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let owner = UserId::generate().unwrap();
    // Revoked at minutes 0..=3; the sessions stay unexpired so only the log is trimmed.
    let revoked = revoke_many(&fixture, &owner, 4, 0).await;
    let before = sessions.revocations_since(0, 100).await.unwrap();
    assert_eq!(before.len(), 4);

    // Retention 58 minutes at minute 60: entries from before minute 2 are old.
    let removed = sessions
        .purge_expired(at(60 * MINUTE), minutes(58), 100)
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let after = sessions.revocations_since(0, 100).await.unwrap();
    assert_eq!(after, before[2..]);
    for record in &revoked {
        let stored = sessions.session_by_id(&record.id).await.unwrap();
        assert_eq!(
            stored.as_ref(),
            Some(record),
            "trimming the log touched a session"
        );
    }

    // The limit applies to the log too.
    let removed = sessions
        .purge_expired(at(60 * MINUTE), Duration::ZERO, 1)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        sessions.revocations_since(0, 100).await.unwrap(),
        before[3..]
    );
    sessions
        .purge_expired(at(60 * MINUTE), Duration::ZERO, 100)
        .await
        .unwrap();
    assert_eq!(sessions.revocations_since(0, 100).await.unwrap(), []);

    // An emptied log keeps its position: nothing is numbered twice.
    assert_eq!(
        sessions.revocation_cursor().await.unwrap(),
        before[3].sequence
    );
    let next = revoke_many(&fixture, &owner, 1, 61).await;
    let log = sessions.revocations_since(0, 100).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].session_id(), Some(&next[0].id));
    assert!(log[0].sequence > before[3].sequence);
    assert_eq!(sessions.revocation_cursor().await.unwrap(), log[0].sequence);
}
