//! A user's standing (roles, custom claims, disabled) in the [`UserStore`], and the user
//! entries ("this user's access tokens issued before then are stale") in the revocation log:
//! one sequence with session revocations, paged and trimmed alike.
//!
//! [`UserStore`]: tessera_core::UserStore

use std::sync::Arc;

use tessera_core::{
    CustomClaims, Revocation, RevocationKind, Role, Roles, SessionId, Standing, Timestamp, UserId,
};

use super::{Fixture, MINUTE, at, minutes, new_session, new_user};

fn standing() -> Standing {
    Standing {
        roles: Roles::parse(["admin", "billing:read"]).unwrap(),
        claims: CustomClaims::from_json(
            r#"{"tenant": "acme", "https://example.com/limits": {"seats": 5, "tags": ["a", "b"]}}"#,
        )
        .unwrap(),
        disabled: true,
    }
}

/// A new user has no roles, no claims and is enabled; a user created with a standing reads
/// it back exactly, by id and by username.
pub async fn user_standing_round_trips(fixture: Fixture) {
    let users = &fixture.users;
    let (name, plain) = new_user("plain", at(0));
    users.create_user(&name, &plain).await.unwrap();
    let stored = users.user_by_id(&plain.user.id).await.unwrap().unwrap();
    assert_eq!(stored.standing, Standing::default());

    let (name, mut special) = new_user("special", at(0));
    special.standing = standing();
    users.create_user(&name, &special).await.unwrap();
    assert_eq!(
        users.user_by_id(&special.user.id).await.unwrap().as_ref(),
        Some(&special)
    );
    assert_eq!(
        users.user_by_username("special").await.unwrap().as_ref(),
        Some(&special)
    );
}

/// Each setter replaces its part of the standing only, on that user only, and says `false`
/// for an unknown user; a password change leaves the standing alone.
pub async fn user_standing_setters_change_only_their_part(fixture: Fixture) {
    let users = &fixture.users;
    let (name, alice) = new_user("alice", at(0));
    let (bob_name, bob) = new_user("bob", at(0));
    users.create_user(&name, &alice).await.unwrap();
    users.create_user(&bob_name, &bob).await.unwrap();
    let id = &alice.user.id;
    let wanted = standing();

    assert!(users.set_roles(id, &wanted.roles).await.unwrap());
    let read = users.user_by_id(id).await.unwrap().unwrap().standing;
    assert_eq!(read.roles, wanted.roles);
    assert_eq!(read.claims, CustomClaims::default());
    assert!(!read.disabled);

    assert!(users.set_claims(id, &wanted.claims).await.unwrap());
    assert!(users.set_disabled(id, true).await.unwrap());
    assert!(users.set_disabled(id, true).await.unwrap(), "idempotent");
    assert_eq!(
        users.user_by_id(id).await.unwrap().unwrap().standing,
        wanted
    );
    assert!(users.set_password_hash(id, "$argon2id$new").await.unwrap());
    assert_eq!(
        users
            .user_by_username("alice")
            .await
            .unwrap()
            .unwrap()
            .standing,
        wanted
    );

    // Back to nothing: an empty set and an empty object are stored as such.
    assert!(users.set_roles(id, &Roles::default()).await.unwrap());
    assert!(
        users
            .set_claims(id, &CustomClaims::default())
            .await
            .unwrap()
    );
    assert!(users.set_disabled(id, false).await.unwrap());
    assert_eq!(
        users.user_by_id(id).await.unwrap().unwrap().standing,
        Standing::default()
    );

    let untouched = users.user_by_id(&bob.user.id).await.unwrap().unwrap();
    assert_eq!(untouched, bob);
    let stranger = UserId::generate().unwrap();
    assert!(!users.set_roles(&stranger, &wanted.roles).await.unwrap());
    assert!(!users.set_claims(&stranger, &wanted.claims).await.unwrap());
    assert!(!users.set_disabled(&stranger, true).await.unwrap());
    assert_eq!(users.user_by_id(&stranger).await.unwrap(), None);
}

