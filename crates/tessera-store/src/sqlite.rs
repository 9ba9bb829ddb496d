//! [`SqliteStore`]: users, sessions, the revocation log, the login throttle, refresh-token
//! chains, signing keys and API clients in one SQLite file — durable, and enough for a single instance (or
//! several sharing one host's disk).
//!
//! The schema lives in `migrations/`, embedded in the binary and applied on open. Times are
//! INTEGER milliseconds since the Unix epoch (key times are seconds, as JOSE has them);
//! sessions and refresh tokens are keyed by the SHA-256 of their token, never the token, and
//! API clients keep only the SHA-256 of their secret.

mod clients;
mod keys;
mod refresh;
mod revocation_log;
mod throttle;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row as _, Sqlite, Transaction};
use tessera_core::{
    Revocation, SessionId, SessionRecord, SessionStore, SessionVerifier, StoreError, Timestamp,
    Transport, User, UserId, UserRecord, UserStore, Username,
};

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
/// keys and API clients in a SQLite database.
///
/// Implements [`UserStore`], [`SessionStore`], [`LoginThrottle`](tessera_core::LoginThrottle),
/// [`RefreshStore`](tessera_core::RefreshStore), [`KeyStore`](tessera_core::KeyStore) and
/// [`ClientStore`](tessera_core::ClientStore), so throttle counters, keys and clients survive
/// restarts too. Cheap to clone; clones share the
/// connection pool.
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

    /// Starts a transaction that holds the write lock from its first statement, so it waits
    /// (up to the busy timeout) instead of failing when another writer is busy.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)
    }
}

/// A row the database returned but this code cannot make sense of.
#[derive(Debug)]
struct MalformedRow {
    column: &'static str,
}

impl fmt::Display for MalformedRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed `{}` column", self.column)
    }
}

impl std::error::Error for MalformedRow {}

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

fn malformed(column: &'static str) -> StoreError {
    StoreError::corrupt(MalformedRow { column })
}

/// Any failure of a query: a value that will not decode is [`StoreError::Corrupt`], the rest
/// [`StoreError::Unavailable`].
fn unavailable(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => StoreError::corrupt(error),
        other => StoreError::unavailable(other),
    }
}

/// A failed insert: a unique key already taken is [`StoreError::Conflict`].
fn conflict_or_unavailable(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(database) if database.is_unique_violation() => StoreError::Conflict,
        _ => unavailable(error),
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Binds a `usize` limit; SQLite's integers are signed.
fn limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn user_from_row(row: &SqliteRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        user: User {
            id: UserId::parse(row.try_get("id").map_err(unavailable)?)
                .map_err(StoreError::corrupt)?,
            username: row.try_get("username").map_err(unavailable)?,
            created_at: Timestamp::from_unix_millis(
                row.try_get("created_at").map_err(unavailable)?,
            ),
        },
        password_hash: row.try_get("password_hash").map_err(unavailable)?,
    })
}

macro_rules! session_columns {
    () => {
        "id, verifier, user_id, transport, created_at, last_seen_at, idle_expires_at, \
         expires_at, ip, user_agent, revoked_at"
    };
}

fn session_from_row(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
    let time = |column| {
        row.try_get(column)
            .map(Timestamp::from_unix_millis)
            .map_err(unavailable)
    };
    let verifier: &[u8] = row.try_get("verifier").map_err(unavailable)?;
    let verifier = <[u8; 16]>::try_from(verifier).map_err(|_| malformed("verifier"))?;
    let transport: &str = row.try_get("transport").map_err(unavailable)?;
    let revoked_at: Option<i64> = row.try_get("revoked_at").map_err(unavailable)?;
    Ok(SessionRecord {
        id: SessionId::parse(row.try_get("id").map_err(unavailable)?)
            .map_err(StoreError::corrupt)?,
        verifier: SessionVerifier::from_bytes(verifier),
        user_id: UserId::parse(row.try_get("user_id").map_err(unavailable)?)
            .map_err(StoreError::corrupt)?,
        transport: Transport::parse(transport).ok_or_else(|| malformed("transport"))?,
        created_at: time("created_at")?,
        last_seen_at: time("last_seen_at")?,
        idle_expires_at: time("idle_expires_at")?,
        expires_at: time("expires_at")?,
        ip: row.try_get("ip").map_err(unavailable)?,
        user_agent: row.try_get("user_agent").map_err(unavailable)?,
        revoked_at: revoked_at.map(Timestamp::from_unix_millis),
    })
}

fn revocation_from_row(row: &SqliteRow) -> Result<Revocation, StoreError> {
    let sequence: i64 = row.try_get("sequence").map_err(unavailable)?;
    Ok(Revocation {
        sequence: u64::try_from(sequence).map_err(|_| malformed("sequence"))?,
        session_id: SessionId::parse(row.try_get("session_id").map_err(unavailable)?)
            .map_err(StoreError::corrupt)?,
        user_id: UserId::parse(row.try_get("user_id").map_err(unavailable)?)
            .map_err(StoreError::corrupt)?,
        revoked_at: Timestamp::from_unix_millis(row.try_get("revoked_at").map_err(unavailable)?),
    })
}

