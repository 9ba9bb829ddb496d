//! [`PgStore`]: users, sessions, the revocation log, the login throttle, refresh-token chains,
//! signing keys, API clients and downstream services in PostgreSQL — durable, and shared by any number of
//! instances.
//!
//! The schema lives in `migrations-postgres/`, embedded in the binary and applied on connect.
//! Times are BIGINT milliseconds since the Unix epoch (key times are seconds, as JOSE has
//! them); sessions and refresh tokens are keyed by the SHA-256 of their token, never the
//! token, and API clients keep only the SHA-256 of their secret.
//!
//! Every statement runs under a server-side `statement_timeout` and `lock_timeout`, and every
//! operation under a client-side deadline, so a wedged, locked or unreachable database
//! answers [`StoreError::Unavailable`] within about a second instead of holding callers.
//! Revocations also notify: see [`PgStore::revocation_channel`].
//!
//! Each store trait has a module of its own; rows are decoded and errors mapped by the `sql`
//! module shared with SQLite.

mod audit;
mod clients;
mod keys;
mod notify;
mod refresh;
mod revocation_log;
mod services;
mod sessions;
mod throttle;
mod users;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use tessera_core::StoreError;

pub use notify::PgSubscription;

use crate::sql::{millis, unavailable};

/// How a [`PgStore`] uses its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Connections in the pool.
    /// Defaults to `16`.
    pub max_connections: u32,
    /// How long an operation waits for a pooled connection (including opening a new one)
    /// before failing with [`StoreError::Unavailable`]. Short, so callers fail closed instead
    /// of piling up behind a wedged database.
    /// Defaults to `1s`.
    pub acquire_timeout: Duration,
    /// How long [`PgStore::connect`] and [`PgStore::subscribe`](tessera_core::RevocationNotifier::subscribe)
    /// may take to open their connection.
    /// Defaults to `1s`.
    pub connect_timeout: Duration,
    /// How long one statement may run, or wait for a lock, before the server cancels it
    /// (PostgreSQL's `statement_timeout` and `lock_timeout`, set on every connection).
    /// Together with `acquire_timeout` it also bounds, on the client,
    /// how long any operation waits for the server at all, so a frozen server or a lost
    /// network fails the same way. Zero means no limit, as in PostgreSQL.
    /// Defaults to `1s`.
    pub statement_timeout: Duration,
    /// The schema holding Tessera's tables. When set, it is created if missing and is the
    /// `search_path` of every connection, so several deployments (or tests) can share one
    /// database. When `None`, the tables go where the connection's own `search_path` puts
    /// them (usually `public`).
    /// Defaults to `None`.
    pub schema: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(1),
            schema: None,
        }
    }
}

/// Users, sessions, the revocation log, login-failure counters, refresh-token chains, signing
/// keys, API clients and downstream services in a PostgreSQL database.
///
/// Implements [`UserStore`](tessera_core::UserStore),
/// [`SessionStore`](tessera_core::SessionStore),
/// [`LoginThrottle`](tessera_core::LoginThrottle), [`RefreshStore`](tessera_core::RefreshStore),
/// [`KeyStore`](tessera_core::KeyStore), [`ClientStore`](tessera_core::ClientStore),
/// [`ServiceStore`](tessera_core::ServiceStore),
/// [`RevocationLog`](tessera_core::RevocationLog) — the durable log a Redis session store
/// writes to, sharing one log (table and sequence) with this store's own sessions —,
/// [`AuditStore`](tessera_core::AuditStore) (whose events its audited changes write in the
/// same statement) and [`RevocationNotifier`](tessera_core::RevocationNotifier) over
/// `LISTEN`/`NOTIFY`. Cheap to
/// clone; clones share the connection pool.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    shared: Arc<Shared>,
}

/// What every clone of one store shares besides the pool.
#[derive(Debug)]
struct Shared {
    /// The `NOTIFY` channel of this store's revocation log.
    channel: String,
    /// The client-side bound on one operation; `None` when statements are unbounded.
    deadline: Option<Duration>,
    connect_timeout: Duration,
    /// Failures recorded through this pool; every so many, closed throttle windows are pruned.
    failures_recorded: AtomicU64,
}

// By hand: the connect options (which the pool keeps) hold the password.
impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool)
            .field("channel", &self.shared.channel)
            .finish_non_exhaustive()
    }
}

static MIGRATOR: Migrator = sqlx::migrate!("./migrations-postgres");

/// How long [`PgStore::connect`] may take to bring the schema up to date, waiting for another
/// instance that is migrating the same database included.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(60);

