//! [`SessionStore`](tessera_core::SessionStore): insertion, look-up, listing, touching,
//! revocation. Their races are in `session_races`.

use std::collections::HashSet;

use tessera_core::{SessionId, SessionRecord, SessionStore, StoreError, Transport, UserId};

use super::{Fixture, MINUTE, SECOND, at, ids, minutes, new_session, session_ending};

pub(super) fn user() -> UserId {
    UserId::generate().unwrap()
}

/// How many times `session` appears in the revocation log.
pub(super) async fn times_logged(sessions: &dyn SessionStore, session: &SessionId) -> usize {
    sessions
        .revocations_since(0, usize::MAX)
        .await
        .unwrap()
        .iter()
        .filter(|revocation| revocation.session_id() == Some(session))
        .count()
}

/// A session reads back field for field by its id, verifier included.
pub async fn session_insert_and_look_up(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let owner = user();
    let full = SessionRecord {
        transport: Transport::Token,
        ip: Some("2001:db8::1".to_owned()),
        user_agent: Some("Mozilla/5.0 (X11; Linux) — naïve “quotes”".to_owned()),
        ..new_session(&owner, at(0))
    };
    let bare = SessionRecord {
        ip: None,
        user_agent: None,
        ..new_session(&owner, at(MINUTE))
    };
    sessions.insert_session(&full).await.unwrap();
    sessions.insert_session(&bare).await.unwrap();

    for record in [&full, &bare] {
        let by_id = sessions.session_by_id(&record.id).await.unwrap();
        assert_eq!(by_id.as_ref(), Some(record));
    }
    let unknown = new_session(&owner, at(0));
    assert_eq!(sessions.session_by_id(&unknown.id).await.unwrap(), None);
}

/// A new session with an existing id conflicts and changes nothing.
pub async fn session_id_collision_conflicts(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let original = new_session(&user(), at(0));
    sessions.insert_session(&original).await.unwrap();

    let intruder = SessionRecord {
        id: original.id.clone(),
        ..new_session(&user(), at(MINUTE))
    };
    let result = sessions.insert_session(&intruder).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(
        sessions.session_by_id(&original.id).await.unwrap(),
        Some(original.clone())
    );
    assert_eq!(
        sessions
            .sessions_of_user(&intruder.user_id, at(MINUTE))
            .await
            .unwrap(),
        []
    );

    // Revoked sessions keep their id too.
    sessions
        .revoke_session(&original.id, at(2 * MINUTE))
        .await
        .unwrap();
    let result = sessions.insert_session(&intruder).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    let stored = sessions.session_by_id(&original.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(at(2 * MINUTE)));
    assert_eq!(stored.verifier, original.verifier);
}

/// Sessions that share a user agent each read it back, and keep it when the others end:
/// a store may keep one copy of a text many sessions send, but never loses or mixes it up.
pub async fn session_user_agents_survive_other_sessions(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126";
    let with_agent = |user_agent: Option<&str>, session: SessionRecord| SessionRecord {
        user_agent: user_agent.map(str::to_owned),
        ..session
    };
    let short = with_agent(
        Some(browser),
        session_ending(&user(), at(0), at(MINUTE), at(MINUTE)),
    );
    let long = with_agent(Some(browser), new_session(&user(), at(0)));
    let other = with_agent(Some("curl/8.5.0"), new_session(&user(), at(0)));
    let none = with_agent(None, new_session(&long.user_id, at(SECOND)));
    for record in [&short, &long, &other, &none] {
        sessions.insert_session(record).await.unwrap();
    }
    for record in [&short, &long, &other, &none] {
        assert_eq!(
            sessions.session_by_id(&record.id).await.unwrap().as_ref(),
            Some(record)
        );
    }
    let later = at(2 * MINUTE);
    sessions
        .purge_expired(later, minutes(0), 100)
        .await
        .unwrap();
    assert_eq!(sessions.session_by_id(&short.id).await.unwrap(), None);
    assert_eq!(
        sessions
            .sessions_of_user(&long.user_id, later)
            .await
            .unwrap(),
        [none.clone(), long.clone()]
    );
    assert_eq!(
        sessions.session_by_id(&other.id).await.unwrap().as_ref(),
        Some(&other)
    );
}

