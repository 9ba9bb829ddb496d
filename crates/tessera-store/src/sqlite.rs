//! [`SqliteStore`]: users, sessions, the revocation log, the login throttle, refresh-token
//! chains, signing keys, API clients and downstream services in one SQLite file — durable, and enough for a single
//! instance (or several sharing one host's disk).
//!
//! The schema lives in `migrations/`, embedded in the binary and applied on open. Times are
//! INTEGER milliseconds since the Unix epoch (key times are seconds, as JOSE has them);
//! sessions and refresh tokens are keyed by the SHA-256 of their token, never the token, and
//! API clients keep only the SHA-256 of their secret. Each store trait has a module of its
//! own; rows are decoded and errors mapped by the `sql` module shared with PostgreSQL.

mod audit;
mod clients;
mod keys;
mod refresh;
mod revocation_log;
mod services;
mod sessions;
mod throttle;
mod users;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tessera_core::StoreError;

use crate::sql::unavailable;

/// How a [`SqliteStore`] uses its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Connections in the pool. SQLite runs one writer at a time but, in WAL mode, readers
    /// alongside it. Defaults to `8`.
    pub max_connections: u32,
    /// How long an operation waits for a free connection before failing with
    /// [`StoreError::Unavailable`]. Short, so a wedged database answers fast and callers fail
    /// closed instead of piling up. Defaults to `2s`.
    pub acquire_timeout: Duration,
    /// How long a statement waits for another connection's write lock before failing.
    /// Defaults to `2s`.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(2),
            busy_timeout: Duration::from_secs(2),
        }
    }
}

/// Users, sessions, the revocation log, login-failure counters, refresh-token chains, signing
/// keys, API clients and downstream services in a SQLite database.
///
/// Implements [`UserStore`](tessera_core::UserStore),
/// [`SessionStore`](tessera_core::SessionStore), [`LoginThrottle`](tessera_core::LoginThrottle),
/// [`RefreshStore`](tessera_core::RefreshStore), [`KeyStore`](tessera_core::KeyStore),
/// [`ClientStore`](tessera_core::ClientStore), [`ServiceStore`](tessera_core::ServiceStore),
/// [`RevocationLog`](tessera_core::RevocationLog) (the log a Redis session store can write
/// to) and [`AuditStore`](tessera_core::AuditStore) (whose events its audited changes write
/// in their own transactions), so throttle counters, keys and clients survive restarts too. Cheap to clone; clones
/// share the connection pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Failures recorded through this pool; every so many, closed throttle windows are pruned.
    failures_recorded: Arc<AtomicU64>,
}

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

impl SqliteStore {
    /// Opens the database at `path` with [`SqliteOptions::default`]; see
    /// [`SqliteStore::open_with`].
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, SqliteOptions::default()).await
    }

    /// Opens the database at `path`, creating it and its parent directories if missing, and
    /// brings its schema up to date.
    pub async fn open_with(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            // Blocking, but once at startup, before the store serves anything.
            std::fs::create_dir_all(parent).map_err(StoreError::unavailable)?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode the default NORMAL survives a process crash but can lose the last
            // commits to a power or OS failure. A lost revocation would bring a logged-out
            // session back, and a lost account would vanish after its owner was told it
            // exists, so every commit is synced before it is acknowledged.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let pool = open_pool(connect, &options).await?;
        tracing::debug!(path = %path.display(), "opened SQLite store");
        Ok(SqliteStore {
            pool,
            failures_recorded: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Closes every connection and waits until they are closed; later calls fail with
    /// [`StoreError::Unavailable`]. Affects every clone.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Writes a consistent copy of the whole database into `destination`, while it serves.
    ///
    /// Uses SQLite's `VACUUM INTO`, which reads inside one transaction (so the copy is one
    /// point in time, commits in the WAL included, however busy the writers are) and writes a
    /// compact, self-contained file — unlike a copy of the database file, which misses or
    /// tears whatever the WAL still holds. `destination` must not exist or must be an empty
    /// file; the caller creates it with the permissions it wants, since the copy holds the
    /// private signing keys.
    pub async fn backup_into(&self, destination: &Path) -> Result<(), StoreError> {
        let destination = destination.to_str().ok_or_else(|| {
            StoreError::unavailable(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the backup path is not valid UTF-8",
            ))
        })?;
        sqlx::query("VACUUM INTO ?")
            .bind(destination)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Starts a transaction that holds the write lock from its first statement, so it waits
    /// (up to the busy timeout) instead of failing when another writer is busy.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)
    }
}

/// Connects and brings the schema up to date, tolerating other processes that open the same
/// new file at the same moment.
///
/// Two first starts race in two places: switching a fresh file to WAL needs an exclusive lock
/// that SQLite refuses at once (`SQLITE_BUSY`, no busy wait), and sqlx does not lock SQLite
/// during migrations, so both can read "migration N not applied" and the slower one fails on
/// `CREATE TABLE`. Each migration commits atomically with its bookkeeping row, so starting
/// over after such a failure finds the work done and moves on; a real error fails every
/// attempt.
async fn open_pool(
    connect: SqliteConnectOptions,
    options: &SqliteOptions,
) -> Result<SqlitePool, StoreError> {
    const ATTEMPTS: u32 = 8;
    let mut attempt = 1;
    loop {
        let opened = async {
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(options.acquire_timeout)
                // A local file does not drop connections the way a network peer does;
                // skipping the check saves a round trip on every query.
                .test_before_acquire(false)
                .connect_with(connect.clone())
                .await
                .map_err(StoreError::unavailable)?;
            match MIGRATOR.run(&pool).await {
                Ok(()) => Ok(pool),
                Err(error) => {
                    pool.close().await;
                    Err(StoreError::unavailable(error))
                }
            }
        }
        .await;
        match opened {
            Ok(pool) => return Ok(pool),
            Err(error) if attempt < ATTEMPTS => {
                tracing::debug!(%error, attempt, "opening raced another process; retrying");
                tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}
