//! Durability, for the backends that promise it (SQLite, PostgreSQL): what a store keeps
//! when it is closed and opened again, and what it never keeps (a token, or its secret).
//!
//! Each case is a generic async function over a [`Durable`] backend; the
//! [`durability_tests!`](crate::durability_tests) macro turns every case into a `#[test]` for
//! one backend, given a factory that builds a fresh, isolated one.

use async_trait::async_trait;
use tessera_core::{
    ClientRecord, ClientStore, KeyRecord, KeyStore, LoginThrottle, RefreshRecord, RefreshStore,
    RefreshToken, Rotation, SessionStore, SessionToken, StoreError, ThrottleKey, ThrottleRule,
    TokenHash, UserId, UserStore,
};

use super::{at, minutes, new_session_id, new_user, refresh_for_token, session_for_token, spent};

/// A durable backend under test: one store's data, which handles open and close.
#[async_trait]
pub trait Durable: Send + Sync {
    /// The store the backend opens; it serves every role.
    type Store: UserStore + SessionStore + LoginThrottle + RefreshStore + KeyStore + ClientStore;

    /// Opens a handle on the backend's data: the first call creates the data, every later
    /// one is a reopen (SQLite opens the same file, PostgreSQL connects to the same schema).
    async fn open(&self) -> Self::Store;

    /// Closes `store`; its later calls fail with [`StoreError::Unavailable`].
    async fn close(&self, store: &Self::Store);

    /// Every byte the backend holds of its data, concatenated, whatever the format: searched
    /// for what must never be stored (and for what must, so a search that looks in the wrong
    /// place fails).
    async fn stored_bytes(&self) -> Vec<u8>;
}

