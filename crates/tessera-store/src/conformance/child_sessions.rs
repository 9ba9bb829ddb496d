//! Child sessions (a [`SessionRecord`] with a [`parent`](SessionRecord::parent)) through the
//! [`SessionStore`](tessera_core::SessionStore): the parent is kept by every write, and
//! [`children_of`](tessera_core::SessionStore::children_of) finds the live ones.

use tessera_core::{SessionId, SessionRecord, Timestamp, UserId};

use super::{
    Fixture, MINUTE, SECOND, at, child_session, ids, new_session, new_session_id, session_ending,
};
use crate::conformance::sessions::user;

/// A child reads back with its parent by id and in its user's list, and keeps it through a
/// touch, a re-authentication and a revocation (stores that rewrite the whole record on each
/// must carry it along); a child authenticated at its creation keeps it too. An ordinary
/// session beside it reads no parent, and the parent is untouched by what its child goes
/// through.
pub async fn child_session_keeps_its_parent(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let parent = new_session(&user(), at(0));
    let child = child_session(&parent, "https://orders.example", at(MINUTE));
    let fresh = SessionRecord {
        auth_time: at(2 * MINUTE),
        ..child_session(&parent, "urn:billing", at(2 * MINUTE))
    };
    for record in [&parent, &child, &fresh] {
        sessions.insert_session(record).await.unwrap();
    }
    let stored = |id: SessionId| async move { sessions.session_by_id(&id).await.unwrap() };

    for record in [&parent, &child, &fresh] {
        assert_eq!(stored(record.id.clone()).await.as_ref(), Some(record));
    }
    assert_eq!(stored(parent.id.clone()).await.unwrap().parent, None);
    assert_eq!(
        sessions
            .sessions_of_user(&parent.user_id, at(3 * MINUTE))
            .await
            .unwrap(),
        [fresh.clone(), child.clone(), parent.clone()]
    );

    assert!(
        sessions
            .touch_session(&child.id, at(4 * MINUTE), at(34 * MINUTE))
            .await
            .unwrap()
    );
    let touched = SessionRecord {
        last_seen_at: at(4 * MINUTE),
        idle_expires_at: at(34 * MINUTE),
        ..child.clone()
    };
    assert_eq!(stored(child.id.clone()).await, Some(touched.clone()));

    assert!(
        sessions
            .record_authentication(&child.id, at(5 * MINUTE))
            .await
            .unwrap()
    );
    let reauthenticated = SessionRecord {
        auth_time: at(5 * MINUTE),
        ..touched
    };
    assert_eq!(
        stored(child.id.clone()).await,
        Some(reauthenticated.clone())
    );
    assert!(
        sessions
            .record_authentication(&fresh.id, at(5 * MINUTE))
            .await
            .unwrap()
    );
    assert_eq!(
        stored(fresh.id.clone()).await,
        Some(SessionRecord {
            auth_time: at(5 * MINUTE),
            ..fresh.clone()
        })
    );

    assert!(
        sessions
            .revoke_session(&child.id, at(6 * MINUTE))
            .await
            .unwrap()
    );
    assert_eq!(
        stored(child.id.clone()).await,
        Some(SessionRecord {
            revoked_at: Some(at(6 * MINUTE)),
            ..reauthenticated
        })
    );
    assert_eq!(stored(parent.id.clone()).await, Some(parent.clone()));
}

/// `children_of` lists the parent's live children, newest first: not revoked, idle-expired
/// or absolute-expired ones, not another parent's, not the parent itself, not ordinary
/// sessions. It looks among the given user's sessions only. Revoking the parent revokes no
/// child by itself: they are still listed until each is revoked.
pub async fn children_of_lists_live_children_only(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let owner = user();
    let now = at(45 * MINUTE);
    let hours = |n: i64| at(n * 60 * MINUTE);
    let parent = session_ending(&owner, at(0), hours(2), hours(12));
    let sibling = session_ending(&owner, at(SECOND), hours(2), hours(12));
    let audience = "https://orders.example";
    // Each idle for 30 minutes from its creation: all live at `now` unless made otherwise.
    let older = child_session(&parent, audience, at(20 * MINUTE));
    let newer = child_session(&parent, "urn:billing", at(21 * MINUTE));
    let revoked = child_session(&parent, audience, at(22 * MINUTE));
    let idle = SessionRecord {
        idle_expires_at: now,
        ..child_session(&parent, audience, at(23 * MINUTE))
    };
    let ended = SessionRecord {
        expires_at: at(44 * MINUTE),
        ..child_session(&parent, audience, at(24 * MINUTE))
    };
    let siblings = child_session(&sibling, audience, at(25 * MINUTE));
    let grandchild = child_session(&older, audience, at(26 * MINUTE));
    let elsewhere = SessionRecord {
        user_id: user(),
        ..child_session(&parent, audience, at(27 * MINUTE))
    };
    let ordinary = new_session(&owner, at(28 * MINUTE));
    for record in [
        &parent,
        &sibling,
        &newer,
        &revoked,
        &older,
        &idle,
        &ended,
        &siblings,
        &grandchild,
        &elsewhere,
        &ordinary,
    ] {
        sessions.insert_session(record).await.unwrap();
    }
    let children = |of: &SessionRecord, owner: UserId, now: Timestamp| {
        let of = of.id.clone();
        async move { sessions.children_of(&of, &owner, now).await.unwrap() }
    };
    // Before their expiries the expired ones are live children too.
    assert_eq!(
        children(&parent, owner.clone(), at(29 * MINUTE)).await,
        ids(&[
            ended.clone(),
            idle.clone(),
            revoked.clone(),
            newer.clone(),
            older.clone()
        ])
    );
    assert!(
        sessions
            .revoke_session(&revoked.id, at(30 * MINUTE))
            .await
            .unwrap()
    );
    assert_eq!(
        children(&parent, owner.clone(), now).await,
        ids(&[newer.clone(), older.clone()])
    );
    assert_eq!(
        children(&sibling, owner.clone(), now).await,
        ids(std::slice::from_ref(&siblings))
    );
    assert_eq!(
        children(&older, owner.clone(), now).await,
        ids(std::slice::from_ref(&grandchild))
    );
    assert_eq!(
        children(&parent, elsewhere.user_id.clone(), now).await,
        ids(std::slice::from_ref(&elsewhere)),
        "only the given user's sessions are looked at"
    );
    for childless in [&newer, &ordinary] {
        assert_eq!(children(childless, owner.clone(), now).await, []);
    }
    let unknown = new_session_id();
    assert_eq!(
        sessions.children_of(&unknown, &owner, now).await.unwrap(),
        []
    );
    assert_eq!(children(&parent, user(), now).await, []);

    assert!(
        sessions
            .revoke_session(&parent.id, at(46 * MINUTE))
            .await
            .unwrap()
    );
    let later = at(47 * MINUTE);
    assert_eq!(
        children(&parent, owner.clone(), later).await,
        ids(&[newer.clone(), older.clone()])
    );
    for child in [&newer, &older] {
        assert!(sessions.revoke_session(&child.id, later).await.unwrap());
    }
    assert_eq!(children(&parent, owner.clone(), later).await, []);
    // The grandchild is its own parent's business.
    assert_eq!(
        children(&older, owner, later).await,
        ids(std::slice::from_ref(&grandchild))
    );
}
