//! The PostgreSQL backend against the real server: the conformance and durability suites,
//! then what only it promises — revocations commit in sequence order, `LISTEN`/`NOTIFY`
//! fan-out, timeouts that fail fast, schemas that isolate and are cleaned up.
//!
//! Reads the server's URL from `TESSERA_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Every test works in a schema of its own,
//! dropped when it ends; the tests fail, never skip, when the server is not reachable.
//!
//! Over 500 lines: one test binary per server, whose tests share its helpers (schemas,
//! databases, a freezable proxy), kept beside them.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::{Connection as _, Executor as _};
use tessera_core::{
    RevocationLog, RevocationNotifier, SessionId, SessionRecord, SessionStore, SessionToken,
    StoreError, Timestamp, UserId, UserStore,
};
use tessera_store::conformance::{Durable, Fixture, at, new_service, new_session, new_user};
use tessera_store::postgres::{PgOptions, PgStore};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn database_url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Why a test could not reach the server, and what to do about it. Names no URL: one given
/// in the environment may hold a password.
fn postgres_failed(error: impl std::error::Error) -> String {
    let mut error: &dyn std::error::Error = &error;
    let mut causes = error.to_string();
    while let Some(source) = error.source() {
        write!(causes, ": {source}").unwrap();
        error = source;
    }
    format!(
        "PostgreSQL at TESSERA_TEST_POSTGRES_URL (default {DEFAULT_URL}) failed: {causes}. \
         If it is not running, start the local server with \
         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
         or point TESSERA_TEST_POSTGRES_URL at one."
    )
}

/// A connection of the test's own, beside the store's pool.
async fn raw_connection() -> PgConnection {
    PgConnection::connect(&database_url())
        .await
        .unwrap_or_else(|error| panic!("{}", postgres_failed(error)))
}

/// A schema name no other test (or run) uses.
fn unique_schema() -> String {
    let random = SessionToken::generate().unwrap().verifier();
    let mut name = String::from("tessera_test_");
    for byte in &random.as_bytes()[..8] {
        write!(name, "{byte:02x}").unwrap();
    }
    name
}

/// A schema for one test. Dropping it drops the schema with everything in it, and fails the
/// test if the schema is still there afterwards.
struct TestSchema {
    name: String,
}

impl TestSchema {
    fn new() -> TestSchema {
        TestSchema {
            name: unique_schema(),
        }
    }

    fn options(&self) -> PgOptions {
        PgOptions {
            schema: Some(self.name.clone()),
            ..PgOptions::default()
        }
    }

    /// `"name".table`.
    fn table(&self, table: &str) -> String {
        format!("\"{}\".{table}", self.name)
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Its own thread and runtime: this may run inside the test's runtime (a fixture is
        // dropped there), which cannot be blocked on from within.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(drop_schema(&name))
        })
        .join();
        // Panicking again while a failed test unwinds would abort the whole run.
        if !std::thread::panicking() {
            dropped.expect("the schema clean-up panicked");
        }
    }
}

async fn drop_schema(name: &str) {
    let mut connection = raw_connection().await;
    connection
        .execute(&*format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
        .await
        .unwrap();
    assert!(
        !schema_exists(&mut connection, name).await,
        "schema {name} left behind"
    );
}

async fn schema_exists(connection: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)")
        .bind(name)
        .fetch_one(connection)
        .await
        .unwrap()
}

async fn connect_with(options: PgOptions) -> PgStore {
    PgStore::connect(&database_url(), options)
        .await
        .unwrap_or_else(|error| panic!("{}", postgres_failed(error)))
}

async fn connect(schema: &TestSchema) -> PgStore {
    connect_with(schema.options()).await
}

tessera_store::conformance_tests!(postgres, || async {
    let schema = TestSchema::new();
    let store = connect(&schema).await;
    Fixture::new(store.clone(), store).keep_alive(schema)
});

tessera_store::audit_tests!(postgres_audit, || async {
    let schema = TestSchema::new();
    let store = connect(&schema).await;
    Fixture::new(store.clone(), store).keep_alive(schema)
});

#[async_trait]
impl Durable for TestSchema {
    type Store = PgStore;

