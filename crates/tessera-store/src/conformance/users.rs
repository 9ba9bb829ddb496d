//! [`UserStore`](tessera_core::UserStore): creation, look-up, listing, paging, deletion,
//! conflicts.

use std::collections::HashSet;
use std::sync::Arc;

use tessera_core::{StoreError, User, UserStore};

use super::{Fixture, MINUTE, SECOND, at, new_user};

fn usernames(users: &[User]) -> Vec<&str> {
    users.iter().map(|user| user.username.as_str()).collect()
}

/// A user is found by its username key and by its id, exactly as created; look-ups by the
/// unfolded name or an unknown id find nothing.
pub async fn user_create_and_look_up(fixture: Fixture) {
    let users = &fixture.users;
    let (name, alice) = new_user("Alice.Smith", at(0));
    users.create_user(&name, &alice).await.unwrap();

    let by_key = users.user_by_username("alice.smith").await.unwrap();
    assert_eq!(by_key.as_ref(), Some(&alice));
    assert_eq!(
        by_key.unwrap().user.username,
        "Alice.Smith",
        "display form kept"
    );
    assert_eq!(
        users.user_by_id(&alice.user.id).await.unwrap().as_ref(),
        Some(&alice)
    );
    // The store compares keys exactly; folding case is the caller's job.
    assert_eq!(users.user_by_username("Alice.Smith").await.unwrap(), None);
    assert_eq!(users.user_by_username("bob").await.unwrap(), None);
    let (_, stranger) = new_user("stranger", at(0));
    assert_eq!(users.user_by_id(&stranger.user.id).await.unwrap(), None);
}

/// `list_users` returns every user, oldest first, whatever the order of creation.
pub async fn user_list_oldest_first(fixture: Fixture) {
    let users = &fixture.users;
    assert!(users.list_users().await.unwrap().is_empty());
    let mut created = Vec::new();
    for (name, minute) in [("carol", 3), ("alice", 1), ("dave", 4), ("bob", 2)] {
        let (username, record) = new_user(name, at(minute * MINUTE));
        users.create_user(&username, &record).await.unwrap();
        created.push(record);
    }
    let listed: Vec<String> = users
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|user| user.username)
        .collect();
    assert_eq!(listed, ["alice", "bob", "carol", "dave"]);
    let alice = &created[1].user;
    assert_eq!(&users.list_users().await.unwrap()[0], alice);
}

/// Deleting a user succeeds once, then reports `false`; the username is free again.
pub async fn user_delete_is_idempotent(fixture: Fixture) {
    let users = &fixture.users;
    let (name, alice) = new_user("alice", at(0));
    let (bob_name, bob) = new_user("bob", at(0));
    users.create_user(&name, &alice).await.unwrap();
    users.create_user(&bob_name, &bob).await.unwrap();

    assert!(users.delete_user(&alice.user.id).await.unwrap());
    assert_eq!(users.user_by_id(&alice.user.id).await.unwrap(), None);
    assert_eq!(users.user_by_username("alice").await.unwrap(), None);
    assert!(!users.delete_user(&alice.user.id).await.unwrap());
    assert_eq!(
        users.list_users().await.unwrap(),
        std::slice::from_ref(&bob.user)
    );

    let (name, second_alice) = new_user("ALICE", at(MINUTE));
    users.create_user(&name, &second_alice).await.unwrap();
    assert_eq!(
        users.user_by_username("alice").await.unwrap(),
        Some(second_alice)
    );
}

/// A second user whose name differs only in case conflicts, and the first is untouched.
pub async fn user_username_conflict_ignores_case(fixture: Fixture) {
    let users = &fixture.users;
    let (name, alice) = new_user("alice", at(0));
    users.create_user(&name, &alice).await.unwrap();

    let (shouting, impostor) = new_user("ALICE", at(MINUTE));
    let result = users.create_user(&shouting, &impostor).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(users.user_by_username("alice").await.unwrap(), Some(alice));
    assert_eq!(users.user_by_id(&impostor.user.id).await.unwrap(), None);
    assert_eq!(users.list_users().await.unwrap().len(), 1);
}

/// A second user with an existing id conflicts, and neither record changes.
pub async fn user_id_conflict(fixture: Fixture) {
    let users = &fixture.users;
    let (name, alice) = new_user("alice", at(0));
    users.create_user(&name, &alice).await.unwrap();

    let (bob_name, mut bob) = new_user("bob", at(MINUTE));
    bob.user.id = alice.user.id.clone();
    let result = users.create_user(&bob_name, &bob).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(users.user_by_username("bob").await.unwrap(), None);
    assert_eq!(users.user_by_id(&alice.user.id).await.unwrap(), Some(alice));
}

