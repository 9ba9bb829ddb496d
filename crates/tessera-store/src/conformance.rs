//! The store contract of `tessera-core`, as tests every backend runs.
//!
//! Each case is a generic async function over a [`Fixture`] — the stores under test, plus
//! whatever keeps them alive — and panics if the backend breaks the contract. The
//! [`conformance_tests!`](crate::conformance_tests) macro turns every case into a `#[test]`
//! for one backend, given a factory that builds a fresh, isolated fixture:
//!
//! ```
//! # mod hidden {
//! use tessera_store::conformance::Fixture;
//! use tessera_store::memory::{MemoryStore, MemoryThrottle};
//!
//! tessera_store::conformance_tests!(memory, || async {
//!     Fixture::new(MemoryStore::new(), MemoryThrottle::new())
//! });
//! # }
//! # fn main() {}
//! ```
//!
//! The durable backends also run the cases of [`durability_tests!`](crate::durability_tests)
//! over a [`Durable`] backend: what survives a reopen, and that tokens are never stored. The
//! builders the cases use ([`at`], [`new_user`], [`new_session`], [`new_refresh`], …) are
//! exported, so a backend's own tests build their records the same way.
//!
//! Times are fixed instants around [`BASE`], never the wall clock, so expiry is tested
//! without sleeping. Cases that race tasks against each other run on a two-worker
//! multi-threaded runtime; the rest on a current-thread one.

// Test code: a failed expectation is a failed test, and should read as one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod builders;
mod child_sessions;
mod clients;
mod durability;
mod keys;
mod refresh;
mod revocation_log;
mod revocations;
mod services;
mod session_races;
mod sessions;
mod standing;
mod throttle;
mod users;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tessera_core::{
    AuditStore, ClientStore, KeyStore, LoginThrottle, RefreshStore, RevocationLog, ServiceStore,
    SessionStore, UserStore,
};

pub use audit::*;
pub use builders::*;
pub use child_sessions::*;
pub use clients::*;
pub use durability::*;
pub use keys::*;
pub use refresh::*;
pub use revocation_log::*;
pub use revocations::*;
pub use services::*;
pub use session_races::*;
pub use sessions::*;
pub use standing::*;
pub use throttle::*;
pub use users::*;

/// The stores one test runs against, and whatever must outlive them.
pub struct Fixture {
    /// The user store under test.
    pub users: Arc<dyn UserStore>,
    /// The session store under test.
    pub sessions: Arc<dyn SessionStore>,
    /// The refresh-token store under test.
    pub refresh: Arc<dyn RefreshStore>,
    /// The key store under test.
    pub keys: Arc<dyn KeyStore>,
    /// The API-client store under test.
    pub clients: Arc<dyn ClientStore>,
    /// The service registry under test.
    pub services: Arc<dyn ServiceStore>,
    /// The login throttle under test.
    pub throttle: Arc<dyn LoginThrottle>,
    /// The durable revocation log under test. It must be the log `sessions` keeps its
    /// revocations in: the same store, or the log a non-durable session store writes to.
    pub log: Arc<dyn RevocationLog>,
    /// The audit trail under test, for the [`audit_tests!`](crate::audit_tests) cases: the
    /// trail the other stores' audited changes write to. `None` unless set.
    pub audit: Option<Arc<dyn AuditStore>>,
    /// Dropped after the stores (fields drop in declaration order).
    guards: Vec<Box<dyn Any + Send>>,
}

impl Fixture {
    /// A fixture over one store serving users, sessions (with their revocation log), refresh
    /// tokens, keys, API clients, services and the audit trail, and a throttle.
    pub fn new<S>(store: S, throttle: impl LoginThrottle) -> Fixture
    where
        S: UserStore
            + SessionStore
            + RevocationLog
            + RefreshStore
            + KeyStore
            + ClientStore
            + ServiceStore
            + AuditStore,
    {
        let store = Arc::new(store);
        Fixture::from_parts(
            store.clone(),
            store.clone(),
            store.clone(),
            store.clone(),
            store.clone(),
            store.clone(),
            Arc::new(throttle),
            store.clone(),
        )
        .with_audit(store)
    }

    /// A fixture over separate stores. `log` must be the revocation log `sessions` reads and
    /// writes (see [`Fixture::log`]).
    // One argument per store: a builder would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        refresh: Arc<dyn RefreshStore>,
        keys: Arc<dyn KeyStore>,
        clients: Arc<dyn ClientStore>,
        services: Arc<dyn ServiceStore>,
        throttle: Arc<dyn LoginThrottle>,
        log: Arc<dyn RevocationLog>,
    ) -> Fixture {
        Fixture {
            users,
            sessions,
            refresh,
            keys,
            clients,
            services,
            throttle,
            log,
            audit: None,
            guards: Vec::new(),
        }
    }

    /// The fixture with `audit` as its audit trail (see [`Fixture::audit`]).
    pub fn with_audit(mut self, audit: Arc<dyn AuditStore>) -> Fixture {
        self.audit = Some(audit);
        self
    }

    /// Keeps `guard` (a temporary directory, a container handle, a dedicated schema) alive
    /// until the test ends, and drops it after the stores.
    pub fn keep_alive(mut self, guard: impl Any + Send) -> Fixture {
        self.guards.push(Box::new(guard));
        self
    }
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("users", &self.users)
            .field("sessions", &self.sessions)
            .field("refresh", &self.refresh)
            .field("keys", &self.keys)
            .field("clients", &self.clients)
            .field("services", &self.services)
            .field("throttle", &self.throttle)
            .field("log", &self.log)
            .field("audit", &self.audit)
            .finish_non_exhaustive()
    }
}