    /// A second connect to the same schema is PostgreSQL's reopen.
    async fn open(&self) -> PgStore {
        connect(self).await
    }

    async fn close(&self, store: &PgStore) {
        store.close().await;
    }

    /// Every value of every column of every table in the schema, as text (`bytea` as its
    /// raw bytes).
    async fn stored_bytes(&self) -> Vec<u8> {
        let mut connection = raw_connection().await;
        let columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text \
             FROM information_schema.columns WHERE table_schema = $1",
        )
        .bind(&self.name)
        .fetch_all(&mut connection)
        .await
        .unwrap();
        assert!(!columns.is_empty(), "no tables in {}", self.name);
        let mut bytes = Vec::new();
        for (table, column, data_type) in columns {
            let value = if data_type == "bytea" {
                format!("\"{column}\"")
            } else {
                format!("convert_to(\"{column}\"::text, 'UTF8')")
            };
            let values: Vec<Option<Vec<u8>>> = sqlx::query_scalar(&format!(
                "SELECT {value} FROM {}",
                self.table(&format!("\"{table}\""))
            ))
            .fetch_all(&mut connection)
            .await
            .unwrap();
            bytes.extend(values.into_iter().flatten().flatten());
        }
        bytes
    }
}

tessera_store::durability_tests!(durability, || async { TestSchema::new() });

/// `url` split into `scheme://credentials@`, `host:port`, `/database` and `?query`.
fn url_parts(url: &str) -> [&str; 4] {
    let scheme_end = url.find("://").expect("a URL with a scheme") + 3;
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |end| scheme_end + end);
    let host_start = url[scheme_end..authority_end]
        .rfind('@')
        .map_or(scheme_end, |at| scheme_end + at + 1);
    let path_end = url[authority_end..]
        .find('?')
        .map_or(url.len(), |end| authority_end + end);
    [
        &url[..host_start],
        &url[host_start..authority_end],
        &url[authority_end..path_end],
        &url[path_end..],
    ]
}

/// `url` with its host and port replaced; user, password and database kept.
fn url_at(url: &str, host_and_port: &str) -> String {
    let [credentials, _, path, query] = url_parts(url);
    format!("{credentials}{host_and_port}{path}{query}")
}

/// `url` naming another database on the same server.
fn url_of_database(url: &str, database: &str) -> String {
    let [credentials, host, _, query] = url_parts(url);
    format!("{credentials}{host}/{database}{query}")
}

/// Inserts a session and revokes it through `store` at `when`.
async fn revoke_one(store: &PgStore, when: Timestamp) -> SessionId {
    let session = new_session(&UserId::generate().unwrap(), at(0));
    store.insert_session(&session).await.unwrap();
    assert!(store.revoke_session(&session.id, when).await.unwrap());
    session.id
}

#[tokio::test]
async fn the_schema_holds_every_table_and_is_gone_after_the_test() {
    let schema = TestSchema::new();
    let name = schema.name.clone();
    let store = connect(&schema).await;
    let mut connection = raw_connection().await;
    assert!(schema_exists(&mut connection, &name).await);
    for table in [
        "users",
        "sessions",
        "revocations",
        "refresh_tokens",
        "clients",
    ] {
        let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(schema.table(table))
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert!(found.is_some(), "{table} is not in the test's schema");
    }
    assert_eq!(
        store.revocation_channel(),
        format!("tessera_revocations:{name}")
    );

    store.close().await;
    let result = UserStore::ping(&store).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    let result = store.subscribe().await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    drop(schema);
    assert!(!schema_exists(&mut connection, &name).await);
}

#[tokio::test]
async fn migrations_are_recorded_once_and_reconnecting_keeps_data() {
    let schema = TestSchema::new();
    let (name, user) = new_user("alice", at(0));
    let first = connect(&schema).await;
    first.create_user(&name, &user).await.unwrap();
    // A second store on the same schema while the first is open, then a plain reconnect.
    let second = connect(&schema).await;
    assert_eq!(
        second.list_users().await.unwrap(),
        std::slice::from_ref(&user.user)
    );
    second.close().await;
    first.close().await;
    let again = connect(&schema).await;
    assert_eq!(again.user_by_username("alice").await.unwrap(), Some(user));
    again.close().await;

    let mut connection = raw_connection().await;
    let applied: Vec<(i64, bool)> = sqlx::query_as(&format!(
        "SELECT version, success FROM {} ORDER BY version",
        schema.table("_sqlx_migrations")
    ))
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations-postgres"))
        .unwrap()
        .count();
    assert_eq!(applied.len(), files, "each migration recorded exactly once");
    assert!(applied.iter().all(|(_, success)| *success));
}