/// Appends one entry to the revocation log, inside the caller's transaction.
async fn log_revocation(
    tx: &mut Transaction<'static, Sqlite>,
    session_id: &str,
    user_id: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO revocations (session_id, user_id, revoked_at) VALUES (?1, ?2, ?3)")
        .bind(session_id)
        .bind(user_id)
        .bind(now.unix_millis())
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(
        &self,
        username: &Username,
        record: &UserRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username_key, username, password_hash, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(record.user.id.as_str())
        .bind(username.key())
        .bind(&record.user.username)
        .bind(&record.password_hash)
        .bind(record.user.created_at.unix_millis())
        .execute(&self.pool)
        .await
        .map_err(conflict_or_unavailable)?;
        Ok(())
    }

    async fn user_by_username(&self, username_key: &str) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query(
            "SELECT id, username, password_hash, created_at FROM users WHERE username_key = ?1",
        )
        .bind(username_key)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query("SELECT id, username, password_hash, created_at FROM users WHERE id = ?1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        sqlx::query(
            "SELECT id, username, password_hash, created_at FROM users \
             ORDER BY created_at, rowid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(|row| user_from_row(row).map(|record| record.user))
        .collect()
    }

    async fn set_password_hash(
        &self,
        id: &UserId,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE users SET password_hash = ?2 WHERE id = ?1")
            .bind(id.as_str())
            .bind(password_hash)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM users WHERE id = ?1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(result.rows_affected() == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO sessions (",
            session_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))
        .bind(record.id.as_str())
        .bind(&record.verifier.as_bytes()[..])
        .bind(record.user_id.as_str())
        .bind(record.transport.as_str())
        .bind(record.created_at.unix_millis())
        .bind(record.last_seen_at.unix_millis())
        .bind(record.idle_expires_at.unix_millis())
        .bind(record.expires_at.unix_millis())
        .bind(record.ip.as_deref())
        .bind(record.user_agent.as_deref())
        .bind(record.revoked_at.map(Timestamp::unix_millis))
        .execute(&self.pool)
        .await
        .map_err(conflict_or_unavailable)?;
        Ok(())
    }

    async fn session_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = ?1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        .as_ref()
        .map(session_from_row)
        .transpose()
    }

    async fn touch_session(
        &self,
        id: &SessionId,
        seen: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        // One conditional statement: SQLite runs it under the write lock, so it cannot
        // interleave with a revocation and can never clear `revoked_at`.
        let result = sqlx::query(
            "UPDATE sessions SET last_seen_at = ?2, idle_expires_at = ?3 \
             WHERE id = ?1 AND revoked_at IS NULL AND last_seen_at < ?2",
        )
        .bind(id.as_str())
        .bind(seen.unix_millis())
        .bind(idle_expires_at.unix_millis())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(result.rows_affected() == 1)
    }

    async fn sessions_of_user(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL",
            " AND idle_expires_at > ?2 AND expires_at > ?2",
            " ORDER BY created_at DESC, id DESC"
        ))
        .bind(user_id.as_str())
        .bind(now.unix_millis())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(session_from_row)
        .collect()
    }

    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let user_id: Option<String> = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL \
             RETURNING user_id",
        )
        .bind(id.as_str())
        .bind(now.unix_millis())
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        if let Some(user_id) = &user_id {
            log_revocation(&mut tx, id.as_str(), user_id, now).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(user_id.is_some())
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let mut tx = self.begin_write().await?;
        // `id IS NOT NULL` holds for every row, so no `keep` keeps nothing.
        let revoked: Vec<String> = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = ?3 \
             WHERE user_id = ?1 AND revoked_at IS NULL AND id IS NOT ?2 RETURNING id",
        )
        .bind(user_id.as_str())
        .bind(keep.map(SessionId::as_str))
        .bind(now.unix_millis())
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let mut ids = Vec::with_capacity(revoked.len());
        for id in &revoked {
            // A malformed id fails the whole call and the transaction rolls back on drop.
            ids.push(SessionId::parse(id).map_err(StoreError::corrupt)?);
            log_revocation(&mut tx, id, user_id.as_str(), now).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(ids)
    }

    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Revocation>, StoreError> {
        // Sequences are positive `i64`s, so nothing lies beyond `i64::MAX`.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        sqlx::query(
            "SELECT sequence, session_id, user_id, revoked_at FROM revocations \
             WHERE sequence > ?1 ORDER BY sequence LIMIT ?2",
        )
        .bind(after)
        .bind(self::limit(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(revocation_from_row)
        .collect()
    }

    async fn revocation_cursor(&self) -> Result<u64, StoreError> {
        // AUTOINCREMENT keeps the highest sequence ever assigned in `sqlite_sequence`, which
        // trimming the log does not lower.
        let cursor: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'revocations'")
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        u64::try_from(cursor.unwrap_or(0)).map_err(|_| malformed("seq"))
    }

    async fn purge_expired(
        &self,
        now: Timestamp,
        revocation_retention: Duration,
        limit: usize,
    ) -> Result<u64, StoreError> {
        // A session has ended once `now` reaches the earlier of its expiries: exactly when
        // `SessionRecord::is_live` turns false for good, so no live session matches.
        // Revoked sessions go at the same point; until then a presented token still finds
        // its (revoked) record. The revocation log is trimmed on its own schedule below.
        // Refresh rows stay: none expires after its session's absolute expiry, so
        // `purge_refresh` clears them by expiry alone.
        let sessions = sqlx::query(
            "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions \
             WHERE min(idle_expires_at, expires_at) <= ?1 LIMIT ?2)",
        )
        .bind(now.unix_millis())
        .bind(self::limit(limit))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        let cutoff = now
            .unix_millis()
            .saturating_sub(millis(revocation_retention));
        let revocations = sqlx::query(
            "DELETE FROM revocations WHERE sequence IN (SELECT sequence FROM revocations \
             WHERE revoked_at < ?1 LIMIT ?2)",
        )
        .bind(cutoff)
        .bind(self::limit(limit))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(sessions.rows_affected() + revocations.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        UserStore::ping(self).await
    }
}