/// Runs every conformance case as a `#[test]` against one backend.
///
/// `conformance_tests!(name, factory)` expands to a module `name` with one test per case.
/// `factory` is an expression callable as `factory()` returning a future of a fresh
/// [`Fixture`](crate::conformance::Fixture) that shares nothing with any other test's; it is
/// called once per test, inside that test's runtime. Items in scope where the macro is
/// invoked are visible to `factory`.
///
/// ```
/// # mod hidden {
/// use tessera_store::conformance::Fixture;
/// use tessera_store::sqlite::SqliteStore;
///
/// tessera_store::conformance_tests!(sqlite, || async {
///     let dir = tempfile::tempdir().unwrap();
///     let store = SqliteStore::open(&dir.path().join("test.db")).await.unwrap();
///     Fixture::new(store.clone(), store).keep_alive(dir)
/// });
/// # }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($backend:ident, $factory:expr $(,)?) => {
        $crate::__conformance_cases! {
            module = $backend;
            factory = $factory;
            CurrentThread:
                user_create_and_look_up,
                user_list_oldest_first,
                user_delete_is_idempotent,
                user_username_conflict_ignores_case,
                user_id_conflict,
                user_set_password_hash,
                user_pages_in_username_key_order,
                user_standing_round_trips,
                user_standing_setters_change_only_their_part,
                user_roles_swap_only_from_the_expected_roles,
                user_entries_share_the_session_log,
                user_entries_page_and_trim,
                user_entries_through_the_revocation_log,
                session_insert_and_look_up,
                session_id_collision_conflicts,
                session_user_agents_survive_other_sessions,
                session_list_has_only_live_newest_first,
                session_touch_extends_never_backwards,
                session_touch_never_unrevokes,
                session_auth_time_rises_on_reauthentication,
                session_revoke_is_idempotent,
                session_revoke_user_sessions_keeps_one,
                session_revoke_user_sessions_all,
                revocation_sequences_increase,
                revocation_pages,
                purge_removes_only_ended_sessions,
                purge_respects_limit,
                purge_trims_old_revocations,
                revocation_log_appends_in_order,
                revocation_log_pages,
                revocation_log_trim_keeps_the_cursor,
                revocation_log_is_the_session_stores_log,
                throttle_counts_up_to_the_limit,
                throttle_window_expiry_unblocks,
                throttle_reset_clears,
                throttle_keys_are_independent,
                refresh_insert_and_look_up,
                refresh_token_collision_conflicts,
                refresh_rotate_spends_parent_and_stores_successor,
                refresh_rotate_spent_parent_reports_its_successor,
                refresh_rotate_unknown_parent,
                refresh_rotate_reports_the_immediate_successor,
                refresh_rotate_successor_conflict_leaves_parent_unspent,
                refresh_purge_removes_only_expired,
                refresh_purge_respects_limit,
                key_insert_and_list_oldest_first,
                key_id_conflict,
                key_retire_all_but_one,
                key_delete_retired_before,
                server_secret_first_candidate_wins,
                client_insert_and_look_up,
                client_unknown_id_finds_nothing,
                client_id_conflict,
                client_name_conflict,
                client_list_oldest_first,
                client_delete_by_name_is_idempotent,
                client_admin_scope_round_trips,
                service_insert_and_look_up,
                service_name_conflict,
                service_audience_conflict,
                service_list_oldest_first,
                service_delete_is_idempotent,
                child_session_keeps_its_parent,
                children_of_lists_live_children_only;
            MultiThread:
                user_pages_stay_stable_under_concurrent_inserts,
                concurrent_role_swaps_lose_no_change,
                concurrent_touches_never_unrevoke,
                concurrent_reauthentications_never_unrevoke,
                concurrent_revokes_log_once,
                concurrent_log_appends_keep_their_order,
                concurrent_inserts_have_one_winner,
                concurrent_rotations_have_one_winner,
                concurrent_server_secrets_agree;
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    (module = $backend:ident; factory = $factory:expr; $($flavor:ident: $($case:ident),+;)+) => {
        mod $backend {
            #[allow(unused_imports)] // The factory may or may not name items from outside.
            use super::*;

            $($(
                #[test]
                fn $case() {
                    $crate::conformance::run(
                        $crate::conformance::Flavor::$flavor,
                        $factory,
                        $crate::conformance::$case,
                    );
                }
            )+)+
        }
    };
}

/// The runtime a case needs.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Flavor {
    /// One thread: deterministic, for cases that do one thing at a time.
    CurrentThread,
    /// Two workers, so spawned tasks really run in parallel.
    MultiThread,
}

/// Builds a fixture (a [`Fixture`], or a [`Durable`] backend) with `factory` and runs `case`
/// on it, on a fresh runtime.
#[doc(hidden)]
pub fn run<F, Fut, T, C, CaseFut>(flavor: Flavor, factory: F, case: C)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
    C: FnOnce(T) -> CaseFut,
    CaseFut: Future<Output = ()>,
{
    let runtime = match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
    .expect("a tokio runtime for the test");
    runtime.block_on(async move { case(factory().await).await });
}
