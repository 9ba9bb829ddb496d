//! How session look-ups and the storage a session takes behave as the Redis and PostgreSQL
//! session stores grow from ten thousand to a million sessions.
//!
//! (One file on purpose, though long: an example is one program a reader follows from top to
//! bottom — it fills, measures and cleans up two stores at three sizes.)
//!
//! Run (release: the program generates and hashes a million records):
//!
//! ```text
//! cargo run --release -p tessera-store --features redis,postgres --example scaling -- [MAX]
//! ```
//!
//! `MAX` (default 1000000) is the largest size; the sizes are 10,000, 100,000 and 1,000,000
//! up to it (and `MAX` itself if it is none of those). Redis is read from
//! `TESSERA_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), PostgreSQL from
//! `TESSERA_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), as
//! in the stores' tests. Each store gets a random key prefix (`sc` and five random characters,
//! as long as the default `tessera:`) or schema of its own, deleted or dropped at the end,
//! also after an error, a panic or Ctrl-C.
//!
//! Each store grows to each size with realistic sessions (a 100-byte user agent, an IPv4
//! address, four sessions per user), then at each size:
//!
//! - **bytes per session**: Redis's `used_memory` now minus before the first insert, over the
//!   sessions; PostgreSQL's `pg_total_relation_size` of `sessions` (heap, TOAST and every
//!   index) over its rows. `used_memory` is server-wide, so other clients of a shared Redis
//!   add noise: the program compares `DBSIZE` (of its database) with the keys it wrote and
//!   says when they differ.
//! - **latency**: 20,000 `session_by_id` calls (what a session token's look-up is: the token
//!   carries the id) on random existing sessions one after another (p50, p99), then 20,000
//!   with 64 in flight (look-ups per second).
//!
//! Notes after the table break the storage down: Redis's hash tables (`MEMORY STATS`) and
//! one session's keys (`MEMORY USAGE`), PostgreSQL's heap and indexes.
//!
//! Redis sessions go in through `RedisStore::insert_session`, 64 in flight: the real code
//! path. PostgreSQL sessions go in as multi-row `INSERT … SELECT FROM UNNEST(…)` on the
//! store's own table, every column bound as `PgStore::insert_session` binds it (inserting a
//! million one transaction at a time takes too long); a sample is read back through the store
//! and must equal what was generated. After each growth step `VACUUM (ANALYZE)` does what
//! autovacuum would do in a live system before the measurement.
//!
//! Both stores run with their default pools (Redis: one multiplexed connection; PostgreSQL:
//! 16 connections), but with 10 s timeouts instead of 1 s, so a stall on a busy machine shows
//! as a slow percentile instead of ending the run.

use std::error::Error;
use std::fmt::Write as _;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use sqlx::postgres::PgConnection;
use sqlx::{Connection as _, Executor as _};
use tessera_core::{
    Clock as _, RandomnessError, SessionId, SessionRecord, SessionStore, SessionToken, StoreError,
    SystemClock, Timestamp, Transport, UserId,
};
use tessera_store::memory::MemoryStore;
use tessera_store::postgres::{PgOptions, PgStore};
use tessera_store::redis::{RedisOptions, RedisStore};
use tokio::task::JoinSet;

type BoxError = Box<dyn Error>;

const DEFAULT_MAX: usize = 1_000_000;
const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
/// Look-ups timed at each size, sequentially and again concurrently.
const LOOKUPS: usize = 20_000;
/// Requests in flight for the concurrent inserts and look-ups.
const CONCURRENCY: usize = 64;
/// Sessions generated (and, for PostgreSQL, inserted by one statement) at a time.
const BATCH: usize = 10_000;
/// Every this many sessions, one is kept whole to check what the store reads back.
const SAMPLE_EVERY: usize = 10_000;
const SESSIONS_PER_USER: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Real browsers' user agents; each session takes the first 100 characters of one.
const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
     Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) \
     Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like \
     Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0 (compatible; \
     internal-dashboard/2.3)",
];
const USER_AGENT_LEN: usize = 100;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let max = match std::env::args().nth(1) {
        Some(text) => text
            .parse::<usize>()
            .map_err(|error| format!("MAX must be a number of sessions ({text:?}: {error})"))?,
        None => DEFAULT_MAX,
    };
    let sizes = sizes(max);
    let mut report = Report::default();
    let started = Instant::now();

    let redis = redis_benchmark(&redis_url(), &sizes, &mut report).await;
    if let Err(error) = &redis {
        eprintln!("redis: stopped: {}", causes(error.as_ref()));
    }
    let postgres = match &redis {
        Err(error) if error.is::<Interrupted>() => Ok(()),
        _ => postgres_benchmark(&postgres_url(), &sizes, &mut report).await,
    };
    if let Err(error) = &postgres {
        eprintln!("postgres: stopped: {}", causes(error.as_ref()));
    }

    println!("{}", report.markdown());
    println!("Total time: {:.0} s", started.elapsed().as_secs_f64());
    redis.and(postgres)
}