/// `sessions_of_user` lists the user's live sessions only — not idle-expired, absolute-
/// expired, revoked or anyone else's — newest first.
pub async fn session_list_has_only_live_newest_first(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let owner = user();
    let now = at(60 * MINUTE);
    let oldest = new_session(&owner, at(40 * MINUTE));
    let middle = new_session(&owner, at(45 * MINUTE));
    let newest = new_session(&owner, at(50 * MINUTE));
    let idle = session_ending(&owner, at(0), at(30 * MINUTE), at(12 * 60 * MINUTE));
    let idle_just_now = session_ending(&owner, at(MINUTE), now, at(12 * 60 * MINUTE));
    let ended = session_ending(&owner, at(2 * MINUTE), at(90 * MINUTE), at(59 * MINUTE));
    let ended_just_now = session_ending(&owner, at(3 * MINUTE), now, now);
    let revoked = new_session(&owner, at(55 * MINUTE));
    let someone_elses = new_session(&user(), at(56 * MINUTE));
    for record in [
        &middle,
        &idle,
        &newest,
        &ended,
        &oldest,
        &idle_just_now,
        &ended_just_now,
        &revoked,
        &someone_elses,
    ] {
        sessions.insert_session(record).await.unwrap();
    }
    assert!(
        sessions
            .revoke_session(&revoked.id, at(58 * MINUTE))
            .await
            .unwrap()
    );

    let live = sessions.sessions_of_user(&owner, now).await.unwrap();
    assert_eq!(
        ids(&live),
        ids(&[newest.clone(), middle.clone(), oldest.clone()])
    );
    assert_eq!(live, [newest.clone(), middle.clone(), oldest.clone()]);
    // Before their expiries the expired ones were listed too; the revoked one never is.
    let earlier = sessions
        .sessions_of_user(&owner, at(10 * MINUTE))
        .await
        .unwrap();
    let expected = [
        &newest,
        &middle,
        &oldest,
        &idle,
        &idle_just_now,
        &ended,
        &ended_just_now,
    ];
    assert_eq!(
        ids(&earlier).into_iter().collect::<HashSet<_>>(),
        expected.iter().map(|record| record.id.clone()).collect()
    );
    assert_eq!(sessions.sessions_of_user(&user(), now).await.unwrap(), []);
}

/// A touch moves `last_seen_at` and `idle_expires_at` forward, never back, and only for a
/// known session.
pub async fn session_touch_extends_never_backwards(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let record = new_session(&user(), at(0));
    sessions.insert_session(&record).await.unwrap();

    assert!(
        sessions
            .touch_session(&record.id, at(5 * MINUTE), at(35 * MINUTE))
            .await
            .unwrap()
    );
    let touched = sessions.session_by_id(&record.id).await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, at(5 * MINUTE));
    assert_eq!(touched.idle_expires_at, at(35 * MINUTE));
    assert_eq!(
        touched,
        SessionRecord {
            last_seen_at: at(5 * MINUTE),
            idle_expires_at: at(35 * MINUTE),
            ..record.clone()
        },
        "a touch changed more than the activity times"
    );
    // The extension counts: alive past the original idle expiry.
    let live = sessions
        .sessions_of_user(&record.user_id, at(32 * MINUTE))
        .await
        .unwrap();
    assert_eq!(ids(&live), std::slice::from_ref(&record.id));

    for (seen, idle) in [
        (at(4 * MINUTE), at(34 * MINUTE)),
        (at(5 * MINUTE), at(99 * MINUTE)),
    ] {
        assert!(
            !sessions
                .touch_session(&record.id, seen, idle)
                .await
                .unwrap(),
            "a touch at {seen:?} moved last_seen_at from {:?}",
            at(5 * MINUTE)
        );
    }
    let unchanged = sessions.session_by_id(&record.id).await.unwrap().unwrap();
    assert_eq!(unchanged, touched);

    let unknown = SessionId::generate().unwrap();
    assert!(
        !sessions
            .touch_session(&unknown, at(6 * MINUTE), at(36 * MINUTE))
            .await
            .unwrap()
    );
    assert_eq!(sessions.session_by_id(&unknown).await.unwrap(), None);
}

