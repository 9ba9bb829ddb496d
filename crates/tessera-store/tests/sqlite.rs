//! What only the SQLite backend promises: durability across reopen, no raw tokens on disk,
//! WAL mode, idempotent migrations, bounded throttle table, typed errors.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection as _, Row as _};
use tessera_core::{
    ClientRecord, ClientStore, KeyRecord, KeyStore, LoginThrottle, RefreshRecord, RefreshStore,
    RefreshToken, Rotation, SessionId, SessionRecord, SessionStore, SessionToken, StoreError,
    ThrottleKey, ThrottleRule, Timestamp, TokenHash, Transport, User, UserId, UserRecord,
    UserStore, Username,
};
use tessera_store::sqlite::SqliteStore;

const BASE: i64 = 1_700_000_000_000;

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(BASE + millis)
}

fn session_for(token: &SessionToken, user_id: &UserId) -> SessionRecord {
    SessionRecord {
        id: token.session_id(),
        verifier: token.verifier(),
        user_id: user_id.clone(),
        transport: Transport::Cookie,
        created_at: at(0),
        last_seen_at: at(0),
        idle_expires_at: at(30 * 60_000),
        expires_at: at(12 * 3_600_000),
        ip: Some("192.0.2.7".to_owned()),
        user_agent: None,
        revoked_at: None,
    }
}

fn refresh_for(
    token: &RefreshToken,
    session_id: &SessionId,
    issued_at: Timestamp,
) -> RefreshRecord {
    RefreshRecord {
        token_hash: token.hash(),
        session_id: session_id.clone(),
        issued_at,
        expires_at: at(12 * 3_600_000),
        access_token_id: "jti-for-testing".to_owned(),
        access_expires_at: issued_at.saturating_add(Duration::from_secs(900)),
        spent_at: None,
        successor_hash: None,
    }
}

fn alice() -> (Username, UserRecord) {
    let record = UserRecord {
        user: User {
            id: UserId::generate().unwrap(),
            username: "Alice".to_owned(),
            created_at: at(0),
        },
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
    };
    (Username::parse("Alice").unwrap(), record)
}

/// A connection of the test's own, beside the store's pool.
async fn raw_connection(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The database file and its write-ahead log, concatenated.
fn database_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(log) = std::fs::read(wal) {
        bytes.extend(log);
    }
    bytes
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/tessera.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let (name, user) = alice();
    store.create_user(&name, &user).await.unwrap();
    let kept = session_for(&SessionToken::generate().unwrap(), &user.user.id);
    let revoked = session_for(&SessionToken::generate().unwrap(), &user.user.id);
    store.insert_session(&kept).await.unwrap();
    store.insert_session(&revoked).await.unwrap();
    assert!(store.revoke_session(&revoked.id, at(1_000)).await.unwrap());
    let rule = ThrottleRule {
        max_failures: 2,
        window: Duration::from_secs(900),
    };
    let key = ThrottleKey::Account("alice".to_owned());
    store.record_failure(&key, rule, at(0)).await.unwrap();
    store.record_failure(&key, rule, at(1)).await.unwrap();
    let cursor = store.revocation_cursor().await.unwrap();
    store.close().await;
    assert!(matches!(
        UserStore::ping(&store).await,
        Err(StoreError::Unavailable(_))
    ));

    let reopened = SqliteStore::open(&path).await.unwrap();
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
        Some(Duration::from_secs(900) - Duration::from_millis(2)),
        "throttle counters were lost"
    );
}

#[tokio::test]
async fn database_holds_the_verifier_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let store = SqliteStore::open(&path).await.unwrap();
    // The session id `public-session-i`, then the secret `secret-session-token-for-testing`.
    let text = "cHVibGljLXNlc3Npb24taXNlY3JldC1zZXNzaW9uLXRva2VuLWZvci10ZXN0aW5n";
    let token = SessionToken::parse(text).unwrap();
    let raw = *b"secret-session-token-for-testing";
    assert_eq!(token.encode(), text);
    let session = session_for(&token, &UserId::generate().unwrap());
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
            "{when}: encoded token on disk"
        );
        assert!(
            !contains(bytes, &text.as_bytes()[22..]),
            "{when}: encoded secret on disk"
        );
        assert!(!contains(bytes, &raw), "{when}: raw secret bytes on disk");
    };
    check(&database_bytes(&path), "while open");
    store.close().await;
    check(&database_bytes(&path), "after close");
}

