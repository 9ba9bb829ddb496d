//! What only the SQLite backend promises: durability across reopen and no raw tokens on disk
//! (the durability cases, shared with PostgreSQL), WAL mode, idempotent migrations, bounded
//! throttle table, typed errors.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection as _, Row as _};
use tessera_core::{
    LoginThrottle, SessionRecord, SessionStore, SessionToken, StoreError, ThrottleKey,
    ThrottleRule, UserId, UserStore,
};
use tessera_store::conformance::{Durable, at, new_user, session_for_token};
use tessera_store::sqlite::SqliteStore;

/// A database file in a directory of its own (nested, so opening creates the parents).
struct SqliteFile {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SqliteFile {
    fn new() -> SqliteFile {
        let dir = tempfile::tempdir().unwrap();
        SqliteFile {
            path: dir.path().join("nested/dirs/tessera.db"),
            _dir: dir,
        }
    }
}

#[async_trait]
impl Durable for SqliteFile {
    type Store = SqliteStore;

    async fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.path).await.unwrap()
    }

    async fn close(&self, store: &SqliteStore) {
        store.close().await;
    }

    async fn stored_bytes(&self) -> Vec<u8> {
        database_bytes(&self.path)
    }
}

tessera_store::durability_tests!(durability, || async { SqliteFile::new() });

/// A connection of the test's own, beside the store's pool.
async fn raw_connection(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .unwrap()
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
    let (name, user) = new_user("Alice", at(0));
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
    let session = session_for_token(
        &SessionToken::generate().unwrap(),
        &UserId::generate().unwrap(),
        at(0),
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

/// An audited change whose audit row cannot be written is rolled back: no user, no
/// revocation, no log entry, no service added or removed — the event and its change commit
/// together or not at all.
#[tokio::test]
async fn an_audited_change_rolls_back_when_its_event_cannot_be_written() {
    use tessera_core::{Actor, AuditEvent, AuditKind, AuditStore as _, ServiceStore as _};
    use tessera_store::conformance::{new_service, new_session};

    let file = SqliteFile::new();
    let store = file.open().await;
    let (name, alice) = new_user("alice", at(0));
    store.create_user(&name, &alice).await.unwrap();
    let session = new_session(&alice.user.id, at(0));
    store.insert_session(&session).await.unwrap();
    let orders = new_service("orders", "https://orders.example", at(0));
    store.insert_service(&orders).await.unwrap();

    let mut raw = raw_connection(&file.path).await;
    sqlx::query(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .execute(&mut raw)
    .await
    .unwrap();

    let event = |kind| AuditEvent::new(kind, at(1_000), Actor::Cli);
    let (bob_name, bob) = new_user("bob", at(0));
    let created = store
        .create_user_audited(&bob_name, &bob, &event(AuditKind::UserCreated))
        .await;
    assert!(
        matches!(created, Err(StoreError::Unavailable(_))),
        "{created:?}"
    );
    assert_eq!(store.user_by_id(&bob.user.id).await.unwrap(), None);

    let revoked = store
        .revoke_session_audited(&session.id, at(1_000), &event(AuditKind::Logout))
        .await;
    assert!(revoked.is_err(), "{revoked:?}");
    let stored = store.session_by_id(&session.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, None);
    assert!(store.revocations_since(0, 10).await.unwrap().is_empty());

    let deleted = store
        .delete_user_audited(&alice.user.id, &event(AuditKind::UserDeleted))
        .await;
    assert!(deleted.is_err(), "{deleted:?}");
    assert!(store.user_by_id(&alice.user.id).await.unwrap().is_some());

    let billing = new_service("billing", "https://billing.example", at(2_000));
    let added = store
        .insert_service_audited(&billing, &event(AuditKind::ServiceCreated))
        .await;
    assert!(
        matches!(added, Err(StoreError::Unavailable(_))),
        "{added:?}"
    );
    assert_eq!(
        store
            .service_by_audience("https://billing.example")
            .await
            .unwrap(),
        None
    );
    let removed = store
        .delete_service_audited("orders", &event(AuditKind::ServiceDeleted))
        .await;
    assert!(removed.is_err(), "{removed:?}");
    assert_eq!(
        store.list_services().await.unwrap(),
        std::slice::from_ref(&orders)
    );

    sqlx::query("DROP TRIGGER refuse_audit")
        .execute(&mut raw)
        .await
        .unwrap();
    let trail = store.query(&Default::default(), 0, 10).await.unwrap();
    assert!(trail.is_empty(), "{trail:?}");
}

/// The trail is append-only in the schema itself: an event cannot be rewritten.
#[tokio::test]
async fn audit_events_cannot_be_updated() {
    use tessera_core::{Actor, AuditEvent, AuditKind, AuditStore as _};

    let file = SqliteFile::new();
    let store = file.open().await;
    store
        .append(&AuditEvent::new(AuditKind::Logout, at(0), Actor::Cli))
        .await
        .unwrap();
    let mut raw = raw_connection(&file.path).await;
    let update = sqlx::query("UPDATE audit_events SET kind = 'login_succeeded'")
        .execute(&mut raw)
        .await;
    assert!(update.is_err(), "{update:?}");
}

/// A row written before `auth_time` existed (migration 0006) reads it as its `created_at`,
/// and a re-authentication fills it in.
#[tokio::test]
async fn rows_without_auth_time_read_their_login_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let session = SessionRecord {
        auth_time: at(30_000),
        ..session_for_token(
            &SessionToken::generate().unwrap(),
            &UserId::generate().unwrap(),
            at(0),
        )
    };
    store.insert_session(&session).await.unwrap();

    let mut connection = raw_connection(&path).await;
    sqlx::query("UPDATE sessions SET auth_time = NULL")
        .execute(&mut connection)
        .await
        .unwrap();
    let old = store.session_by_id(&session.id).await.unwrap().unwrap();
    assert_eq!(old.auth_time, session.created_at);

    assert!(
        store
            .record_authentication(&session.id, at(60_000))
            .await
            .unwrap()
    );
    let stored: Option<i64> = sqlx::query_scalar("SELECT auth_time FROM sessions")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(stored, Some(at(60_000).unix_millis()));
}

/// A child session's parent is two columns that go together: the schema refuses one without
/// the other, and a parent id that is not a session id reads as corrupt.
#[tokio::test]
async fn child_session_columns_go_together() {
    use tessera_store::conformance::{child_session, new_session};

    let file = SqliteFile::new();
    let store = file.open().await;
    let parent = new_session(&UserId::generate().unwrap(), at(0));
    let child = child_session(&parent, "https://orders.example", at(1_000));
    store.insert_session(&parent).await.unwrap();
    store.insert_session(&child).await.unwrap();

    let mut raw = raw_connection(&file.path).await;
    for half in [
        "UPDATE sessions SET parent_audience = NULL WHERE parent_id IS NOT NULL",
        "UPDATE sessions SET parent_id = NULL WHERE parent_id IS NOT NULL",
        "UPDATE sessions SET parent_audience = 'urn:half' WHERE parent_id IS NULL",
    ] {
        let result = sqlx::query(half).execute(&mut raw).await;
        assert!(result.is_err(), "{half}: {result:?}");
    }
    assert_eq!(
        store.session_by_id(&child.id).await.unwrap(),
        Some(child.clone())
    );
    assert_eq!(store.session_by_id(&parent.id).await.unwrap(), Some(parent));

    sqlx::query("UPDATE sessions SET parent_id = 'not a session id' WHERE parent_id IS NOT NULL")
        .execute(&mut raw)
        .await
        .unwrap();
    let result = store.session_by_id(&child.id).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
}