/// A swap replaces the roles only from the roles it expects: from any other set, and for an
/// unknown user, it says `false` and writes nothing.
pub async fn user_roles_swap_only_from_the_expected_roles(fixture: Fixture) {
    let users = &fixture.users;
    let (name, alice) = new_user("alice", at(0));
    users.create_user(&name, &alice).await.unwrap();
    let id = &alice.user.id;
    let admin = Roles::parse(["admin"]).unwrap();
    let both = Roles::parse(["admin", "billing:read"]).unwrap();
    let roles_of = || async { users.user_by_id(id).await.unwrap().unwrap().standing.roles };

    assert!(!users.swap_roles(id, &admin, &both).await.unwrap());
    assert_eq!(
        roles_of().await,
        Roles::default(),
        "a stale expectation writes nothing"
    );
    assert!(
        users
            .swap_roles(id, &Roles::default(), &admin)
            .await
            .unwrap()
    );
    assert_eq!(roles_of().await, admin);
    assert!(
        !users
            .swap_roles(id, &Roles::default(), &both)
            .await
            .unwrap()
    );
    assert!(users.swap_roles(id, &admin, &both).await.unwrap());
    assert_eq!(roles_of().await, both);
    // The rest of the standing is left alone.
    let stored = users.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(stored.standing.claims, CustomClaims::default());
    assert!(!stored.standing.disabled);

    let stranger = UserId::generate().unwrap();
    assert!(
        !users
            .swap_roles(&stranger, &Roles::default(), &admin)
            .await
            .unwrap()
    );
    assert_eq!(users.user_by_id(&stranger).await.unwrap(), None);
}

/// Tasks that each add their own role by read-modify-swap, retrying when they lose a race,
/// all land: no change is lost.
pub async fn concurrent_role_swaps_lose_no_change(fixture: Fixture) {
    const TASKS: usize = 12;
    let (name, alice) = new_user("alice", at(0));
    fixture.users.create_user(&name, &alice).await.unwrap();
    let start = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|n| {
            let users = Arc::clone(&fixture.users);
            let id = alice.user.id.clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                let role = Role::parse(&format!("role-{n}")).unwrap();
                start.wait().await;
                for _ in 0..1000 {
                    let expected = users.user_by_id(&id).await.unwrap().unwrap().standing.roles;
                    let mut roles = expected.clone();
                    assert!(roles.insert(role.clone()).unwrap());
                    if users.swap_roles(&id, &expected, &roles).await.unwrap() {
                        return;
                    }
                }
                panic!("role-{n} never landed");
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let roles = fixture
        .users
        .user_by_id(&alice.user.id)
        .await
        .unwrap()
        .unwrap()
        .standing
        .roles;
    let mut wanted: Vec<String> = (0..TASKS).map(|n| format!("role-{n}")).collect();
    wanted.sort();
    assert_eq!(roles.iter().collect::<Vec<_>>(), wanted);
}

/// User entries take their place in the one log, between session revocations, in the order
/// they were made, with strictly increasing sequences; the cursor is the last of them.
pub async fn user_entries_share_the_session_log(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let owner = UserId::generate().unwrap();
    let other = UserId::generate().unwrap();
    let first = new_session(&owner, at(0));
    let second = new_session(&owner, at(0));
    sessions.insert_session(&first).await.unwrap();
    sessions.insert_session(&second).await.unwrap();

    assert!(
        sessions
            .revoke_session(&first.id, at(MINUTE))
            .await
            .unwrap()
    );
    sessions
        .mark_user_stale(&owner, at(2 * MINUTE))
        .await
        .unwrap();
    sessions
        .mark_user_stale(&other, at(3 * MINUTE))
        .await
        .unwrap();
    assert!(
        sessions
            .revoke_session(&second.id, at(4 * MINUTE))
            .await
            .unwrap()
    );
    sessions
        .mark_user_stale(&owner, at(5 * MINUTE))
        .await
        .unwrap();

    let log = sessions.revocations_since(0, 100).await.unwrap();
    let seen: Vec<(Option<SessionId>, UserId, Timestamp)> = log
        .iter()
        .map(|entry| {
            (
                entry.session_id().cloned(),
                entry.user_id.clone(),
                entry.revoked_at,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some(first.id.clone()), owner.clone(), at(MINUTE)),
            (None, owner.clone(), at(2 * MINUTE)),
            (None, other.clone(), at(3 * MINUTE)),
            (Some(second.id.clone()), owner.clone(), at(4 * MINUTE)),
            (None, owner.clone(), at(5 * MINUTE)),
        ]
    );
    assert!(
        log.windows(2)
            .all(|pair| pair[0].sequence < pair[1].sequence)
    );
    assert!(log[0].sequence > 0);
    assert_eq!(log[1].kind, RevocationKind::User);
    assert_eq!(sessions.revocation_cursor().await.unwrap(), log[4].sequence);
    // A user entry changes no session.
    let stored = sessions.session_by_id(&second.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(at(4 * MINUTE)));
}

/// User entries page from a cursor like session entries, and the purge trims them by age
/// like session entries, never lowering the cursor.
pub async fn user_entries_page_and_trim(fixture: Fixture) {
    let sessions = &fixture.sessions;
    let users: Vec<UserId> = (0..5).map(|_| UserId::generate().unwrap()).collect();
    for (n, user) in (0i64..).zip(&users) {
        sessions
            .mark_user_stale(user, at(n * MINUTE))
            .await
            .unwrap();
    }
    let all = sessions.revocations_since(0, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    let page = sessions
        .revocations_since(all[1].sequence, 2)
        .await
        .unwrap();
    assert_eq!(page, all[2..4]);
    assert_eq!(
        sessions
            .revocations_since(all[4].sequence, 100)
            .await
            .unwrap(),
        []
    );

    // Retention 58 minutes at minute 60: entries from before minute 2 go.
    let removed = sessions
        .purge_expired(at(60 * MINUTE), minutes(58), 100)
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert_eq!(sessions.revocations_since(0, 100).await.unwrap(), all[2..]);
    sessions
        .purge_expired(at(600 * MINUTE), minutes(1), 100)
        .await
        .unwrap();
    assert_eq!(sessions.revocations_since(0, 100).await.unwrap(), []);
    assert_eq!(
        sessions.revocation_cursor().await.unwrap(),
        all[4].sequence,
        "trimming never lowers the cursor"
    );
    sessions
        .mark_user_stale(&users[0], at(601 * MINUTE))
        .await
        .unwrap();
    let next = sessions.revocations_since(0, 100).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].sequence > all[4].sequence);
}

