//! [`UserStore`](tessera_core::UserStore): creation, look-up, listing, deletion, conflicts.

use tessera_core::StoreError;

use super::{Fixture, MINUTE, at, new_user};

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