/// Runs every durability case as a `#[test]` against one backend.
///
/// `durability_tests!(name, factory)` expands to a module `name` with one test per case.
/// `factory` is an expression callable as `factory()` returning a future of a fresh
/// [`Durable`] backend that shares nothing with any other
/// test's; it is called once per test, inside that test's runtime.
#[macro_export]
macro_rules! durability_tests {
    ($backend:ident, $factory:expr $(,)?) => {
        $crate::__conformance_cases! {
            module = $backend;
            factory = $factory;
            CurrentThread:
                data_survives_close_and_reopen,
                refresh_chains_and_keys_survive_close_and_reopen,
                clients_survive_close_and_reopen,
                storage_holds_the_verifier_never_the_secret,
                storage_holds_refresh_token_hashes_never_the_tokens;
        }
    };
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Users, sessions (one revoked), the revocation log and throttle counters survive a close
/// and a reopen; a closed store fails as unavailable.
pub async fn data_survives_close_and_reopen<D: Durable>(backend: D) {
    let store = backend.open().await;
    let (name, user) = new_user("Alice", at(0));
    store.create_user(&name, &user).await.unwrap();
    let kept = session_for_token(&SessionToken::generate().unwrap(), &user.user.id, at(0));
    let revoked = session_for_token(&SessionToken::generate().unwrap(), &user.user.id, at(0));
    store.insert_session(&kept).await.unwrap();
    store.insert_session(&revoked).await.unwrap();
    assert!(store.revoke_session(&revoked.id, at(1_000)).await.unwrap());
    let rule = ThrottleRule {
        max_failures: 2,
        window: minutes(15),
    };
    let key = ThrottleKey::Account("alice".to_owned());
    store.record_failure(&key, rule, at(0)).await.unwrap();
    store.record_failure(&key, rule, at(1)).await.unwrap();
    let cursor = store.revocation_cursor().await.unwrap();
    backend.close(&store).await;
    assert!(matches!(
        UserStore::ping(&store).await,
        Err(StoreError::Unavailable(_))
    ));

    let reopened = backend.open().await;
    assert_eq!(
        reopened.user_by_username("alice").await.unwrap(),
        Some(user)
    );
    assert_eq!(reopened.session_by_id(&kept.id).await.unwrap(), Some(kept));
    let stored = reopened.session_by_id(&revoked.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(at(1_000)));
    assert_eq!(reopened.revocation_cursor().await.unwrap(), cursor);
    assert_eq!(reopened.revocations_since(0, 10).await.unwrap().len(), 1);
    assert_eq!(
        reopened.blocked_for(&key, rule, at(2)).await.unwrap(),
        Some(minutes(15) - std::time::Duration::from_millis(2)),
        "throttle counters were lost"
    );
}

/// A spent refresh token and its successor, signing keys (one retired) and a server secret
/// survive a close and a reopen: the reopened store still knows the parent was spent.
pub async fn refresh_chains_and_keys_survive_close_and_reopen<D: Durable>(backend: D) {
    let store = backend.open().await;
    let session_id = new_session_id();
    let parent = refresh_for_token(&RefreshToken::generate().unwrap(), &session_id, at(0));
    let successor = refresh_for_token(&RefreshToken::generate().unwrap(), &session_id, at(1_000));
    store.insert_refresh(&parent).await.unwrap();
    let rotation = store
        .rotate_refresh(&parent.token_hash, &successor, at(1_000))
        .await
        .unwrap();
    assert_eq!(rotation, Rotation::Rotated);
    let retired_key = KeyRecord {
        kid: "k1".to_owned(),
        algorithm: "EdDSA".to_owned(),
        secret: vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0xff],
        created_at: 1_700_000_000,
        activates_at: 1_700_000_060,
        retired_at: None,
    };
    let current_key = KeyRecord {
        kid: "k2".to_owned(),
        created_at: 1_700_086_400,
        activates_at: 1_700_086_460,
        ..retired_key.clone()
    };
    store.insert_signing_key(&retired_key).await.unwrap();
    store.insert_signing_key(&current_key).await.unwrap();
    assert_eq!(
        store
            .retire_signing_keys("k2", 1_700_086_460)
            .await
            .unwrap(),
        1
    );
    let rotation_key = store.server_secret("rotation", b"first").await.unwrap();
    backend.close(&store).await;

    let reopened = backend.open().await;
    let spent_parent: RefreshRecord = spent(&parent, at(1_000), &successor);
    assert_eq!(
        reopened.refresh_by_token(&parent.token_hash).await.unwrap(),
        Some(spent_parent)
    );
    assert_eq!(
        reopened
            .refresh_by_token(&successor.token_hash)
            .await
            .unwrap(),
        Some(successor.clone())
    );
    let late = refresh_for_token(&RefreshToken::generate().unwrap(), &session_id, at(2_000));
    assert_eq!(
        reopened
            .rotate_refresh(&parent.token_hash, &late, at(2_000))
            .await
            .unwrap(),
        Rotation::AlreadySpent {
            spent_at: at(1_000),
            successor: Some(successor),
        },
        "a reopened store forgot that the parent was spent"
    );
    let retired_key = KeyRecord {
        retired_at: Some(1_700_086_460),
        ..retired_key
    };
    assert_eq!(
        reopened.signing_keys().await.unwrap(),
        [retired_key, current_key]
    );
    assert_eq!(
        reopened.server_secret("rotation", b"second").await.unwrap(),
        rotation_key,
        "the server secret changed across a restart"
    );
}

/// API clients survive a close and a reopen, their admin scope and deletions included, and
/// their names stay taken.
pub async fn clients_survive_close_and_reopen<D: Durable>(backend: D) {
    let store = backend.open().await;
    let billing = ClientRecord {
        id: "c-billing".to_owned(),
        name: "billing-api".to_owned(),
        secret_hash: TokenHash::from_bytes([0x00; 32]),
        created_at: at(0),
        admin: true,
    };
    let reports = ClientRecord {
        id: "c-reports".to_owned(),
        name: "reports".to_owned(),
        secret_hash: TokenHash::from_bytes([0xff; 32]),
        created_at: at(1_000),
        admin: false,
    };
    let deleted = ClientRecord {
        id: "c-deleted".to_owned(),
        name: "deleted".to_owned(),
        ..billing.clone()
    };
    for client in [&reports, &billing, &deleted] {
        store.insert_client(client).await.unwrap();
    }
    assert!(store.delete_client("deleted").await.unwrap());
    backend.close(&store).await;

    let reopened = backend.open().await;
    assert_eq!(
        reopened.client_by_id("c-billing").await.unwrap().as_ref(),
        Some(&billing)
    );
    assert_eq!(reopened.client_by_id("c-deleted").await.unwrap(), None);
    assert_eq!(
        reopened.list_clients().await.unwrap(),
        [billing.clone(), reports]
    );
    let result = reopened
        .insert_client(&ClientRecord {
            id: "c-other".to_owned(),
            ..billing
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::Conflict)),
        "a reopened store forgot a client's name: {result:?}"
    );
}