/// Instances starting at once against a fresh schema all come up: one creates the schema,
/// and they take turns at the migrations.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_all_connect() {
    let schema = TestSchema::new();
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let options = schema.options();
            tokio::spawn(async move { PgStore::connect(&database_url(), options).await })
        })
        .collect();
    for start in starts {
        let store = start
            .await
            .unwrap()
            .unwrap_or_else(|error| panic!("{}", postgres_failed(error)));
        assert_eq!(store.revocation_cursor().await.unwrap(), 0);
        store.close().await;
    }
}

/// The guarantee `revocations_since` readers rely on: a poller that moves its cursor to the
/// highest sequence it saw never misses an entry, because entries commit in sequence order.
/// Writers on three handles (three pools, as three instances would have) revoke singly, in
/// bulk and through the `RevocationLog` at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poller_following_the_cursor_sees_every_revocation_once() {
    const WRITERS: usize = 6;
    const ROUNDS: usize = 30;
    let schema = TestSchema::new();
    let stores = [
        connect(&schema).await,
        connect(&schema).await,
        connect(&schema).await,
    ];
    let writers_done = Arc::new(AtomicBool::new(false));

    let poller = {
        let store = stores[0].clone();
        let writers_done = Arc::clone(&writers_done);
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut seen = Vec::new();
            loop {
                // Read before polling: once the writers are done, one empty page ends it.
                let finished = writers_done.load(Ordering::SeqCst);
                let page = store.revocations_since(cursor, 50).await.unwrap();
                if page.is_empty() {
                    if finished {
                        return (cursor, seen);
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                for entry in page {
                    assert!(entry.sequence > cursor);
                    cursor = entry.sequence;
                    seen.push(entry);
                }
            }
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = stores[writer % stores.len()].clone();
            tokio::spawn(async move {
                let mut revoked = Vec::new();
                for round in 0..ROUNDS {
                    match (writer + round) % 3 {
                        0 => revoked.push(revoke_one(&store, at(60_000)).await),
                        1 => {
                            let owner = UserId::generate().unwrap();
                            for _ in 0..3 {
                                store
                                    .insert_session(&new_session(&owner, at(0)))
                                    .await
                                    .unwrap();
                            }
                            let ids = store
                                .revoke_user_sessions(&owner, None, at(60_000))
                                .await
                                .unwrap();
                            assert_eq!(ids.len(), 3);
                            revoked.extend(ids);
                        }
                        _ => {
                            let entries: Vec<(SessionId, UserId)> = (0..2)
                                .map(|_| {
                                    (SessionId::generate().unwrap(), UserId::generate().unwrap())
                                })
                                .collect();
                            store.log_revocations(&entries, at(60_000)).await.unwrap();
                            revoked.extend(entries.into_iter().map(|(id, _)| id));
                        }
                    }
                }
                revoked
            })
        })
        .collect();
    let mut revoked = Vec::new();
    for writer in writers {
        revoked.extend(writer.await.unwrap());
    }
    writers_done.store(true, Ordering::SeqCst);
    let (cursor, seen) = poller.await.unwrap();

    let mut times_seen: HashMap<&SessionId, usize> = HashMap::new();
    for entry in &seen {
        *times_seen
            .entry(entry.session_id().expect("a session entry"))
            .or_default() += 1;
    }
    let missed: Vec<_> = revoked
        .iter()
        .filter(|id| !times_seen.contains_key(id))
        .collect();
    assert!(
        missed.is_empty(),
        "the poller skipped {} of {} entries",
        missed.len(),
        revoked.len()
    );
    assert!(times_seen.values().all(|&count| count == 1));
    assert_eq!(seen.len(), revoked.len());
    assert_eq!(
        stores[1].revocations_since(0, usize::MAX).await.unwrap(),
        seen
    );
    assert_eq!(stores[2].revocation_cursor().await.unwrap(), cursor);
    for store in &stores {
        store.close().await;
    }
}