/// How much longer than the statement timeout the client waits for an answer: an alive
/// server's own timeout should win, because it answers cleanly and leaves the connection
/// usable.
const CLIENT_MARGIN: Duration = Duration::from_millis(250);

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`),
    /// creates `options.schema` if it is set and missing, and brings the schema up to date.
    ///
    /// Fails with [`StoreError::Unavailable`] if no connection opens within
    /// `options.connect_timeout`, the URL is malformed, or the migrations fail or take more
    /// than a minute (waiting for other instances' included).
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let connect = connect_options(url, &options, options.statement_timeout)?;
        let setup = connect_options(url, &options, MIGRATION_TIMEOUT)?;
        // One connection of its own first: it fails fast with the real cause (a refused
        // connection, a wrong password) where a pool would retry until it timed out.
        let mut first = bounded(
            options.connect_timeout,
            PgConnection::connect_with(&connect),
        )
        .await?
        .map_err(unavailable)?;
        if let Some(schema) = &options.schema {
            create_schema(&mut first, schema).await?;
        }
        migrate(setup, options.connect_timeout).await?;
        // Resolved like every query's `revocations`, through the search path.
        let channel: String = sqlx::query_scalar(
            "SELECT revocation_channel(n.nspname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = 'revocations'::regclass",
        )
        .fetch_one(&mut first)
        .await
        .map_err(unavailable)?;
        first.close().await.map_err(unavailable)?;

        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // sqlx already checks each connection when it comes back to the pool; checking
            // again before every use would add a round trip to every session validation.
            // The cost: after a database restart, the first use of each idle connection
            // fails once (and callers fail closed).
            .test_before_acquire(false)
            .connect_lazy_with(connect);
        let deadline = (!options.statement_timeout.is_zero())
            .then(|| options.acquire_timeout + options.statement_timeout + CLIENT_MARGIN);
        tracing::debug!(schema = ?options.schema, %channel, "connected PostgreSQL store");
        Ok(PgStore {
            pool,
            shared: Arc::new(Shared {
                channel,
                deadline,
                connect_timeout: options.connect_timeout,
                failures_recorded: AtomicU64::new(0),
            }),
        })
    }

    /// Closes every pooled connection and waits until they are closed; later calls fail with
    /// [`StoreError::Unavailable`]. Affects every clone. Open subscriptions have connections
    /// of their own and end when dropped.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The `NOTIFY` channel a trigger signals after every statement that adds to this store's
    /// revocation log: `tessera_revocations:` and the schema name (its MD5 when that would
    /// be longer than PostgreSQL's 63-byte limit).
    pub fn revocation_channel(&self) -> &str {
        &self.shared.channel
    }

    /// Runs one operation under the client-side deadline.
    async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.shared.deadline {
            Some(deadline) => bounded(deadline, operation).await?,
            None => operation.await,
        }
    }
}

/// `url` with Tessera's session settings added, statements limited to `statement_timeout`.
fn connect_options(
    url: &str,
    options: &PgOptions,
    statement_timeout: Duration,
) -> Result<PgConnectOptions, StoreError> {
    let mut connect: PgConnectOptions = url.parse().map_err(StoreError::unavailable)?;
    if connect.get_application_name().is_none() {
        // Names the connections in `pg_stat_activity`.
        connect = connect.application_name("tessera");
    }
    let timeout = format!("{}ms", millis(statement_timeout));
    connect = connect.options([("statement_timeout", &timeout), ("lock_timeout", &timeout)]);
    if let Some(schema) = &options.schema {
        connect = connect.options([("search_path", startup_option(&quote_identifier(schema)))]);
    }
    Ok(connect)
}

/// Applies the migrations not applied yet, over a connection made with `setup`, within
/// [`MIGRATION_TIMEOUT`].
///
/// sqlx makes instances that start together take turns (with an advisory lock on the
/// database), and a migration may rewrite a table, so migrations get a limit of their own
/// instead of the statement timeout. Through a pool of one because sqlx's migrator run over
/// a bare connection makes `connect`'s future lose `Send`.
async fn migrate(setup: PgConnectOptions, connect_timeout: Duration) -> Result<(), StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(connect_timeout)
        .connect_lazy_with(setup);
    let result = bounded(MIGRATION_TIMEOUT, MIGRATOR.run(&pool))
        .await
        .and_then(|result| result.map_err(StoreError::unavailable));
    pool.close().await;
    result
}

/// Creates `schema` unless it exists. Looks first, so a role that may not create schemas can
/// still use one made for it.
async fn create_schema(connection: &mut PgConnection, schema: &str) -> Result<(), StoreError> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *connection)
            .await
            .map_err(unavailable)?;
    if exists {
        return Ok(());
    }
    let created = sqlx::query(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        quote_identifier(schema)
    ))
    .execute(&mut *connection)
    .await;
    match created {
        // Another instance created it between the look and the create.
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(()),
        other => other.map(drop).map_err(unavailable),
    }
}

/// `name` as a quoted SQL identifier.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` escaped for the `options` startup parameter, which splits on whitespace and takes
/// a backslash as escaping the next character.
fn startup_option(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\\' || c.is_whitespace() {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// `operation`, or [`StoreError::Unavailable`] if it takes longer than `limit`.
async fn bounded<T>(limit: Duration, operation: impl Future<Output = T>) -> Result<T, StoreError> {
    tokio::time::timeout(limit, operation)
        .await
        .map_err(|_| StoreError::unavailable(NoAnswer { waited: limit }))
}

/// The database did not answer in time.
#[derive(Debug)]
struct NoAnswer {
    waited: Duration,
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL did not answer within {:?}", self.waited)
    }
}

impl std::error::Error for NoAnswer {}