/// A touch after a revocation changes nothing and does not bring the session back.
pub async fn session_touch_never_unrevokes(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let record = new_session(&user(), at(0));
    sessions.insert_session(&record).await.unwrap();
    assert!(
        sessions
            .revoke_session(&record.id, at(MINUTE))
            .await
            .unwrap()
    );

    assert!(
        !sessions
            .touch_session(&record.id, at(2 * MINUTE), at(32 * MINUTE))
            .await
            .unwrap()
    );
    let stored = sessions.session_by_id(&record.id).await.unwrap().unwrap();
    assert_eq!(
        stored,
        SessionRecord {
            revoked_at: Some(at(MINUTE)),
            ..record.clone()
        }
    );
    assert_eq!(
        sessions
            .sessions_of_user(&record.user_id, at(2 * MINUTE))
            .await
            .unwrap(),
        []
    );
}

/// `auth_time` reads back as written; a re-authentication raises it (never lowers it) and
/// changes nothing else; a touch leaves it alone; unknown and revoked sessions are refused and
/// stay as they were.
pub async fn session_auth_time_rises_on_reauthentication(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let record = SessionRecord {
        auth_time: at(10 * SECOND),
        ..new_session(&user(), at(0))
    };
    let bystander = new_session(&record.user_id, at(0));
    sessions.insert_session(&record).await.unwrap();
    sessions.insert_session(&bystander).await.unwrap();
    let stored = || async { sessions.session_by_id(&record.id).await.unwrap().unwrap() };
    assert_eq!(stored().await.auth_time, at(10 * SECOND));

    assert!(
        sessions
            .record_authentication(&record.id, at(5 * MINUTE))
            .await
            .unwrap()
    );
    let expected = SessionRecord {
        auth_time: at(5 * MINUTE),
        ..record.clone()
    };
    assert_eq!(stored().await, expected);
    // An earlier time (another instance's slower request) does not lower it.
    assert!(
        sessions
            .record_authentication(&record.id, at(MINUTE))
            .await
            .unwrap()
    );
    assert_eq!(stored().await, expected);
    // Activity is not authentication.
    assert!(
        sessions
            .touch_session(&record.id, at(6 * MINUTE), at(36 * MINUTE))
            .await
            .unwrap()
    );
    assert_eq!(stored().await.auth_time, at(5 * MINUTE));
    let listed = sessions
        .sessions_of_user(&record.user_id, at(7 * MINUTE))
        .await
        .unwrap();
    let auth_times: Vec<_> = listed.iter().map(|session| session.auth_time).collect();
    assert_eq!(listed.len(), 2);
    assert!(auth_times.contains(&at(5 * MINUTE)) && auth_times.contains(&at(0)));

    let unknown = new_session(&record.user_id, at(0));
    assert!(
        !sessions
            .record_authentication(&unknown.id, at(8 * MINUTE))
            .await
            .unwrap()
    );
    assert_eq!(sessions.session_by_id(&unknown.id).await.unwrap(), None);

    assert!(
        sessions
            .revoke_session(&record.id, at(9 * MINUTE))
            .await
            .unwrap()
    );
    assert!(
        !sessions
            .record_authentication(&record.id, at(10 * MINUTE))
            .await
            .unwrap()
    );
    let revoked = stored().await;
    assert_eq!(revoked.revoked_at, Some(at(9 * MINUTE)));
    assert_eq!(revoked.auth_time, at(5 * MINUTE));
    assert_eq!(times_logged(sessions.as_ref(), &record.id).await, 1);
    assert_eq!(
        sessions.session_by_id(&bystander.id).await.unwrap(),
        Some(bystander)
    );
}

/// Revoking works once: the first call marks the session and logs it, later calls report
/// `false` and log nothing. Revoked sessions are still found by token (the caller decides).
pub async fn session_revoke_is_idempotent(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let record = new_session(&user(), at(0));
    let bystander = new_session(&record.user_id, at(0));
    sessions.insert_session(&record).await.unwrap();
    sessions.insert_session(&bystander).await.unwrap();

    assert!(
        sessions
            .revoke_session(&record.id, at(MINUTE))
            .await
            .unwrap()
    );
    assert!(
        !sessions
            .revoke_session(&record.id, at(2 * MINUTE))
            .await
            .unwrap()
    );
    let stored = sessions.session_by_id(&record.id).await.unwrap().unwrap();
    assert_eq!(
        stored.revoked_at,
        Some(at(MINUTE)),
        "a second revoke moved the time"
    );
    assert_eq!(times_logged(sessions.as_ref(), &record.id).await, 1);
    let bystander_now = sessions.session_by_id(&bystander.id).await.unwrap();
    assert_eq!(bystander_now, Some(bystander));

    let cursor = sessions.revocation_cursor().await.unwrap();
    let unknown = SessionId::generate().unwrap();
    assert!(
        !sessions
            .revoke_session(&unknown, at(3 * MINUTE))
            .await
            .unwrap()
    );
    assert_eq!(sessions.revocation_cursor().await.unwrap(), cursor);
    assert_eq!(sessions.session_by_id(&unknown).await.unwrap(), None);
}