/// `RevocationLog` and `SessionStore` write one log: one numbering, one cursor, and
/// trimming through either never lowers it.
#[tokio::test]
async fn the_revocation_log_is_shared_with_the_session_store() {
    let schema = TestSchema::new();
    let store = connect(&schema).await;
    let first = revoke_one(&store, at(60_000)).await;
    let logged = [
        (SessionId::generate().unwrap(), UserId::generate().unwrap()),
        (SessionId::generate().unwrap(), UserId::generate().unwrap()),
    ];
    store.log_revocations(&logged, at(120_000)).await.unwrap();
    store.log_revocations(&[], at(130_000)).await.unwrap();
    let last = revoke_one(&store, at(180_000)).await;

    let log = store.logged_since(0, 100).await.unwrap();
    assert_eq!(log, store.revocations_since(0, 100).await.unwrap());
    let ids: Vec<&SessionId> = log
        .iter()
        .map(|entry| entry.session_id().expect("a session entry"))
        .collect();
    assert_eq!(ids, [&first, &logged[0].0, &logged[1].0, &last]);
    assert!(
        log.windows(2)
            .all(|pair| pair[0].sequence < pair[1].sequence)
    );
    assert_eq!(log[1].user_id, logged[0].1);
    assert_eq!(log[1].revoked_at, at(120_000));
    let cursor = store.log_cursor().await.unwrap();
    assert_eq!(cursor, log[3].sequence);
    assert_eq!(store.revocation_cursor().await.unwrap(), cursor);

    assert_eq!(store.trim_log(at(120_001), 100).await.unwrap(), 3);
    assert_eq!(store.logged_since(0, 100).await.unwrap(), log[3..]);
    assert_eq!(
        store
            .trim_log(Timestamp::from_unix_millis(i64::MAX), 1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.logged_since(0, 100).await.unwrap(), []);
    assert_eq!(store.log_cursor().await.unwrap(), cursor);
    let next = revoke_one(&store, at(240_000)).await;
    let log = store.logged_since(0, 100).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].session_id(), Some(&next));
    assert!(log[0].sequence > cursor);
}

#[tokio::test]
async fn a_revocation_through_another_handle_wakes_a_subscriber() {
    let schema = TestSchema::new();
    let listening = connect(&schema).await;
    let writer = connect(&schema).await;
    let mut subscription = listening.subscribe().await.unwrap();

    let started = Instant::now();
    let session = revoke_one(&writer, at(60_000)).await;
    tokio::time::timeout(Duration::from_secs(2), subscription.notified())
        .await
        .expect("no notification within 2s of a revocation")
        .unwrap();
    let latency = started.elapsed();
    // The notification follows the commit: the entry is there to read.
    let log = listening.revocations_since(0, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].session_id(), Some(&session));
    eprintln!("revoke to wake-up through another pool: {latency:?}");

    // Through the log alone, as a Redis session store writes.
    let entry = (SessionId::generate().unwrap(), UserId::generate().unwrap());
    writer.log_revocations(&[entry], at(60_000)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), subscription.notified())
        .await
        .expect("no notification for a logged revocation")
        .unwrap();

    // A revocation that changes nothing adds nothing and wakes nobody.
    assert!(!writer.revoke_session(&session, at(90_000)).await.unwrap());
    let woken = tokio::time::timeout(Duration::from_millis(300), subscription.notified()).await;
    assert!(woken.is_err(), "woken by a revocation that revoked nothing");
}

#[tokio::test]
async fn subscribers_in_another_schema_are_not_woken() {
    let ours = TestSchema::new();
    let theirs = TestSchema::new();
    let our_store = connect(&ours).await;
    let their_store = connect(&theirs).await;
    assert_ne!(
        our_store.revocation_channel(),
        their_store.revocation_channel()
    );
    let mut subscription = our_store.subscribe().await.unwrap();

    revoke_one(&their_store, at(60_000)).await;
    let woken = tokio::time::timeout(Duration::from_millis(300), subscription.notified()).await;
    assert!(woken.is_err(), "woken by another schema's revocation");
    // The subscription itself works.
    revoke_one(&our_store, at(60_000)).await;
    tokio::time::timeout(Duration::from_secs(2), subscription.notified())
        .await
        .expect("no notification for our own revocation")
        .unwrap();
}

