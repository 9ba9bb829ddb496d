//! [`AuditStore`](tessera_core::AuditStore): append, query with filters, cursor pages that
//! neither skip nor repeat under concurrent appends and purges, purge by time within a
//! limit; and the audited changes of the other stores, which write their event with the
//! change and never for a change that failed or changed nothing.
//!
//! These cases need a [`Fixture`] with an audit store ([`Fixture::with_audit`], or
//! [`Fixture::new`] over a store that is one) whose stores write their audited changes'
//! events into it; the [`audit_tests!`](crate::audit_tests) macro runs them.

use std::collections::HashSet;
use std::sync::Arc;

use tessera_core::{
    Actor, AuditEvent, AuditFilter, AuditKind, AuditRecord, AuditStore, Outcome, SessionId,
    StoreError, Timestamp, UserId,
};

use super::{Fixture, MINUTE, SECOND, at, new_client, new_key, new_session, new_user};

/// Runs every audit case as a `#[test]` against one backend, like
/// [`conformance_tests!`](crate::conformance_tests): `audit_tests!(name, factory)`, where
/// `factory()` returns a future of a fresh [`Fixture`](crate::conformance::Fixture) with an
/// audit store.
#[macro_export]
macro_rules! audit_tests {
    ($backend:ident, $factory:expr $(,)?) => {
        $crate::__conformance_cases! {
            module = $backend;
            factory = $factory;
            CurrentThread:
                audit_append_and_query_round_trip,
                audit_query_filters,
                audit_pages_by_cursor,
                audit_purge_respects_time_and_limit,
                audit_ids_are_never_reused,
                audit_user_changes_record_with_the_change,
                audit_failed_user_changes_record_nothing,
                audit_revocations_record_with_the_change,
                audit_revocations_of_nothing_record_nothing,
                audit_client_and_key_changes_record_with_the_change,
                audit_failed_client_and_key_changes_record_nothing,
                audit_service_changes_record_with_the_change,
                audit_failed_service_changes_record_nothing;
            MultiThread:
                audit_pages_are_stable_under_concurrent_appends,
                audit_pages_are_stable_under_concurrent_purges;
        }
    };
}

pub(super) fn trail(fixture: &Fixture) -> &dyn AuditStore {
    fixture
        .audit
        .as_deref()
        .expect("the audit cases need a fixture with an audit store")
}

/// Every event, oldest first.
pub(super) async fn everything(audit: &dyn AuditStore) -> Vec<AuditRecord> {
    audit
        .query(&AuditFilter::default(), 0, 10_000)
        .await
        .unwrap()
}

fn kinds(records: &[AuditRecord]) -> Vec<AuditKind> {
    records.iter().map(|record| record.event.kind).collect()
}

pub(super) fn event(kind: AuditKind, at_millis: i64) -> AuditEvent {
    AuditEvent::new(kind, at(at_millis), Actor::Cli)
}

/// An event comes back exactly as appended — every field, detail included — under the id
/// `append` returned; ids increase.
pub async fn audit_append_and_query_round_trip(fixture: Fixture) {
    let audit = trail(&fixture);
    let user = UserId::generate().unwrap();
    let session = SessionId::generate().unwrap();
    let full = AuditEvent::new(AuditKind::LoginSucceeded, at(0), Actor::User(user.clone()))
        .user(&user)
        .session(&session)
        .client(
            Some("2001:db8::7".parse().unwrap()),
            Some("Mozilla/5.0 (X11) \"q\" é"),
        )
        .detail("transport", "token")
        .detail("count", 3);
    let bare =
        AuditEvent::new(AuditKind::KeyRotated, at(SECOND), Actor::System).outcome(Outcome::Failure);
    let by_client = event(AuditKind::AdminAction, 2 * SECOND).actor(Actor::Client("c-9".into()));
    let first = audit.append(&full).await.unwrap();
    let second = audit.append(&bare).await.unwrap();
    let third = audit.append(&by_client).await.unwrap();
    assert!(0 < first && first < second && second < third);

    let all = everything(audit).await;
    assert_eq!(
        all,
        vec![
            AuditRecord {
                id: first,
                event: full
            },
            AuditRecord {
                id: second,
                event: bare
            },
            AuditRecord {
                id: third,
                event: by_client
            },
        ]
    );
    assert_eq!(all[0].event.ip.as_deref(), Some("2001:db8::7"));
}