/// `set_password_hash` replaces the hash of an existing user only.
pub async fn user_set_password_hash(fixture: Fixture) {
    let users = &fixture.users;
    let (name, alice) = new_user("alice", at(0));
    let (bob_name, bob) = new_user("bob", at(0));
    users.create_user(&name, &alice).await.unwrap();
    users.create_user(&bob_name, &bob).await.unwrap();

    let rehashed = "$argon2id$v=19$m=65536,t=3,p=1$new-salt$new-hash";
    assert!(
        users
            .set_password_hash(&alice.user.id, rehashed)
            .await
            .unwrap()
    );
    let stored = users.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(stored.password_hash, rehashed);
    assert_eq!(stored.user, alice.user);
    assert_eq!(
        users
            .user_by_id(&alice.user.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        rehashed
    );
    assert_eq!(
        users.user_by_id(&bob.user.id).await.unwrap(),
        Some(bob),
        "another user's hash changed"
    );

    let (_, stranger) = new_user("stranger", at(0));
    assert!(
        !users
            .set_password_hash(&stranger.user.id, rehashed)
            .await
            .unwrap()
    );
    assert_eq!(users.user_by_id(&stranger.user.id).await.unwrap(), None);
}

/// `users_page` lists by username key in byte order (not by creation, not by display case),
/// resumes strictly after the key given (present or not), stops at `limit`, and filters by
/// a substring of the key taken literally (`_` and `%` are characters, not wildcards).
pub async fn user_pages_in_username_key_order(fixture: Fixture) {
    let users = fixture.users.as_ref();
    assert!(users.users_page(None, 10, None).await.unwrap().is_empty());
    // Created out of order; byte order of the keys: `.` < `1` < `@` < `_` < letters.
    let names = [
        "carol",
        "Bobby",
        "alice@x",
        "bob_smith",
        "alice1",
        "Alice.B",
        "dave",
    ];
    for (second, name) in names.into_iter().enumerate() {
        let (username, record) = new_user(name, at(i64::try_from(second).unwrap() * SECOND));
        users.create_user(&username, &record).await.unwrap();
    }
    let everyone = users.users_page(None, 100, None).await.unwrap();
    assert_eq!(
        usernames(&everyone),
        [
            "Alice.B",
            "alice1",
            "alice@x",
            "bob_smith",
            "Bobby",
            "carol",
            "dave"
        ]
    );
    assert_eq!(everyone[0].created_at, at(5 * SECOND), "the record, whole");

    let first = users.users_page(None, 3, None).await.unwrap();
    assert_eq!(usernames(&first), ["Alice.B", "alice1", "alice@x"]);
    let second = users.users_page(Some("alice@x"), 3, None).await.unwrap();
    assert_eq!(usernames(&second), ["bob_smith", "Bobby", "carol"]);
    let third = users.users_page(Some("carol"), 3, None).await.unwrap();
    assert_eq!(usernames(&third), ["dave"]);
    assert!(
        users
            .users_page(Some("dave"), 3, None)
            .await
            .unwrap()
            .is_empty()
    );
    // A key nobody has resumes at the next one; keys are compared folded, so an unfolded
    // cursor is just another key.
    let between = users.users_page(Some("b"), 2, None).await.unwrap();
    assert_eq!(usernames(&between), ["bob_smith", "Bobby"]);
    assert!(users.users_page(None, 0, None).await.unwrap().is_empty());

    let bobs = users.users_page(None, 10, Some("bob")).await.unwrap();
    assert_eq!(usernames(&bobs), ["bob_smith", "Bobby"]);
    let underscore = users.users_page(None, 10, Some("_")).await.unwrap();
    assert_eq!(usernames(&underscore), ["bob_smith"]);
    assert!(
        users
            .users_page(None, 10, Some("%"))
            .await
            .unwrap()
            .is_empty()
    );
    let alices = users
        .users_page(Some("alice1"), 10, Some("alice"))
        .await
        .unwrap();
    assert_eq!(usernames(&alices), ["alice@x"]);
    assert_eq!(
        usernames(&users.users_page(None, 1, Some("a")).await.unwrap()),
        ["Alice.B"]
    );
    // The store compares exactly; folding the search's case is the caller's job.
    assert!(
        users
            .users_page(None, 10, Some("Bob"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Walking the pages while other users are being created never shows a user twice and
/// never skips one that existed before the walk began.
pub async fn user_pages_stay_stable_under_concurrent_inserts(fixture: Fixture) {
    let users: Arc<dyn UserStore> = fixture.users.clone();
    let mut existing = HashSet::new();
    for n in 0..60 {
        let (username, record) = new_user(&format!("user{:03}", n * 2), at(n * SECOND));
        users.create_user(&username, &record).await.unwrap();
        existing.insert(record.user.id);
    }
    // New names fall between, before and after the existing ones; one at least is added
    // between any two pages.
    let (inserted, mut between) = tokio::sync::mpsc::channel(1);
    let writer = {
        let users = Arc::clone(&users);
        tokio::spawn(async move {
            for n in (0..60).rev() {
                let (username, record) = new_user(&format!("user{:03}", n * 2 + 1), at(MINUTE));
                users.create_user(&username, &record).await.unwrap();
                // The walk may have ended: then nobody listens.
                inserted.send(()).await.ok();
            }
        })
    };
    let mut seen = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = users.users_page(after.as_deref(), 7, None).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.username.to_ascii_lowercase());
        for user in page {
            assert!(
                seen.insert(user.id.clone()),
                "{} listed twice",
                user.username
            );
        }
        between.recv().await;
    }
    drop(between);
    writer.await.unwrap();
    let skipped = existing.difference(&seen).count();
    assert_eq!(
        skipped, 0,
        "{skipped} users that existed throughout were skipped"
    );
}