#[tokio::test]
async fn a_lost_listen_connection_ends_the_subscription_with_an_error() {
    let schema = TestSchema::new();
    let store = connect(&schema).await;
    let mut subscription = store.subscribe().await.unwrap();

    let mut connection = raw_connection().await;
    let listen = format!("LISTEN \"{}\"", store.revocation_channel());
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&listen)
    .fetch_all(&mut connection)
    .await
    .unwrap();
    assert_eq!(terminated, [true], "exactly the subscription's connection");

    let result = tokio::time::timeout(Duration::from_secs(5), subscription.notified())
        .await
        .expect("a lost connection went unnoticed for 5s");
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    let again = subscription.notified().await;
    assert!(
        matches!(again, Err(StoreError::Unavailable(_))),
        "{again:?}"
    );
    // A new subscription works.
    let mut renewed = store.subscribe().await.unwrap();
    revoke_one(&store, at(60_000)).await;
    tokio::time::timeout(Duration::from_secs(2), renewed.notified())
        .await
        .expect("no notification after subscribing again")
        .unwrap();
}

#[tokio::test]
async fn a_locked_table_fails_within_the_statement_timeout() {
    let timeout = Duration::from_millis(500);
    let schema = TestSchema::new();
    let store = connect_with(PgOptions {
        statement_timeout: timeout,
        ..schema.options()
    })
    .await;
    let mut locker = raw_connection().await;
    locker.execute("BEGIN").await.unwrap();
    locker
        .execute(&*format!(
            "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            schema.table("users")
        ))
        .await
        .unwrap();

    let (name, user) = new_user("alice", at(0));
    let started = Instant::now();
    let result = store.create_user(&name, &user).await;
    let waited = started.elapsed();
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        waited >= timeout - Duration::from_millis(50) && waited < timeout * 3,
        "failed after {waited:?} with a {timeout:?} statement timeout"
    );
    eprintln!("locked table: Unavailable after {waited:?} ({timeout:?} statement timeout)");

    locker.execute("ROLLBACK").await.unwrap();
    store.create_user(&name, &user).await.unwrap();
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_fast() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = url_at(&database_url(), &closed.to_string());
    let started = Instant::now();
    let result = PgStore::connect(&url, PgOptions::default()).await;
    let waited = started.elapsed();
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(waited < Duration::from_millis(1_500), "took {waited:?}");
}

#[tokio::test]
async fn connecting_to_a_server_that_never_answers_fails_within_the_connect_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    // Accepts and holds every connection without a word.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let result = PgStore::connect(
        &url_at(&database_url(), &address.to_string()),
        PgOptions {
            connect_timeout: timeout,
            ..PgOptions::default()
        },
    )
    .await;
    let waited = started.elapsed();
    holder.abort();
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        waited >= timeout - Duration::from_millis(50) && waited < timeout * 3,
        "failed after {waited:?} with a {timeout:?} connect timeout"
    );
}

/// Forwards TCP to the real server until frozen; then holds every byte, as a hung server or a
/// dropped network would.
struct FreezableProxy {
    address: std::net::SocketAddr,
    frozen: Arc<AtomicBool>,
    accepting: tokio::task::JoinHandle<()>,
}