/// Each filter field narrows the result, fields combine, and an empty filter matches all.
pub async fn audit_query_filters(fixture: Fixture) {
    let audit = trail(&fixture);
    let alice = UserId::generate().unwrap();
    let bob = UserId::generate().unwrap();
    let events = [
        event(AuditKind::LoginSucceeded, 0).user(&alice),
        event(AuditKind::LoginFailed, SECOND).user(&bob),
        event(AuditKind::Logout, 2 * SECOND).user(&alice),
        event(AuditKind::LoginSucceeded, 3 * SECOND).user(&bob),
        event(AuditKind::KeyRotated, 4 * SECOND),
    ];
    for event in &events {
        audit.append(event).await.unwrap();
    }
    let query = |filter: AuditFilter| async move {
        let found = audit.query(&filter, 0, 100).await.unwrap();
        found
            .into_iter()
            .map(|record| record.event)
            .collect::<Vec<_>>()
    };
    assert_eq!(query(AuditFilter::default()).await, events.to_vec());
    let of_alice = AuditFilter {
        user_id: Some(alice.clone()),
        ..AuditFilter::default()
    };
    assert_eq!(
        query(of_alice.clone()).await,
        vec![events[0].clone(), events[2].clone()]
    );
    let logins = AuditFilter {
        kind: Some(AuditKind::LoginSucceeded),
        ..AuditFilter::default()
    };
    assert_eq!(
        query(logins.clone()).await,
        vec![events[0].clone(), events[3].clone()]
    );
    let window = AuditFilter {
        since: Some(at(SECOND)),
        until: Some(at(3 * SECOND)),
        ..AuditFilter::default()
    };
    // `since` is inclusive, `until` exclusive.
    assert_eq!(
        query(window).await,
        vec![events[1].clone(), events[2].clone()]
    );
    let alice_logins = AuditFilter {
        kind: Some(AuditKind::LoginSucceeded),
        ..of_alice
    };
    assert_eq!(query(alice_logins).await, vec![events[0].clone()]);
    let nobody = AuditFilter {
        user_id: Some(UserId::generate().unwrap()),
        ..logins
    };
    assert_eq!(query(nobody).await, Vec::new());
}

