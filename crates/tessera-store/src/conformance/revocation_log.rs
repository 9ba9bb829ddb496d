//! [`RevocationLog`](tessera_core::RevocationLog): the durable log a non-durable session
//! store writes revocations to — appending in order, paging, trimming, and that it is the
//! very log the session store reads.

use std::sync::Arc;

use tessera_core::{Revocation, RevocationLog, SessionId, Timestamp, UserId};

use super::{Fixture, MINUTE, at, new_session};

fn entries(count: usize) -> Vec<(SessionId, UserId)> {
    (0..count)
        .map(|_| (SessionId::generate().unwrap(), UserId::generate().unwrap()))
        .collect()
}

async fn whole_log(log: &dyn RevocationLog) -> Vec<Revocation> {
    log.logged_since(0, usize::MAX).await.unwrap()
}

fn strictly_increasing(log: &[Revocation]) -> bool {
    log.iter().all(|entry| entry.sequence > 0)
        && log
            .windows(2)
            .all(|pair| pair[0].sequence < pair[1].sequence)
}

/// Each call appends one entry per pair, in the order given, with strictly increasing
/// sequences; the cursor is the last of them; an empty call appends nothing.
pub async fn revocation_log_appends_in_order(fixture: Fixture) {
    let log = fixture.log.as_ref();
    assert_eq!(log.log_cursor().await.unwrap(), 0);
    assert_eq!(whole_log(log).await, []);

    let first = entries(1);
    let batch = entries(3);
    let last = entries(1);
    log.log_revocations(&first, at(MINUTE)).await.unwrap();
    log.log_revocations(&batch, at(2 * MINUTE)).await.unwrap();
    log.log_revocations(&[], at(3 * MINUTE)).await.unwrap();
    log.log_revocations(&last, at(4 * MINUTE)).await.unwrap();

    let logged = whole_log(log).await;
    assert!(strictly_increasing(&logged), "{logged:?}");
    let expected: Vec<(SessionId, UserId, Timestamp)> = first
        .iter()
        .map(|(session, user)| (session.clone(), user.clone(), at(MINUTE)))
        .chain(
            batch
                .iter()
                .map(|(session, user)| (session.clone(), user.clone(), at(2 * MINUTE))),
        )
        .chain(
            last.iter()
                .map(|(session, user)| (session.clone(), user.clone(), at(4 * MINUTE))),
        )
        .collect();
    let found: Vec<(SessionId, UserId, Timestamp)> = logged
        .iter()
        .map(|entry| {
            (
                entry.session_id().cloned().unwrap(),
                entry.user_id.clone(),
                entry.revoked_at,
            )
        })
        .collect();
    assert_eq!(found, expected, "entries missing, altered or out of order");
    assert_eq!(log.log_cursor().await.unwrap(), logged[4].sequence);
}

/// `logged_since` pages through the log: entries after the given sequence, oldest first, at
/// most `limit`.
pub async fn revocation_log_pages(fixture: Fixture) {
    let log = fixture.log.as_ref();
    for n in 0..7 {
        log.log_revocations(&entries(1), at(n * MINUTE))
            .await
            .unwrap();
    }
    let all = whole_log(log).await;
    assert_eq!(all.len(), 7);

    let mut paged = Vec::new();
    let mut page_sizes = Vec::new();
    let mut after = 0;
    loop {
        let page = log.logged_since(after, 3).await.unwrap();
        page_sizes.push(page.len());
        let Some(last) = page.last() else { break };
        after = last.sequence;
        paged.extend(page);
    }
    assert_eq!(page_sizes, [3, 3, 1, 0]);
    assert_eq!(paged, all);
    assert_eq!(
        log.logged_since(all[3].sequence, 100).await.unwrap(),
        all[4..]
    );
    assert_eq!(log.logged_since(0, 0).await.unwrap(), []);
    assert_eq!(log.logged_since(u64::MAX, 10).await.unwrap(), []);
    let cursor = log.log_cursor().await.unwrap();
    assert_eq!(cursor, all[6].sequence);
    assert_eq!(log.logged_since(cursor, 100).await.unwrap(), []);
}

