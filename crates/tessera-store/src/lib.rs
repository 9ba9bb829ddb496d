//! Tessera's store backends, and the one conformance suite every backend runs.
//!
//! The engine in `tessera-core` keeps users, sessions, the revocation log, failed-login
//! counters, refresh-token chains, signing keys, registered API clients (resource servers)
//! and the downstream services registered for token exchange behind the traits
//! [`UserStore`](tessera_core::UserStore), [`SessionStore`](tessera_core::SessionStore),
//! [`LoginThrottle`](tessera_core::LoginThrottle), [`RefreshStore`](tessera_core::RefreshStore),
//! [`KeyStore`](tessera_core::KeyStore), [`ClientStore`](tessera_core::ClientStore) and
//! [`ServiceStore`](tessera_core::ServiceStore). This crate implements them.
//!
//! # Layout
//!
//! - [`memory`]: [`MemoryStore`](memory::MemoryStore) and
//!   [`MemoryThrottle`](memory::MemoryThrottle) — in-process maps, for tests, development and
//!   single instances that may lose sessions (and, with them, signing keys, server secrets
//!   and API clients) on restart.
//! - `sqlite` (feature `sqlite`, on by default): [`SqliteStore`](sqlite::SqliteStore) — one
//!   durable file holding all of it, with migrations embedded.
//! - `postgres` (feature `postgres`): [`PgStore`](postgres::PgStore) — all of it in PostgreSQL,
//!   shared by every instance, with the revocation log (also for Redis sessions) and
//!   `LISTEN`/`NOTIFY` fan-out of revocations.
//! - `redis` (feature `redis`): [`RedisStore`](redis::RedisStore) — sessions, refresh chains
//!   and throttle counters in Redis, shared and expiring, with revocations logged first to a
//!   durable SQL [`RevocationLog`](tessera_core::RevocationLog).
//! - `conformance` (feature `conformance`): the contract as executable tests, the
//!   [`conformance_tests!`] macro that runs all of them against a backend in one line,
//!   `durability_tests!` for what the durable backends (SQLite, PostgreSQL) keep across a
//!   reopen and never store, and the record builders the cases use, for backends' own tests.
//!
//! Every backend has one module per store trait it implements (`users`, `sessions`,
//! `refresh`, `keys`, `clients`, `services`, `throttle`, `revocation_log`; PostgreSQL and
//! Redis also `notify`), and SQLite and PostgreSQL share their row decoding, binds and error
//! mapping in a private `sql` module, so they differ only in their SQL text.
//!
//! # Quick start
//!
//! Give the engine a store, log in, validate:
//!
//! ```
//! use std::sync::Arc;
//! use tessera_core::password::{HashingLimits, HashingParams};
//! use tessera_core::{
//!     Engine, EngineConfig, LoginAttempt, PasswordHasher, Stores, SystemClock, Transport,
//! };
//! use tessera_store::memory::{MemoryStore, MemoryThrottle};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryStore::new());
//! let stores = Stores {
//!     users: store.clone(),
//!     sessions: store.clone(),
//!     refresh: store.clone(),
//!     keys: store.clone(),
//!     services: store.clone(),
//!     clients: store,
//!     throttle: Arc::new(MemoryThrottle::new()),
//! };
//! let hasher = PasswordHasher::new(HashingParams::default(), HashingLimits::default())?;
//! let engine = Engine::new(stores, hasher, Arc::new(SystemClock), EngineConfig::default()).await?;
//!
//! engine.create_user("alice", "correct horse battery staple").await?;
//! let login = engine
//!     .login(LoginAttempt {
//!         username: "alice",
//!         password: "correct horse battery staple",
//!         transport: Transport::Cookie,
//!         ip: None,
//!         user_agent: None,
//!     })
//!     .await?;
//! assert_eq!(engine.validate(&login.token).await?.username(), "alice");
//! # Ok(())
//! # }
//! ```
//!
//! For durable state, open a SQLite file instead; one store serves every role:
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! use std::sync::Arc;
//! use tessera_core::Stores;
//! use tessera_store::sqlite::SqliteStore;
//!
//! let store = Arc::new(SqliteStore::open(&dir.path().join("tessera.db")).await?);
//! let stores = Stores {
//!     users: store.clone(),
//!     sessions: store.clone(),
//!     refresh: store.clone(),
//!     keys: store.clone(),
//!     services: store.clone(),
//!     clients: store.clone(),
//!     throttle: store,
//! };
//! # drop(stores);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "sqlite"))]
//! # fn main() {}
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

mod window;