/// The durable log takes user entries too, in one sequence with the session store's, and
/// trims them by age.
pub async fn user_entries_through_the_revocation_log(fixture: Fixture) {
    let (sessions, log) = (&fixture.sessions, fixture.log.as_ref());
    let user = UserId::generate().unwrap();
    let session = SessionId::generate().unwrap();
    log.log_revocations(&[(session.clone(), user.clone())], at(MINUTE))
        .await
        .unwrap();
    log.log_user_stale(&user, at(2 * MINUTE)).await.unwrap();
    sessions
        .mark_user_stale(&user, at(3 * MINUTE))
        .await
        .unwrap();

    let logged = log.logged_since(0, 100).await.unwrap();
    assert_eq!(logged.len(), 3);
    assert_eq!(logged[0].session_id(), Some(&session));
    let users_entries: Vec<&Revocation> = logged[1..].iter().collect();
    for (entry, minute) in users_entries.iter().zip([2, 3]) {
        assert_eq!(entry.kind, RevocationKind::User);
        assert_eq!(entry.user_id, user);
        assert_eq!(entry.revoked_at, at(minute * MINUTE));
    }
    assert!(
        logged
            .windows(2)
            .all(|pair| pair[0].sequence < pair[1].sequence)
    );
    assert_eq!(sessions.revocations_since(0, 100).await.unwrap(), logged);
    assert_eq!(log.log_cursor().await.unwrap(), logged[2].sequence);

    assert_eq!(log.trim_log(at(3 * MINUTE), 100).await.unwrap(), 2);
    assert_eq!(log.logged_since(0, 100).await.unwrap(), logged[2..]);
}