impl FreezableProxy {
    async fn start(upstream: String) -> FreezableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let accepting = {
            let frozen = Arc::clone(&frozen);
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(pump(client_read, server_write, Arc::clone(&frozen)));
                    tokio::spawn(pump(server_read, client_write, Arc::clone(&frozen)));
                }
            })
        };
        FreezableProxy {
            address,
            frozen,
            accepting,
        }
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_server_that_stops_answering_fails_operations_within_the_deadline() {
    let schema = TestSchema::new();
    // The upstream address, as the URL names it.
    let upstream: sqlx::postgres::PgConnectOptions = database_url().parse().unwrap();
    let upstream = format!("{}:{}", upstream.get_host(), upstream.get_port());
    let proxy = FreezableProxy::start(upstream).await;
    let options = PgOptions {
        acquire_timeout: Duration::from_millis(300),
        statement_timeout: Duration::from_millis(300),
        ..schema.options()
    };
    let store = PgStore::connect(
        &url_at(&database_url(), &proxy.address.to_string()),
        options,
    )
    .await
    .unwrap_or_else(|error| panic!("{}", postgres_failed(error)));
    UserStore::ping(&store).await.unwrap();
    // Lets the connection go back to the pool (sqlx checks it on the way), so the operation
    // below finds it idle and its query, not a new connection, meets the frozen server.
    tokio::time::sleep(Duration::from_millis(200)).await;

    proxy.frozen.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let result = store.session_by_id(&SessionId::generate().unwrap()).await;
    let waited = started.elapsed();
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    // Acquire (instant: an idle connection is there), then the statement timeout and a
    // margin on the client's clock, since the server will never say.
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_millis(1_500),
        "failed after {waited:?}"
    );
    eprintln!("frozen server: Unavailable after {waited:?}");
    proxy.frozen.store(false, Ordering::SeqCst);
}

#[tokio::test]
async fn malformed_rows_are_corrupt_not_unavailable() {
    let schema = TestSchema::new();
    let store = connect(&schema).await;
    let session = new_session(&UserId::generate().unwrap(), at(0));
    store.insert_session(&session).await.unwrap();

    let mut connection = raw_connection().await;
    let sessions = schema.table("sessions");
    connection
        .execute(&*format!(
            "UPDATE {sessions} SET transport = 'carrier-pigeon'"
        ))
        .await
        .unwrap();
    let result = store.session_by_id(&session.id).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");

    connection
        .execute(&*format!(
            "UPDATE {sessions} SET transport = 'cookie', user_id = 'not a user id'"
        ))
        .await
        .unwrap();
    let result = store.session_by_id(&session.id).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
}

/// A database for one test, dropped (connections and all) when the guard drops.
struct TestDatabase {
    name: String,
}

impl TestDatabase {
    async fn create() -> TestDatabase {
        let name = unique_schema();
        raw_connection()
            .await
            .execute(&*format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        TestDatabase { name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut connection = raw_connection().await;
                    connection
                        .execute(&*format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await
                        .unwrap();
                    let left: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)",
                    )
                    .bind(&name)
                    .fetch_one(&mut connection)
                    .await
                    .unwrap();
                    assert!(!left, "database {name} left behind");
                })
        })
        .join();
        if !std::thread::panicking() {
            dropped.expect("the database clean-up panicked");
        }
    }
}

/// The default deployment: no schema configured, so the tables (and the channel) are the
/// connection's default schema's.
#[tokio::test]
async fn without_a_schema_the_store_uses_the_default_one() {
    let database = TestDatabase::create().await;
    let url = url_of_database(&database_url(), &database.name);
    let store = PgStore::connect(&url, PgOptions::default())
        .await
        .unwrap_or_else(|error| panic!("{}", postgres_failed(error)));
    assert_eq!(store.revocation_channel(), "tessera_revocations:public");
    let mut subscription = store.subscribe().await.unwrap();
    revoke_one(&store, at(60_000)).await;
    tokio::time::timeout(Duration::from_secs(2), subscription.notified())
        .await
        .expect("no notification")
        .unwrap();
    drop(subscription);
    store.close().await;

    let mut connection = PgConnection::connect(&url).await.unwrap();
    let found: Option<String> = sqlx::query_scalar("SELECT to_regclass('public.sessions')::text")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(found.as_deref(), Some("sessions"));
}