/// "Log out other devices": every session of the user but one is revoked and logged;
/// other users' sessions are untouched.
pub async fn session_revoke_user_sessions_keeps_one(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let owner = user();
    let mine: Vec<SessionRecord> = (0..4)
        .map(|n| new_session(&owner, at(n * MINUTE)))
        .collect();
    let theirs = new_session(&user(), at(0));
    for record in mine.iter().chain([&theirs]) {
        sessions.insert_session(record).await.unwrap();
    }
    let keep = &mine[2].id;

    let revoked = sessions
        .revoke_user_sessions(&owner, Some(keep), at(10 * MINUTE))
        .await
        .unwrap();
    let expected: HashSet<SessionId> = mine
        .iter()
        .map(|record| record.id.clone())
        .filter(|id| id != keep)
        .collect();
    assert_eq!(revoked.len(), 3);
    assert_eq!(revoked.into_iter().collect::<HashSet<_>>(), expected);
    for record in &mine {
        let stored = sessions.session_by_id(&record.id).await.unwrap().unwrap();
        let want = (&record.id != keep).then_some(at(10 * MINUTE));
        assert_eq!(stored.revoked_at, want, "{:?}", record.id);
        assert_eq!(
            times_logged(sessions.as_ref(), &record.id).await,
            usize::from(&record.id != keep)
        );
    }
    let log = sessions.revocations_since(0, 100).await.unwrap();
    assert!(log.iter().all(|revocation| revocation.user_id == owner));
    assert!(
        log.iter()
            .all(|revocation| revocation.revoked_at == at(10 * MINUTE))
    );
    assert_eq!(
        sessions.session_by_id(&theirs.id).await.unwrap(),
        Some(theirs)
    );
    let live = sessions
        .sessions_of_user(&owner, at(11 * MINUTE))
        .await
        .unwrap();
    assert_eq!(ids(&live), std::slice::from_ref(keep));

    // Nothing left to revoke but the one kept.
    let again = sessions
        .revoke_user_sessions(&owner, Some(keep), at(12 * MINUTE))
        .await
        .unwrap();
    assert_eq!(again, []);
    assert_eq!(sessions.revocations_since(0, 100).await.unwrap().len(), 3);
}

/// "Log out everywhere": every unrevoked session of the user is revoked and logged once;
/// one revoked earlier is neither returned nor logged again.
pub async fn session_revoke_user_sessions_all(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let owner = user();
    let mine: Vec<SessionRecord> = (0..3)
        .map(|n| new_session(&owner, at(n * MINUTE)))
        .collect();
    let theirs = new_session(&user(), at(0));
    for record in mine.iter().chain([&theirs]) {
        sessions.insert_session(record).await.unwrap();
    }
    assert!(
        sessions
            .revoke_session(&mine[0].id, at(5 * MINUTE))
            .await
            .unwrap()
    );

    let revoked = sessions
        .revoke_user_sessions(&owner, None, at(10 * MINUTE))
        .await
        .unwrap();
    assert_eq!(
        revoked.into_iter().collect::<HashSet<_>>(),
        HashSet::from([mine[1].id.clone(), mine[2].id.clone()])
    );
    for record in &mine {
        assert_eq!(times_logged(sessions.as_ref(), &record.id).await, 1);
    }
    let first = sessions.session_by_id(&mine[0].id).await.unwrap().unwrap();
    assert_eq!(first.revoked_at, Some(at(5 * MINUTE)), "re-revoked");
    assert_eq!(
        sessions
            .sessions_of_user(&owner, at(11 * MINUTE))
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        sessions.session_by_id(&theirs.id).await.unwrap(),
        Some(theirs.clone())
    );
    assert_eq!(times_logged(sessions.as_ref(), &theirs.id).await, 0);
    assert_eq!(
        sessions
            .revoke_user_sessions(&user(), None, at(12 * MINUTE))
            .await
            .unwrap(),
        []
    );
}