#[tokio::test]
async fn refresh_chains_and_keys_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let session_id = SessionId::generate().unwrap();
    let parent = refresh_for(&RefreshToken::generate().unwrap(), &session_id, at(0));
    let successor = refresh_for(&RefreshToken::generate().unwrap(), &session_id, at(1_000));
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
    store.close().await;

    let reopened = SqliteStore::open(&path).await.unwrap();
    let spent_parent = RefreshRecord {
        spent_at: Some(at(1_000)),
        successor_hash: Some(successor.token_hash),
        ..parent.clone()
    };
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
    let late = refresh_for(&RefreshToken::generate().unwrap(), &session_id, at(2_000));
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

#[tokio::test]
async fn clients_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let billing = ClientRecord {
        id: "c-billing".to_owned(),
        name: "billing-api".to_owned(),
        secret_hash: TokenHash::from_bytes([0x00; 32]),
        created_at: at(0),
    };
    let reports = ClientRecord {
        id: "c-reports".to_owned(),
        name: "reports".to_owned(),
        secret_hash: TokenHash::from_bytes([0xff; 32]),
        created_at: at(1_000),
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
    store.close().await;

    let reopened = SqliteStore::open(&path).await.unwrap();
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

#[tokio::test]
async fn database_holds_refresh_token_hashes_never_the_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let parent = RefreshToken::parse("c2VjcmV0LXJlZnJlc2gtdG9rZW4tZm9yLXRlc3Rpbmc").unwrap();
    let successor = RefreshToken::parse("bmV4dC1yZWZyZXNoLXRva2VuLWZvci10ZXN0aW5nISE").unwrap();
    let raw: [&[u8]; 2] = [
        b"secret-refresh-token-for-testing",
        b"next-refresh-token-for-testing!!",
    ];
    let session_id = SessionId::generate().unwrap();
    store
        .insert_refresh(&refresh_for(&parent, &session_id, at(0)))
        .await
        .unwrap();
    let rotation = store
        .rotate_refresh(
            &parent.hash(),
            &refresh_for(&successor, &session_id, at(1_000)),
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
                "{when}: encoded {which} token on disk"
            );
            assert!(
                !contains(bytes, raw),
                "{when}: raw {which} token bytes on disk"
            );
        }
    };
    check(&database_bytes(&path), "while open");
    store.close().await;
    check(&database_bytes(&path), "after close");
}

#[tokio::test]
async fn journal_is_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let store = SqliteStore::open(&path).await.unwrap();
    UserStore::ping(&store).await.unwrap();
    let mut connection = raw_connection(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn migrations_are_idempotent_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let (name, user) = alice();
    let first = SqliteStore::open(&path).await.unwrap();
    first.create_user(&name, &user).await.unwrap();
    // A second store on the same file while the first is open, then plain reopens.
    let second = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        second.list_users().await.unwrap(),
        std::slice::from_ref(&user.user)
    );
    second.close().await;
    first.close().await;
    for _ in 0..2 {
        let again = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            again.list_users().await.unwrap(),
            std::slice::from_ref(&user.user)
        );
        again.close().await;
    }

    let mut connection = raw_connection(&path).await;
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    assert_eq!(applied.len(), files, "each migration recorded exactly once");
    assert!(applied.iter().all(|(_, success)| *success));
}

#[tokio::test]
async fn closed_throttle_windows_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let rule = ThrottleRule {
        max_failures: 10,
        window: Duration::from_secs(60),
    };
    // 63 keys fail now; the 64th failure, after their windows closed, triggers the sweep.
    for n in 0..63 {
        let key = ThrottleKey::Account(format!("user{n}"));
        store.record_failure(&key, rule, at(0)).await.unwrap();
    }
    let later = ThrottleKey::Account("latecomer".to_owned());
    store
        .record_failure(&later, rule, at(61_000))
        .await
        .unwrap();

    let mut connection = raw_connection(&path).await;
    let keys: Vec<String> = sqlx::query("SELECT key FROM login_failures")
        .fetch_all(&mut connection)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get("key"))
        .collect();
    assert_eq!(keys, ["account:latecomer"]);
}

#[tokio::test]
async fn malformed_rows_are_corrupt_not_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let session = session_for(
        &SessionToken::generate().unwrap(),
        &UserId::generate().unwrap(),
    );
    store.insert_session(&session).await.unwrap();

    let mut connection = raw_connection(&path).await;
    sqlx::query("UPDATE sessions SET transport = 'carrier-pigeon'")
        .execute(&mut connection)
        .await
        .unwrap();
    let result = store.session_by_id(&session.id).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");

    sqlx::query("UPDATE sessions SET transport = 'cookie', user_id = 'not a user id'")
        .execute(&mut connection)
        .await
        .unwrap();
    let result = store.session_by_id(&session.id).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
}