/// A session is stored by its verifier: neither the token nor its secret, encoded or raw,
/// is anywhere in the backend's data, while the store is open or after it closed.
pub async fn storage_holds_the_verifier_never_the_secret<D: Durable>(backend: D) {
    let store = backend.open().await;
    // The session id `public-session-i`, then the secret `secret-session-token-for-testing`.
    let text = "cHVibGljLXNlc3Npb24taXNlY3JldC1zZXNzaW9uLXRva2VuLWZvci10ZXN0aW5n";
    let token = SessionToken::parse(text).unwrap();
    let raw = *b"secret-session-token-for-testing";
    assert_eq!(token.encode(), text);
    let session = session_for_token(&token, &UserId::generate().unwrap(), at(0));
    store.insert_session(&session).await.unwrap();
    store
        .touch_session(&session.id, at(1), at(2))
        .await
        .unwrap();

    let check = |bytes: &[u8], when: &str| {
        assert!(
            contains(bytes, token.verifier().as_bytes()),
            "{when}: the verifier is missing, so the search looked in the wrong place"
        );
        assert!(
            !contains(bytes, token.encode().as_bytes()),
            "{when}: encoded token stored"
        );
        assert!(
            !contains(bytes, &text.as_bytes()[22..]),
            "{when}: encoded secret stored"
        );
        assert!(!contains(bytes, &raw), "{when}: raw secret bytes stored");
    };
    check(&backend.stored_bytes().await, "while open");
    backend.close(&store).await;
    check(&backend.stored_bytes().await, "after close");
}

/// Refresh tokens are stored by their hashes: neither token, encoded or raw, is anywhere in
/// the backend's data after a rotation, while the store is open or after it closed.
pub async fn storage_holds_refresh_token_hashes_never_the_tokens<D: Durable>(backend: D) {
    let store = backend.open().await;
    let parent = RefreshToken::parse("c2VjcmV0LXJlZnJlc2gtdG9rZW4tZm9yLXRlc3Rpbmc").unwrap();
    let successor = RefreshToken::parse("bmV4dC1yZWZyZXNoLXRva2VuLWZvci10ZXN0aW5nISE").unwrap();
    let raw: [&[u8]; 2] = [
        b"secret-refresh-token-for-testing",
        b"next-refresh-token-for-testing!!",
    ];
    let session_id = new_session_id();
    store
        .insert_refresh(&refresh_for_token(&parent, &session_id, at(0)))
        .await
        .unwrap();
    let rotation = store
        .rotate_refresh(
            &parent.hash(),
            &refresh_for_token(&successor, &session_id, at(1_000)),
            at(1_000),
        )
        .await
        .unwrap();
    assert_eq!(rotation, Rotation::Rotated);

    let check = |bytes: &[u8], when: &str| {
        for ((token, raw), which) in [&parent, &successor]
            .iter()
            .zip(raw)
            .zip(["parent", "successor"])
        {
            assert!(
                contains(bytes, token.hash().as_bytes()),
                "{when}: the {which} hash is missing, so the search looked in the wrong place"
            );
            assert!(
                !contains(bytes, token.encode().as_bytes()),
                "{when}: encoded {which} token stored"
            );
            assert!(
                !contains(bytes, raw),
                "{when}: raw {which} token bytes stored"
            );
        }
    };
    check(&backend.stored_bytes().await, "while open");
    backend.close(&store).await;
    check(&backend.stored_bytes().await, "after close");
}