/// The sizes measured up to `max`.
fn sizes(max: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = SIZES.into_iter().filter(|&size| size <= max).collect();
    if max > 0 && sizes.last() != Some(&max) {
        sizes.push(max);
    }
    sizes
}

fn redis_url() -> String {
    std::env::var("TESSERA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn postgres_url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Runs `work`, then `cleanup` whatever happened, Ctrl-C and panics included (a panic is
/// reported as an error once the shared stores are clean); the first error wins.
async fn with_cleanup<C>(
    work: impl Future<Output = Result<(), BoxError>>,
    cleanup: C,
) -> Result<(), BoxError>
where
    C: Future<Output = Result<(), BoxError>>,
{
    let work = AssertUnwindSafe(work).catch_unwind();
    let outcome = tokio::select! {
        outcome = work => outcome.unwrap_or_else(|panic| Err(Panicked(panic_text(&panic)).into())),
        _ = tokio::signal::ctrl_c() => Err(Interrupted.into()),
    };
    let cleaned = cleanup.await;
    if let (Err(_), Err(error)) = (&outcome, &cleaned) {
        eprintln!("clean-up failed too: {}", causes(error.as_ref()));
    }
    outcome.and(cleaned)
}

/// Ctrl-C: the run stops once the store at hand is cleaned up.
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl Error for Interrupted {}

/// The work panicked (its message, when it had one); the clean-up ran anyway.
#[derive(Debug)]
struct Panicked(String);

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "panicked: {}", self.0)
    }
}

impl Error for Panicked {}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Redis

async fn redis_benchmark(url: &str, sizes: &[usize], report: &mut Report) -> Result<(), BoxError> {
    // As long as the default `tessera:`, since every session has 2¼ keys: a longer prefix
    // would add to the bytes measured. Base64url characters hold no glob character.
    let random: String = SessionId::generate()?.as_str().chars().take(5).collect();
    let prefix = format!("sc{random}:");
    eprintln!("redis: key prefix {prefix}");
    with_cleanup(
        redis_grow(url, &prefix, sizes, report),
        delete_keys(url, &prefix),
    )
    .await
}

async fn redis_grow(
    url: &str,
    prefix: &str,
    sizes: &[usize],
    report: &mut Report,
) -> Result<(), BoxError> {
    let options = RedisOptions {
        prefix: prefix.to_owned(),
        command_timeout: TIMEOUT,
        connect_timeout: TIMEOUT,
        ..RedisOptions::default()
    };
    // No revocation happens here, so the log is never written.
    let store = RedisStore::connect(url, options, Arc::new(MemoryStore::new())).await?;
    let store: Arc<dyn SessionStore> = Arc::new(store);
    let mut info = redis_connection(url).await?;
    let memory_before = used_memory(&mut info).await?;
    let tables_before = hash_table_bytes(&mut info).await?;
    let keys_before: u64 = redis::cmd("DBSIZE").query_async(&mut info).await?;

    let mut generator = Generator::new()?;
    let mut ids = Vec::new();
    let mut samples = Vec::new();
    for &size in sizes {
        let (started, before) = (Instant::now(), ids.len());
        while ids.len() < size {
            let batch = generator.batch(size - ids.len())?;
            keep_ids_and_samples(&batch, &mut ids, &mut samples);
            insert_concurrently(&store, batch).await?;
        }
        let growth = started.elapsed();
        eprintln!(
            "redis: {} sessions, grown in {:.1} s ({:.0} inserts/s through the store)",
            thousands(size),
            growth.as_secs_f64(),
            (size - before) as f64 / growth.as_secs_f64()
        );

        let memory = used_memory(&mut info).await?;
        let keys: u64 = redis::cmd("DBSIZE").query_async(&mut info).await?;
        // A session key per session, a user index per four sessions, and one key per
        // distinct user agent.
        let expected_keys = size + size.div_ceil(SESSIONS_PER_USER) + USER_AGENTS.len().min(size);
        let foreign_keys = i128::from(keys) - i128::from(keys_before) - expected_keys as i128;
        if foreign_keys != 0 {
            report.note(format!(
                "Redis at {}: other clients changed the key count by {foreign_keys:+} meanwhile; \
                 `used_memory` includes what they wrote.",
                thousands(size)
            ));
        }
        let bytes_per_session = (memory as f64 - memory_before as f64) / size as f64;
        let tables = hash_table_bytes(&mut info).await? - tables_before;
        report.note(format!(
            "Redis at {}: {:.0} B per session are the keyspace and expiry hash tables (entries \
             and power-of-two bucket arrays; while a table doubles it holds both arrays).",
            thousands(size),
            tables as f64 / size as f64
        ));
        verify_samples(store.as_ref(), &samples).await?;
        let lookups = measure_lookups(&store, &ids, &mut generator.random).await?;
        let row = Row {
            store: "Redis",
            sessions: size,
            bytes_per_session,
            lookups,
        };
        eprintln!("redis: {}", row.markdown());
        report.rows.push(row);
    }
    if let Some(sample) = samples.first() {
        report.note(redis_key_sizes(&mut info, prefix, sample).await?);
    }
    Ok(())
}

