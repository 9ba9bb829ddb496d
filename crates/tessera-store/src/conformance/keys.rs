//! [`KeyStore`](tessera_core::KeyStore): signing keys (listing, collision, retirement,
//! deletion) and get-or-create server secrets.

use std::collections::HashSet;
use std::sync::Arc;

use tessera_core::{KeyRecord, StoreError};

use super::{BASE_SECONDS, Fixture, new_key, retired};

fn kids(keys: &[KeyRecord]) -> Vec<&str> {
    keys.iter().map(|key| key.kid.as_str()).collect()
}

/// Keys read back field for field, oldest first; keys created in the same second list in the
/// order they were added.
pub async fn key_insert_and_list_oldest_first(fixture: Fixture) {
    let keys = fixture.keys.as_ref();
    assert_eq!(keys.signing_keys().await.unwrap(), []);

    let newer = new_key("newer", 200);
    let older = KeyRecord {
        algorithm: "ES256".to_owned(),
        ..new_key("older", 100)
    };
    let newer_twin = new_key("a-newer-twin", 200);
    let oldest_retired = retired(new_key("oldest", 50), 150);
    for key in [&newer, &older, &newer_twin, &oldest_retired] {
        keys.insert_signing_key(key).await.unwrap();
    }
    assert_eq!(
        keys.signing_keys().await.unwrap(),
        [oldest_retired, older, newer, newer_twin]
    );
}

/// A key with an existing kid conflicts and changes nothing.
pub async fn key_id_conflict(fixture: Fixture) {
    let keys = fixture.keys.as_ref();
    let original = new_key("k1", 0);
    keys.insert_signing_key(&original).await.unwrap();

    let intruder = KeyRecord {
        algorithm: "HS256".to_owned(),
        secret: b"another secret".to_vec(),
        ..new_key("k1", 10)
    };
    let result = keys.insert_signing_key(&intruder).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(
        keys.signing_keys().await.unwrap(),
        std::slice::from_ref(&original)
    );
}

/// Retiring sets `retired_at` on every unretired key but `except`, and leaves `except` and
/// keys retired earlier as they were. Repeating it retires nothing more.
pub async fn key_retire_all_but_one(fixture: Fixture) {
    let keys = fixture.keys.as_ref();
    let long_retired = retired(new_key("long-retired", 0), 10);
    let previous = new_key("previous", 100);
    let before_previous = new_key("before-previous", 50);
    let current = new_key("current", 200);
    for key in [&long_retired, &before_previous, &previous, &current] {
        keys.insert_signing_key(key).await.unwrap();
    }

    assert_eq!(
        keys.retire_signing_keys("current", BASE_SECONDS + 300)
            .await
            .unwrap(),
        2
    );
    let expected = [
        long_retired.clone(),
        retired(before_previous, 300),
        retired(previous, 300),
        current.clone(),
    ];
    assert_eq!(keys.signing_keys().await.unwrap(), expected);

    assert_eq!(
        keys.retire_signing_keys("current", BASE_SECONDS + 400)
            .await
            .unwrap(),
        0
    );
    assert_eq!(keys.signing_keys().await.unwrap(), expected);
}

/// Deletion removes exactly the keys retired before the cutoff; unretired keys stay
/// whatever their age.
pub async fn key_delete_retired_before(fixture: Fixture) {
    let keys = fixture.keys.as_ref();
    let first = retired(new_key("first", 0), 100);
    let second = retired(new_key("second", 10), 200);
    let third = retired(new_key("third", 20), 300);
    let ancient_but_current = new_key("current", -1_000_000);
    for key in [&first, &second, &third, &ancient_but_current] {
        keys.insert_signing_key(key).await.unwrap();
    }

    // Retired exactly at the cutoff is not before it.
    assert_eq!(
        keys.delete_signing_keys_retired_before(BASE_SECONDS + 200)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        kids(&keys.signing_keys().await.unwrap()),
        ["current", "second", "third"]
    );
    assert_eq!(
        keys.delete_signing_keys_retired_before(BASE_SECONDS + 1_000_000)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        keys.signing_keys().await.unwrap(),
        std::slice::from_ref(&ancient_but_current)
    );
    assert_eq!(
        keys.delete_signing_keys_retired_before(i64::MAX)
            .await
            .unwrap(),
        0
    );
}

/// The first call stores its candidate and returns it; later calls return that, whatever
/// their candidate. Names are independent.
pub async fn server_secret_first_candidate_wins(fixture: Fixture) {
    let keys = fixture.keys.as_ref();
    let first = [0x00, 0x01, 0xff, 0x80, 0x7f];
    assert_eq!(keys.server_secret("rotation", &first).await.unwrap(), first);
    assert_eq!(
        keys.server_secret("rotation", b"second").await.unwrap(),
        first
    );
    assert_eq!(
        keys.server_secret("csrf", b"another name").await.unwrap(),
        b"another name"
    );
    assert_eq!(
        keys.server_secret("rotation", b"third").await.unwrap(),
        first
    );
}

/// Ten first calls at once, each with its own candidate, all get the same secret — one of the
/// candidates — and it stays.
pub async fn concurrent_server_secrets_agree(fixture: Fixture) {
    let keys = Arc::clone(&fixture.keys);
    for round in 0..4 {
        let name = format!("secret-{round}");
        let candidates: Vec<Vec<u8>> = (0..10u8).map(|n| vec![round, n, 0, 0xff]).collect();
        let tasks: Vec<_> = candidates
            .iter()
            .cloned()
            .map(|candidate| {
                let (keys, name) = (Arc::clone(&keys), name.clone());
                tokio::spawn(async move { keys.server_secret(&name, &candidate).await.unwrap() })
            })
            .collect();
        let mut answers = HashSet::new();
        for task in tasks {
            answers.insert(task.await.unwrap());
        }
        assert_eq!(answers.len(), 1, "round {round}: {answers:?}");
        let agreed = answers.into_iter().next().unwrap();
        assert!(candidates.contains(&agreed), "round {round}: {agreed:?}");
        assert_eq!(keys.server_secret(&name, b"late").await.unwrap(), agreed);
    }
}