/// An audited change whose audit row cannot be written is rolled back with it: one statement,
/// so no user, no revocation, no log entry and no service added or removed without its event.
#[tokio::test]
async fn an_audited_change_rolls_back_when_its_event_cannot_be_written() {
    use tessera_core::{Actor, AuditEvent, AuditKind, AuditStore as _, ServiceStore as _};

    let schema = TestSchema::new();
    let store = connect(&schema).await;
    let (name, alice) = new_user("alice", at(0));
    store.create_user(&name, &alice).await.unwrap();
    let session = new_session(&alice.user.id, at(0));
    store.insert_session(&session).await.unwrap();
    let orders = new_service("orders", "https://orders.example", at(0));
    store.insert_service(&orders).await.unwrap();

    let mut raw = raw_connection().await;
    raw.execute(&*format!(
        "CREATE FUNCTION {refuse}() RETURNS TRIGGER LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
         CREATE TRIGGER refuse_audit BEFORE INSERT ON {events} \
         FOR EACH ROW EXECUTE FUNCTION {refuse}()",
        refuse = schema.table("refuse_audit"),
        events = schema.table("audit_events"),
    ))
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
    assert_eq!(store.revocation_cursor().await.unwrap(), 0);

    let revoked_all = store
        .revoke_user_sessions_audited(
            &alice.user.id,
            None,
            at(1_000),
            &event(AuditKind::SessionsRevoked),
        )
        .await;
    assert!(revoked_all.is_err(), "{revoked_all:?}");
    assert!(store.revocations_since(0, 10).await.unwrap().is_empty());

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

    raw.execute(&*format!(
        "DROP TRIGGER refuse_audit ON {}",
        schema.table("audit_events")
    ))
    .await
    .unwrap();
    assert!(
        store
            .query(&Default::default(), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The counter rolled back too: the next event is the first.
    let id = store.append(&event(AuditKind::Logout)).await.unwrap();
    assert_eq!(id, 1);
    let update = raw
        .execute(&*format!(
            "UPDATE {} SET kind = 'x'",
            schema.table("audit_events")
        ))
        .await;
    assert!(update.is_err(), "events are append-only: {update:?}");
}

/// A row written before `auth_time` existed (migration 0006, or an older instance during a
/// rolling upgrade) reads it as its `created_at`, and a re-authentication fills it in.
#[tokio::test]
async fn rows_without_auth_time_read_their_login_time() {
    let schema = TestSchema::new();
    let store = connect(&schema).await;
    let session = SessionRecord {
        auth_time: at(30_000),
        ..new_session(&UserId::generate().unwrap(), at(0))
    };
    store.insert_session(&session).await.unwrap();

    let mut connection = raw_connection().await;
    let sessions = schema.table("sessions");
    connection
        .execute(&*format!("UPDATE {sessions} SET auth_time = NULL"))
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
    let stored: Option<i64> = sqlx::query_scalar(&format!("SELECT auth_time FROM {sessions}"))
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(stored, Some(at(60_000).unix_millis()));
    store.close().await;
}

/// A child session's parent is two columns that go together: the schema refuses one without
/// the other, and a parent id that is not a session id reads as corrupt.
#[tokio::test]
async fn child_session_columns_go_together() {
    use tessera_store::conformance::child_session;

    let schema = TestSchema::new();
    let store = connect(&schema).await;
    let parent = new_session(&UserId::generate().unwrap(), at(0));
    let child = child_session(&parent, "https://orders.example", at(1_000));
    store.insert_session(&parent).await.unwrap();
    store.insert_session(&child).await.unwrap();

    let mut connection = raw_connection().await;
    let sessions = schema.table("sessions");
    for half in [
        "SET parent_audience = NULL WHERE parent_id IS NOT NULL",
        "SET parent_id = NULL WHERE parent_id IS NOT NULL",
        "SET parent_audience = 'urn:half' WHERE parent_id IS NULL",
    ] {
        let result = connection
            .execute(&*format!("UPDATE {sessions} {half}"))
            .await;
        assert!(result.is_err(), "{half}: {result:?}");
    }
    assert_eq!(
        store.session_by_id(&child.id).await.unwrap(),
        Some(child.clone())
    );
    assert_eq!(store.session_by_id(&parent.id).await.unwrap(), Some(parent));

    connection
        .execute(&*format!(
            "UPDATE {sessions} SET parent_id = 'not a session id' WHERE parent_id IS NOT NULL"
        ))
        .await
        .unwrap();
    let result = store.session_by_id(&child.id).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    store.close().await;
}