/// Inserts `batch` through the store, `CONCURRENCY` at a time.
async fn insert_concurrently(
    store: &Arc<dyn SessionStore>,
    batch: Vec<SessionRecord>,
) -> Result<(), BoxError> {
    let batch = Arc::new(batch);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (store, batch, next) = (Arc::clone(store), Arc::clone(&batch), Arc::clone(&next));
        workers.spawn(async move {
            while let Some(record) = batch.get(next.fetch_add(1, Ordering::Relaxed)) {
                store.insert_session(record).await?;
            }
            Ok::<_, StoreError>(())
        });
    }
    while let Some(worker) = workers.join_next().await {
        worker??;
    }
    Ok(())
}

async fn used_memory(connection: &mut redis::aio::MultiplexedConnection) -> Result<u64, BoxError> {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(connection)
        .await?;
    let value = info
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .ok_or("`INFO memory` has no `used_memory`")?;
    Ok(value.trim().parse()?)
}

/// What `MEMORY STATS` counts for the keyspace and expiry hash tables of every database.
async fn hash_table_bytes(
    connection: &mut redis::aio::MultiplexedConnection,
) -> Result<i64, BoxError> {
    let stats: redis::Value = redis::cmd("MEMORY")
        .arg("STATS")
        .query_async(connection)
        .await?;
    Ok(sum_hash_tables(&stats))
}

/// Sums the `overhead.hashtable.main` and `.expires` fields of `MEMORY STATS`, which sit in
/// the nested `db.N` maps (name, value, name, value, …).
fn sum_hash_tables(stats: &redis::Value) -> i64 {
    let redis::Value::Array(fields) = stats else {
        return 0;
    };
    fields
        .chunks(2)
        .map(|field| match field {
            [redis::Value::BulkString(name), redis::Value::Int(bytes)]
                if name == b"overhead.hashtable.main" || name == b"overhead.hashtable.expires" =>
            {
                *bytes
            }
            [_, nested @ redis::Value::Array(_)] => sum_hash_tables(nested),
            _ => 0,
        })
        .sum()
}

/// What `MEMORY USAGE` says one session's keys take (it leaves out the expiry table).
async fn redis_key_sizes(
    connection: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    sample: &SessionRecord,
) -> Result<String, BoxError> {
    let key = |tag: u8, id: &[u8]| [prefix.as_bytes(), &[tag], id].concat();
    let mut sizes = Vec::new();
    for key in [
        key(b's', &sample.id.to_bytes()),
        key(b'u', &sample.user_id.to_bytes()),
    ] {
        let size: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query_async(connection)
            .await?;
        sizes.push(size.map_or_else(|| "gone".to_owned(), |size| size.to_string()));
    }
    Ok(format!(
        "Redis `MEMORY USAGE` of one session's keys: session {} B, user index ({} sessions) \
         {} B; each also has an entry in the expiry table (the user agent texts, one key per \
         distinct text, are shared by all sessions).",
        sizes[0], SESSIONS_PER_USER, sizes[1]
    ))
}

