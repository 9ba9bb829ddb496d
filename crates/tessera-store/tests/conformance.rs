//! The backends that need no server, memory and SQLite, against the one conformance suite.
//! PostgreSQL and Redis run it from `tests/postgres.rs` and `tests/redis.rs`, beside what only
//! they promise.

// Test code: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

use tessera_store::conformance::Fixture;
use tessera_store::memory::{MemoryStore, MemoryThrottle};
use tessera_store::sqlite::SqliteStore;

tessera_store::conformance_tests!(memory, || async {
    Fixture::new(MemoryStore::new(), MemoryThrottle::new())
});

tessera_store::conformance_tests!(sqlite, || async {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("tessera.db");
    let store = SqliteStore::open(&path).await.expect("a fresh database");
    Fixture::new(store.clone(), store).keep_alive(dir)
});

tessera_store::audit_tests!(memory_audit, || async {
    Fixture::new(MemoryStore::new(), MemoryThrottle::new())
});

tessera_store::audit_tests!(sqlite_audit, || async {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("tessera.db");
    let store = SqliteStore::open(&path).await.expect("a fresh database");
    Fixture::new(store.clone(), store).keep_alive(dir)
});