/// Pages of `limit` after the last id seen cover every event once, in order, with filters
/// applied before the limit; past the end a page is empty.
pub async fn audit_pages_by_cursor(fixture: Fixture) {
    let audit = trail(&fixture);
    let user = UserId::generate().unwrap();
    let mut mine = Vec::new();
    for n in 0..10 {
        let mut event = event(AuditKind::LoginFailed, n * SECOND);
        if n % 2 == 0 {
            event = event.user(&user);
            mine.push(event.clone());
        }
        audit.append(&event).await.unwrap();
    }
    let filter = AuditFilter {
        user_id: Some(user),
        ..AuditFilter::default()
    };
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = audit.query(&filter, cursor, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        cursor = last.id;
        seen.extend(page.into_iter().map(|record| record.event));
    }
    assert_eq!(seen, mine);
    assert!(audit.query(&filter, cursor, 10).await.unwrap().is_empty());
    assert!(
        audit
            .query(&AuditFilter::default(), u64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        audit
            .query(&AuditFilter::default(), 0, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A purge deletes only events before its time, oldest first, at most `limit` of them.
pub async fn audit_purge_respects_time_and_limit(fixture: Fixture) {
    let audit = trail(&fixture);
    // Appended out of time order: the purge goes by time, not id.
    for millis in [3 * MINUTE, MINUTE, 0, 2 * MINUTE, 10 * MINUTE] {
        audit
            .append(&event(AuditKind::Logout, millis))
            .await
            .unwrap();
    }
    assert_eq!(audit.purge_before(at(5 * MINUTE), 2).await.unwrap(), 2);
    let left: Vec<Timestamp> = everything(audit)
        .await
        .iter()
        .map(|record| record.event.at)
        .collect();
    assert_eq!(left, vec![at(3 * MINUTE), at(2 * MINUTE), at(10 * MINUTE)]);
    assert_eq!(audit.purge_before(at(5 * MINUTE), 100).await.unwrap(), 2);
    assert_eq!(audit.purge_before(at(5 * MINUTE), 100).await.unwrap(), 0);
    assert_eq!(kinds(&everything(audit).await), vec![AuditKind::Logout]);
    assert_eq!(everything(audit).await[0].event.at, at(10 * MINUTE));
}

/// Purging the newest events does not lower the next id: a cursor never sees an id twice.
pub async fn audit_ids_are_never_reused(fixture: Fixture) {
    let audit = trail(&fixture);
    let mut last = 0;
    for n in 0..3 {
        last = audit.append(&event(AuditKind::Logout, n)).await.unwrap();
    }
    assert_eq!(audit.purge_before(at(MINUTE), 100).await.unwrap(), 3);
    let next = audit
        .append(&event(AuditKind::Logout, 2 * MINUTE))
        .await
        .unwrap();
    assert!(next > last, "id {next} after {last}");
}

/// Creating and deleting a user write their events with the change, once.
pub async fn audit_user_changes_record_with_the_change(fixture: Fixture) {
    let audit = trail(&fixture);
    let (name, record) = new_user("alice", at(0));
    let created = event(AuditKind::UserCreated, 0).user(&record.user.id);
    let result = fixture
        .users
        .create_user_audited(&name, &record, &created)
        .await
        .unwrap();
    assert!(result.recorded);
    assert!(
        fixture
            .users
            .user_by_id(&record.user.id)
            .await
            .unwrap()
            .is_some()
    );

    let deleted = event(AuditKind::UserDeleted, SECOND).user(&record.user.id);
    let result = fixture
        .users
        .delete_user_audited(&record.user.id, &deleted)
        .await
        .unwrap();
    assert!(result.value && result.recorded);
    assert!(
        fixture
            .users
            .user_by_id(&record.user.id)
            .await
            .unwrap()
            .is_none()
    );

    let events: Vec<AuditEvent> = everything(audit)
        .await
        .into_iter()
        .map(|record| record.event)
        .collect();
    assert_eq!(events, vec![created, deleted]);
}

/// A duplicate username and the deletion of an unknown user change nothing and record
/// nothing.
pub async fn audit_failed_user_changes_record_nothing(fixture: Fixture) {
    let audit = trail(&fixture);
    let (name, record) = new_user("alice", at(0));
    fixture.users.create_user(&name, &record).await.unwrap();
    let (same_name, other) = new_user("ALICE", at(SECOND));
    let result = fixture
        .users
        .create_user_audited(&same_name, &other, &event(AuditKind::UserCreated, SECOND))
        .await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert!(
        fixture
            .users
            .user_by_id(&other.user.id)
            .await
            .unwrap()
            .is_none()
    );

    let unknown = UserId::generate().unwrap();
    let result = fixture
        .users
        .delete_user_audited(&unknown, &event(AuditKind::UserDeleted, SECOND))
        .await
        .unwrap();
    assert!(!result.value);
    assert_eq!(everything(audit).await, Vec::new());
}

/// Revoking one session, and a user's other sessions, write their events with the change;
/// the bulk event gets the count.
pub async fn audit_revocations_record_with_the_change(fixture: Fixture) {
    let audit = trail(&fixture);
    let user = UserId::generate().unwrap();
    let sessions: Vec<_> = (0..3).map(|n| new_session(&user, at(n * SECOND))).collect();
    for session in &sessions {
        fixture.sessions.insert_session(session).await.unwrap();
    }
    let one = event(AuditKind::SessionRevoked, MINUTE)
        .user(&user)
        .session(&sessions[0].id);
    let result = fixture
        .sessions
        .revoke_session_audited(&sessions[0].id, at(MINUTE), &one)
        .await
        .unwrap();
    assert!(result.value && result.recorded);

    let rest = event(AuditKind::SessionsRevoked, 2 * MINUTE)
        .user(&user)
        .session(&sessions[2].id)
        .detail("scope", "others");
    let result = fixture
        .sessions
        .revoke_user_sessions_audited(&user, Some(&sessions[2].id), at(2 * MINUTE), &rest)
        .await
        .unwrap();
    assert!(result.recorded);
    assert_eq!(result.value, vec![sessions[1].id.clone()]);

    let events: Vec<AuditEvent> = everything(audit)
        .await
        .into_iter()
        .map(|record| record.event)
        .collect();
    assert_eq!(events, vec![one, rest.detail("count", 1)]);
    // The revocation log has both, as for the plain methods.
    let logged = fixture.sessions.revocations_since(0, 10).await.unwrap();
    assert_eq!(logged.len(), 2);
}

/// Revoking an unknown or already revoked session, or a user with nothing to revoke,
/// records nothing.
pub async fn audit_revocations_of_nothing_record_nothing(fixture: Fixture) {
    let audit = trail(&fixture);
    let user = UserId::generate().unwrap();
    let session = new_session(&user, at(0));
    fixture.sessions.insert_session(&session).await.unwrap();
    fixture
        .sessions
        .revoke_session(&session.id, at(SECOND))
        .await
        .unwrap();

    let again = fixture
        .sessions
        .revoke_session_audited(
            &session.id,
            at(MINUTE),
            &event(AuditKind::SessionRevoked, 0),
        )
        .await
        .unwrap();
    assert!(!again.value);
    let unknown = fixture
        .sessions
        .revoke_session_audited(
            &SessionId::generate().unwrap(),
            at(MINUTE),
            &event(AuditKind::SessionRevoked, 0),
        )
        .await
        .unwrap();
    assert!(!unknown.value);
    let none = fixture
        .sessions
        .revoke_user_sessions_audited(
            &user,
            None,
            at(MINUTE),
            &event(AuditKind::SessionsRevoked, 0),
        )
        .await
        .unwrap();
    assert!(none.value.is_empty());
    assert_eq!(everything(audit).await, Vec::new());
}

/// Adding and removing a client, and adding a signing key, write their events with the
/// change.
pub async fn audit_client_and_key_changes_record_with_the_change(fixture: Fixture) {
    let audit = trail(&fixture);
    let client = new_client("c-api", "billing-api", at(0));
    let added = event(AuditKind::ClientCreated, 0).detail("client_id", "c-api");
    assert!(
        fixture
            .clients
            .insert_client_audited(&client, &added)
            .await
            .unwrap()
            .recorded
    );
    let removed = event(AuditKind::ClientDeleted, SECOND).detail("name", "billing-api");
    let result = fixture
        .clients
        .delete_client_audited("billing-api", &removed)
        .await
        .unwrap();
    assert!(result.value && result.recorded);
    assert_eq!(fixture.clients.client_by_id("c-api").await.unwrap(), None);

    let key = new_key("k-1", 0);
    let rotated = event(AuditKind::KeyRotated, 2 * SECOND).detail("kid", "k-1");
    assert!(
        fixture
            .keys
            .insert_signing_key_audited(&key, &rotated)
            .await
            .unwrap()
            .recorded
    );
    assert_eq!(fixture.keys.signing_keys().await.unwrap(), vec![key]);

    let events: Vec<AuditEvent> = everything(audit)
        .await
        .into_iter()
        .map(|record| record.event)
        .collect();
    assert_eq!(events, vec![added, removed, rotated]);
}

/// A client name or key id that exists, and removing an unknown client, record nothing.
pub async fn audit_failed_client_and_key_changes_record_nothing(fixture: Fixture) {
    let audit = trail(&fixture);
    fixture
        .clients
        .insert_client(&new_client("c-api", "billing-api", at(0)))
        .await
        .unwrap();
    let result = fixture
        .clients
        .insert_client_audited(
            &new_client("c-other", "billing-api", at(SECOND)),
            &event(AuditKind::ClientCreated, SECOND),
        )
        .await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    let result = fixture
        .clients
        .delete_client_audited("nobody", &event(AuditKind::ClientDeleted, SECOND))
        .await
        .unwrap();
    assert!(!result.value);

    fixture
        .keys
        .insert_signing_key(&new_key("k-1", 0))
        .await
        .unwrap();
    let result = fixture
        .keys
        .insert_signing_key_audited(&new_key("k-1", 1), &event(AuditKind::KeyRotated, SECOND))
        .await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(everything(audit).await, Vec::new());
}

/// A reader paging by cursor while two writers append sees every event exactly once, ids
/// strictly increasing, each writer's events in the order it appended them.
pub async fn audit_pages_are_stable_under_concurrent_appends(fixture: Fixture) {
    const PER_WRITER: i64 = 100;
    let audit: Arc<dyn AuditStore> = fixture.audit.clone().expect("an audit store");
    let writers: Vec<_> = ["first", "second"]
        .into_iter()
        .map(|writer| {
            let audit = Arc::clone(&audit);
            tokio::spawn(async move {
                for n in 0..PER_WRITER {
                    let event = event(AuditKind::LoginFailed, n)
                        .detail("writer", writer)
                        .detail("n", n);
                    audit.append(&event).await.unwrap();
                }
            })
        })
        .collect();
    let mut seen: Vec<AuditRecord> = Vec::new();
    let mut cursor = 0;
    while seen.len() < 2 * PER_WRITER as usize {
        let page = audit
            .query(&AuditFilter::default(), cursor, 7)
            .await
            .unwrap();
        if let Some(last) = page.last() {
            cursor = last.id;
        } else {
            tokio::task::yield_now().await;
        }
        seen.extend(page);
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(
        audit
            .query(&AuditFilter::default(), cursor, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(seen.windows(2).all(|pair| pair[0].id < pair[1].id));
    for writer in ["first", "second"] {
        let order: Vec<String> = seen
            .iter()
            .filter(|record| record.event.detail.get("writer") == Some(writer))
            .map(|record| record.event.detail.get("n").unwrap_or_default().to_owned())
            .collect();
        let expected: Vec<String> = (0..PER_WRITER).map(|n| n.to_string()).collect();
        assert_eq!(order, expected, "{writer}'s events");
    }
}

/// A reader paging while old events are purged and new ones appended sees every event that
/// is not purged exactly once, in id order: a purge never makes a page skip a survivor.
pub async fn audit_pages_are_stable_under_concurrent_purges(fixture: Fixture) {
    let audit: Arc<dyn AuditStore> = fixture.audit.clone().expect("an audit store");
    // Old and new events interleaved, so the purge removes ids on both sides of the cursor.
    let mut survivors = HashSet::new();
    for n in 0..200 {
        let old = n % 2 == 0;
        let at_millis = if old { n } else { 10 * MINUTE + n };
        let id = audit
            .append(&event(AuditKind::Logout, at_millis))
            .await
            .unwrap();
        if !old {
            survivors.insert(id);
        }
    }
    let purger = {
        let audit = Arc::clone(&audit);
        tokio::spawn(async move {
            while audit.purge_before(at(MINUTE), 7).await.unwrap() > 0 {
                tokio::task::yield_now().await;
            }
        })
    };
    let appender = {
        let audit = Arc::clone(&audit);
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..50 {
                ids.push(
                    audit
                        .append(&event(AuditKind::Logout, 20 * MINUTE + n))
                        .await
                        .unwrap(),
                );
            }
            ids
        })
    };
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = audit
            .query(&AuditFilter::default(), cursor, 5)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.id;
        seen.extend(page.into_iter().map(|record| record.id));
        tokio::task::yield_now().await;
    }
    purger.await.unwrap();
    survivors.extend(appender.await.unwrap());
    // Whatever was appended after the reader reached the end, it reads now.
    loop {
        let page = audit
            .query(&AuditFilter::default(), cursor, 100)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.id;
        seen.extend(page.into_iter().map(|record| record.id));
    }
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "ids out of order"
    );
    let seen_set: HashSet<u64> = seen.iter().copied().collect();
    assert!(
        survivors.is_subset(&seen_set),
        "{} survivors never seen",
        survivors.difference(&seen_set).count()
    );
    // Old events may or may not have been read before the purge reached them; none is left.
    assert!(
        everything(audit.as_ref())
            .await
            .iter()
            .all(|record| record.event.at >= at(MINUTE))
    );
}