/// A connection of the program's own, with its timeouts: the client's default answer
/// timeout (500 ms) is exceeded on a loaded machine, and once left millions of keys behind.
async fn redis_connection(url: &str) -> Result<redis::aio::MultiplexedConnection, BoxError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT));
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// Deletes every key under `prefix` and checks none is left, trying three times (deleting is
/// idempotent).
async fn delete_keys(url: &str, prefix: &str) -> Result<(), BoxError> {
    let mut attempt = 1;
    loop {
        match delete_keys_once(url, prefix).await {
            Ok(deleted) => {
                eprintln!("redis: deleted {} keys under {prefix}", thousands(deleted));
                return Ok(());
            }
            Err(error) if attempt < 3 => {
                eprintln!(
                    "redis: deleting keys failed ({}); again",
                    causes(error.as_ref())
                );
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => {
                let error = causes(error.as_ref());
                return Err(format!("keys under `{prefix}` may be left behind: {error}").into());
            }
        }
    }
}

async fn delete_keys_once(url: &str, prefix: &str) -> Result<usize, BoxError> {
    let mut connection = redis_connection(url).await?;
    let pattern = format!("{prefix}*");
    let mut deleted = 0;
    for pass in 0..2 {
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1_000)
                .query_async(&mut connection)
                .await?;
            if !keys.is_empty() {
                if pass == 1 {
                    return Err(format!("keys left under {prefix} after deleting").into());
                }
                let _: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await?;
                deleted += keys.len();
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    Ok(deleted)
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

async fn postgres_benchmark(
    url: &str,
    sizes: &[usize],
    report: &mut Report,
) -> Result<(), BoxError> {
    let mut schema = String::from("tessera_scaling_");
    for byte in &SessionToken::generate()?.verifier().as_bytes()[..8] {
        write!(schema, "{byte:02x}")?;
    }
    eprintln!("postgres: schema {schema}");
    with_cleanup(
        postgres_grow(url, &schema, sizes, report),
        drop_schema(url, &schema),
    )
    .await
}

async fn postgres_grow(
    url: &str,
    schema: &str,
    sizes: &[usize],
    report: &mut Report,
) -> Result<(), BoxError> {
    let options = PgOptions {
        schema: Some(schema.to_owned()),
        acquire_timeout: TIMEOUT,
        connect_timeout: TIMEOUT,
        statement_timeout: TIMEOUT,
        ..PgOptions::default()
    };
    let store = PgStore::connect(url, options).await?;
    let outcome = postgres_measure(url, schema, &store, sizes, report).await;
    store.close().await;
    outcome
}

async fn postgres_measure(
    url: &str,
    schema: &str,
    store: &PgStore,
    sizes: &[usize],
    report: &mut Report,
) -> Result<(), BoxError> {
    // The schema name is `tessera_scaling_` and hex digits: nothing to quote inside it.
    let mut connection = PgConnection::connect(url).await?;
    connection
        .execute(&*format!("SET search_path TO \"{schema}\""))
        .await?;
    let store: Arc<dyn SessionStore> = Arc::new(store.clone());

    let mut generator = Generator::new()?;
    let mut ids = Vec::new();
    let mut samples = Vec::new();
    for &size in sizes {
        let (started, before) = (Instant::now(), ids.len());
        while ids.len() < size {
            let batch = generator.batch(size - ids.len())?;
            keep_ids_and_samples(&batch, &mut ids, &mut samples);
            bulk_insert(&mut connection, &batch).await?;
        }
        let growth = started.elapsed();
        connection.execute("VACUUM (ANALYZE) sessions").await?;
        eprintln!(
            "postgres: {} sessions, grown in {:.1} s ({:.0} rows/s by bulk SQL), vacuumed in \
             {:.1} s",
            thousands(size),
            growth.as_secs_f64(),
            (size - before) as f64 / growth.as_secs_f64(),
            (started.elapsed() - growth).as_secs_f64()
        );

        let (total, heap, indexes, rows): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT pg_total_relation_size('sessions'), pg_relation_size('sessions'), \
                    pg_indexes_size('sessions'), (SELECT count(*) FROM sessions)",
        )
        .fetch_one(&mut connection)
        .await?;
        if usize::try_from(rows).ok() != Some(size) {
            return Err(format!("{rows} rows in sessions, expected {size}").into());
        }
        report.note(format!(
            "PostgreSQL at {}: heap {:.0} B + indexes {:.0} B per row (of {:.0} B total).",
            thousands(size),
            heap as f64 / rows as f64,
            indexes as f64 / rows as f64,
            total as f64 / rows as f64
        ));
        verify_samples(store.as_ref(), &samples).await?;
        let lookups = measure_lookups(&store, &ids, &mut generator.random).await?;
        let row = Row {
            store: "PostgreSQL",
            sessions: size,
            bytes_per_session: total as f64 / rows as f64,
            lookups,
        };
        eprintln!("postgres: {}", row.markdown());
        report.rows.push(row);
    }
    connection.close().await?;
    Ok(())
}

/// Inserts `records` with one statement, each column bound exactly as
/// `PgStore::insert_session` binds it, so the store reads them back as its own.
async fn bulk_insert(
    connection: &mut PgConnection,
    records: &[SessionRecord],
) -> Result<(), sqlx::Error> {
    let column = |value: fn(&SessionRecord) -> i64| records.iter().map(value).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO sessions (id, verifier, user_id, transport, created_at, last_seen_at, \
         idle_expires_at, expires_at, ip, user_agent, revoked_at) \
         SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::text[], $4::text[], $5::int8[], \
         $6::int8[], $7::int8[], $8::int8[], $9::text[], $10::text[], $11::int8[])",
    )
    .bind(records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
    .bind(
        records
            .iter()
            .map(|r| &r.verifier.as_bytes()[..])
            .collect::<Vec<_>>(),
    )
    .bind(
        records
            .iter()
            .map(|r| r.user_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        records
            .iter()
            .map(|r| r.transport.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(column(|r| r.created_at.unix_millis()))
    .bind(column(|r| r.last_seen_at.unix_millis()))
    .bind(column(|r| r.idle_expires_at.unix_millis()))
    .bind(column(|r| r.expires_at.unix_millis()))
    .bind(records.iter().map(|r| r.ip.as_deref()).collect::<Vec<_>>())
    .bind(
        records
            .iter()
            .map(|r| r.user_agent.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        records
            .iter()
            .map(|r| r.revoked_at.map(Timestamp::unix_millis))
            .collect::<Vec<_>>(),
    )
    .execute(connection)
    .await?;
    Ok(())
}

/// Drops `schema` with everything in it, and checks it is gone.
async fn drop_schema(url: &str, schema: &str) -> Result<(), BoxError> {
    let mut connection = PgConnection::connect(url).await?;
    connection
        .execute(&*format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut connection)
            .await?;
    connection.close().await?;
    if exists {
        return Err(format!("schema {schema} left behind").into());
    }
    eprintln!("postgres: dropped schema {schema}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Both stores

/// Makes sessions: four per user, a 100-byte user agent, a random IPv4 address.
#[derive(Debug)]
struct Generator {
    random: SplitMix64,
    user_agents: Vec<String>,
    made: usize,
    user: Option<UserId>,
}

impl Generator {
    fn new() -> Result<Generator, RandomnessError> {
        let [b0, b1, b2, b3, b4, b5, b6, b7, ..] = *SessionToken::generate()?.verifier().as_bytes();
        Ok(Generator {
            random: SplitMix64(u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7])),
            user_agents: USER_AGENTS
                .iter()
                .map(|agent| agent.chars().take(USER_AGENT_LEN).collect())
                .collect(),
            made: 0,
            user: None,
        })
    }

    /// Up to `BATCH` sessions, at most `limit`.
    fn batch(&mut self, limit: usize) -> Result<Vec<SessionRecord>, RandomnessError> {
        (0..limit.min(BATCH)).map(|_| self.session()).collect()
    }

    fn session(&mut self) -> Result<SessionRecord, RandomnessError> {
        let user_id = match &self.user {
            Some(user) if !self.made.is_multiple_of(SESSIONS_PER_USER) => user.clone(),
            _ => {
                let user = UserId::generate()?;
                self.user = Some(user.clone());
                user
            }
        };
        self.made += 1;
        let now = SystemClock.now();
        let octets = self.random.next().to_le_bytes();
        let token = SessionToken::generate()?;
        Ok(SessionRecord {
            id: token.session_id(),
            verifier: token.verifier(),
            user_id,
            transport: Transport::Cookie,
            created_at: now,
            auth_time: now,
            last_seen_at: now,
            // Long enough that no session ends (and Redis drops none) during a run.
            idle_expires_at: now.saturating_add(Duration::from_secs(8 * 3600)),
            expires_at: now.saturating_add(Duration::from_secs(30 * 24 * 3600)),
            ip: Some(format!(
                "{}.{}.{}.{}",
                1 + octets[0] % 223,
                octets[1],
                octets[2],
                octets[3]
            )),
            user_agent: Some(self.user_agents[self.made % self.user_agents.len()].clone()),
            revoked_at: None,
            parent: None,
        })
    }
}

fn keep_ids_and_samples(
    batch: &[SessionRecord],
    ids: &mut Vec<SessionId>,
    samples: &mut Vec<SessionRecord>,
) {
    for record in batch {
        if ids.len().is_multiple_of(SAMPLE_EVERY) {
            samples.push(record.clone());
        }
        ids.push(record.id.clone());
    }
}

/// Every sample must read back exactly as generated.
async fn verify_samples(
    store: &dyn SessionStore,
    samples: &[SessionRecord],
) -> Result<(), BoxError> {
    for sample in samples {
        let found = store.session_by_id(&sample.id).await?;
        if found.as_ref() != Some(sample) {
            return Err(format!("session {} read back as {found:?}", sample.id).into());
        }
    }
    Ok(())
}

#[derive(Debug)]
struct Lookups {
    p50: Duration,
    p99: Duration,
    concurrent_per_second: f64,
}

/// `LOOKUPS` look-ups of random tokens one at a time, then `LOOKUPS` with `CONCURRENCY` in
/// flight. Every token must be found.
async fn measure_lookups(
    store: &Arc<dyn SessionStore>,
    tokens: &[SessionId],
    random: &mut SplitMix64,
) -> Result<Lookups, BoxError> {
    let mut pick = |count: usize| -> Vec<SessionId> {
        (0..count)
            .map(|_| tokens[random.below(tokens.len())].clone())
            .collect()
    };
    // Opens the pool's connections and loads the scripts before anything is timed.
    concurrent_lookups(store, pick(CONCURRENCY * 16)).await?;

    let mut latencies = Vec::with_capacity(LOOKUPS);
    for token in pick(LOOKUPS) {
        let started = Instant::now();
        let found = store.session_by_id(&token).await?;
        latencies.push(started.elapsed());
        if found.is_none() {
            return Err(format!("{token:?} not found").into());
        }
    }
    latencies.sort_unstable();

    let started = Instant::now();
    concurrent_lookups(store, pick(LOOKUPS)).await?;
    let elapsed = started.elapsed();
    Ok(Lookups {
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        concurrent_per_second: LOOKUPS as f64 / elapsed.as_secs_f64(),
    })
}

async fn concurrent_lookups(
    store: &Arc<dyn SessionStore>,
    tokens: Vec<SessionId>,
) -> Result<(), BoxError> {
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (store, tokens, next) = (Arc::clone(store), Arc::clone(&tokens), Arc::clone(&next));
        workers.spawn(async move {
            while let Some(token) = tokens.get(next.fetch_add(1, Ordering::Relaxed)) {
                if store.session_by_id(token).await?.is_none() {
                    return Ok(Some(token.clone()));
                }
            }
            Ok::<_, StoreError>(None)
        });
    }
    while let Some(worker) = workers.join_next().await {
        if let Some(token) = worker?? {
            return Err(format!("{token:?} not found").into());
        }
    }
    Ok(())
}

/// The `q` quantile of sorted `latencies` (nearest rank).
fn percentile(latencies: &[Duration], q: f64) -> Duration {
    let rank = (q * latencies.len() as f64).ceil() as usize;
    latencies
        .get(rank.saturating_sub(1))
        .copied()
        .unwrap_or_default()
}

/// SplitMix64: picks random tokens and addresses; no cryptographic quality needed.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `bound` (the modulo bias is negligible for these bounds).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Output

#[derive(Debug, Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

#[derive(Debug)]
struct Row {
    store: &'static str,
    sessions: usize,
    bytes_per_session: f64,
    lookups: Lookups,
}

impl Report {
    fn note(&mut self, note: String) {
        eprintln!("note: {note}");
        self.notes.push(note);
    }

    fn markdown(&self) -> String {
        let mut text = String::from(
            "| store | sessions | bytes per session | p50 µs | p99 µs | lookups/s at 64 \
             concurrent |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for row in &self.rows {
            text.push_str(&row.markdown());
            text.push('\n');
        }
        for note in &self.notes {
            text.push_str("\n- ");
            text.push_str(note);
        }
        text
    }
}

impl Row {
    fn markdown(&self) -> String {
        format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {} |",
            self.store,
            thousands(self.sessions),
            self.bytes_per_session,
            micros(self.lookups.p50),
            micros(self.lookups.p99),
            thousands(self.lookups.concurrent_per_second.round() as usize)
        )
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// `1234567` as `1,234,567`.
fn thousands(number: usize) -> String {
    let digits = number.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// An error and its sources, `: `-separated.
fn causes(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