/// Trimming deletes entries revoked before the given time, at most `limit` per call, and
/// never lowers the cursor: later entries still get higher sequences.
pub async fn revocation_log_trim_keeps_the_cursor(fixture: Fixture) {
    let log = fixture.log.as_ref();
    for n in 0..4 {
        log.log_revocations(&entries(1), at(n * MINUTE))
            .await
            .unwrap();
    }
    let before = whole_log(log).await;

    assert_eq!(log.trim_log(at(2 * MINUTE), 100).await.unwrap(), 2);
    assert_eq!(whole_log(log).await, before[2..]);
    assert_eq!(log.trim_log(at(2 * MINUTE), 100).await.unwrap(), 0);
    assert_eq!(log.trim_log(at(60 * MINUTE), 1).await.unwrap(), 1);
    assert_eq!(whole_log(log).await, before[3..]);
    assert_eq!(log.trim_log(at(60 * MINUTE), 0).await.unwrap(), 0);
    assert_eq!(log.trim_log(at(60 * MINUTE), 100).await.unwrap(), 1);
    assert_eq!(whole_log(log).await, []);

    assert_eq!(log.log_cursor().await.unwrap(), before[3].sequence);
    let next = entries(1);
    log.log_revocations(&next, at(61 * MINUTE)).await.unwrap();
    let after = whole_log(log).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].session_id(), Some(&next[0].0));
    assert!(after[0].sequence > before[3].sequence);
    assert_eq!(log.log_cursor().await.unwrap(), after[0].sequence);
}

/// The session store reads its revocations from this log and writes them to it: a session
/// revoked through the store is logged here, and an entry appended here is what the store
/// reports, under one sequence.
pub async fn revocation_log_is_the_session_stores_log(fixture: Fixture) {
    let (sessions, log) = (&fixture.sessions, fixture.log.as_ref());
    let owner = UserId::generate().unwrap();
    let record = new_session(&owner, at(0));
    sessions.insert_session(&record).await.unwrap();
    assert!(
        sessions
            .revoke_session(&record.id, at(MINUTE))
            .await
            .unwrap()
    );
    let direct = entries(1);
    log.log_revocations(&direct, at(2 * MINUTE)).await.unwrap();

    let logged = whole_log(log).await;
    assert_eq!(logged.len(), 2);
    assert_eq!(
        (
            logged[0].session_id().unwrap(),
            &logged[0].user_id,
            logged[0].revoked_at
        ),
        (&record.id, &owner, at(MINUTE))
    );
    assert_eq!(logged[1].session_id(), Some(&direct[0].0));
    assert_eq!(sessions.revocations_since(0, 100).await.unwrap(), logged);
    assert_eq!(
        sessions.revocation_cursor().await.unwrap(),
        log.log_cursor().await.unwrap()
    );
}

/// Batches appended at once from many tasks all land, each entry once, each batch in the
/// order given, under strictly increasing and unique sequences.
pub async fn concurrent_log_appends_keep_their_order(fixture: Fixture) {
    const TASKS: usize = 8;
    const BATCH: usize = 4;
    let log = Arc::clone(&fixture.log);
    let batches: Vec<Vec<(SessionId, UserId)>> = (0..TASKS).map(|_| entries(BATCH)).collect();
    let tasks: Vec<_> = batches
        .iter()
        .cloned()
        .enumerate()
        .map(|(n, batch)| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                log.log_revocations(&batch, at(n as i64 * MINUTE))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let logged = whole_log(log.as_ref()).await;
    assert_eq!(logged.len(), TASKS * BATCH);
    assert!(strictly_increasing(&logged));
    for (n, batch) in batches.iter().enumerate() {
        let positions: Vec<usize> = batch
            .iter()
            .map(|(session, user)| {
                let found: Vec<usize> = logged
                    .iter()
                    .enumerate()
                    .filter(|(_, entry)| entry.session_id() == Some(session))
                    .map(|(position, _)| position)
                    .collect();
                assert_eq!(found.len(), 1, "batch {n}: logged {} times", found.len());
                let entry = &logged[found[0]];
                assert_eq!(&entry.user_id, user);
                assert_eq!(entry.revoked_at, at(n as i64 * MINUTE));
                found[0]
            })
            .collect();
        assert!(
            positions.windows(2).all(|pair| pair[0] < pair[1]),
            "batch {n} out of order: {positions:?}"
        );
    }
    assert_eq!(
        log.log_cursor().await.unwrap(),
        logged.last().unwrap().sequence
    );
}
