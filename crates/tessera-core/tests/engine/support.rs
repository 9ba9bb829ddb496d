//! A plain in-memory store for the engine's own tests, and the engines built over it.
//!
//! `tessera-core` cannot use `tessera-store`'s backends in its tests (that would be a second
//! copy of this crate's types), so this is the smallest faithful implementation of the store
//! contract (`tessera_core::store`) for what the engine tests reach: one lock around every
//! record, each method a few lines that do what its trait documentation says. Methods no test
//! reaches panic instead of pretending, so a test that starts to need one fails loudly.
//!
//! Several engines over one [`MemoryStores`] are several instances of a deployment; a new
//! engine over it is an instance after a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::password::{HashingLimits, HashingParams};
use tessera_core::{
    ClientRecord, ClientStore, CustomClaims, Engine, EngineConfig, KeyRecord, KeyStore, LoggedIn,
    LoginAttempt, LoginThrottle, ManualClock, PasswordHasher, RefreshRecord, RefreshStore,
    Revocation, RevocationKind, Roles, Rotation, ServiceRecord, ServiceStore, SessionId,
    SessionPolicy, SessionRecord, SessionStore, StoreError, Stores, ThrottleKey, ThrottleRule,
    Timestamp, TokenHash, Transport, User, UserId, UserRecord, UserStore, Username,
};
use tokio::sync::Notify;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// 2026-01-01T00:00:00Z: a whole second, so `iat` arithmetic in the tests stays exact.
pub(crate) const START: Timestamp = Timestamp::from_unix_millis(1_767_225_600_000);

/// One deployment's stores and its clock, standing still until a test moves it.
#[derive(Debug, Clone)]
pub(crate) struct Deployment {
    pub(crate) store: Arc<MemoryStores>,
    pub(crate) clock: ManualClock,
}

impl Deployment {
    pub(crate) fn new() -> Self {
        Deployment {
            store: Arc::new(MemoryStores::default()),
            clock: ManualClock::new(START),
        }
    }

    /// A new instance over the deployment's stores: an empty cache, and whatever it reads
    /// from the revocation log at start.
    pub(crate) async fn engine(&self, config: EngineConfig) -> Engine {
        let store = &self.store;
        let stores = Stores {
            users: store.clone(),
            sessions: store.clone(),
            throttle: store.clone(),
            refresh: store.clone(),
            keys: store.clone(),
            clients: store.clone(),
            services: store.clone(),
        };
        Engine::new(stores, hasher(), Arc::new(self.clock.clone()), config)
            .await
            .unwrap()
    }

    pub(crate) fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub(crate) fn now(&self) -> Timestamp {
        tessera_core::Clock::now(&self.clock)
    }
}

/// The default configuration with sessions that idle out after `idle` and end after
/// `absolute`.
pub(crate) fn session_policy(idle: Duration, absolute: Duration) -> EngineConfig {
    EngineConfig {
        session: SessionPolicy::new(idle, absolute),
        ..EngineConfig::default()
    }
}

/// One hasher (at the OWASP floor) for every engine of the test binary: building one costs a
/// hash.
fn hasher() -> PasswordHasher {
    static HASHER: OnceLock<PasswordHasher> = OnceLock::new();
    HASHER
        .get_or_init(|| {
            PasswordHasher::new(HashingParams::default(), HashingLimits::default()).unwrap()
        })
        .clone()
}

/// Logs `username` in with `transport`, creating the account on first use.
pub(crate) async fn log_in(engine: &Engine, username: &str, transport: Transport) -> LoggedIn {
    if engine.user_by_username(username).await.is_err() {
        engine.create_user(username, PASSWORD).await.unwrap();
    }
    engine
        .login(LoginAttempt {
            username,
            password: PASSWORD,
            transport,
            ip: None,
            user_agent: None,
        })
        .await
        .unwrap()
}

/// A store call held back until the test lets it go: the interleavings a scheduler produces
/// only by chance, made certain.
#[derive(Debug, Default)]
pub(crate) struct Pause {
    reached: Notify,
    release: Notify,
}

impl Pause {
    /// Waits until the paused call has started.
    pub(crate) async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the paused call finish.
    pub(crate) fn release(&self) {
        self.release.notify_one();
    }
}

#[derive(Debug, Default)]
pub(crate) struct MemoryStores {
    state: Mutex<State>,
    /// Holds back the next `user_by_id`, once.
    user_lookup_pause: Mutex<Option<Arc<Pause>>>,
}

#[derive(Debug, Default)]
struct State {
    /// By username key.
    users: HashMap<String, UserRecord>,
    sessions: HashMap<SessionId, SessionRecord>,
    revocations: Vec<Revocation>,
    last_sequence: u64,
    refresh: HashMap<TokenHash, RefreshRecord>,
    secrets: HashMap<String, Vec<u8>>,
    /// Failures and when their window opened.
    failures: HashMap<ThrottleKey, (u32, Timestamp)>,
}

impl MemoryStores {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Holds the next `user_by_id` call (by any engine) until the returned pause is
    /// released.
    pub(crate) fn pause_next_user_lookup(&self) -> Arc<Pause> {
        let pause = Arc::new(Pause::default());
        *self.user_lookup_pause.lock().unwrap() = Some(Arc::clone(&pause));
        pause
    }

    /// Every entry of the revocation log, oldest first.
    pub(crate) fn revocations(&self) -> Vec<Revocation> {
        self.state().revocations.clone()
    }
}

impl State {
    fn user_mut(&mut self, id: &UserId) -> Option<&mut UserRecord> {
        self.users.values_mut().find(|record| &record.user.id == id)
    }

    fn log(&mut self, kind: RevocationKind, user_id: UserId, at: Timestamp) {
        self.last_sequence += 1;
        self.revocations.push(Revocation {
            sequence: self.last_sequence,
            kind,
            user_id,
            revoked_at: at,
        });
    }

    fn revoke(&mut self, id: &SessionId, now: Timestamp) -> bool {
        let Some(record) = self.sessions.get_mut(id) else {
            return false;
        };
        if record.revoked_at.is_some() {
            return false;
        }
        record.revoked_at = Some(now);
        let user_id = record.user_id.clone();
        self.log(RevocationKind::Session(id.clone()), user_id, now);
        true
    }
}

fn unused(what: &str) -> ! {
    unreachable!("the engine tests never call {what}; implement it here first")
}

#[async_trait]
impl UserStore for MemoryStores {
    async fn create_user(
        &self,
        username: &Username,
        record: &UserRecord,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let taken = state.users.contains_key(username.key())
            || state
                .users
                .values()
                .any(|user| user.user.id == record.user.id);
        if taken {
            return Err(StoreError::Conflict);
        }
        state
            .users
            .insert(username.key().to_owned(), record.clone());
        Ok(())
    }

    async fn user_by_username(&self, username_key: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.state().users.get(username_key).cloned())
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let pause = self.user_lookup_pause.lock().unwrap().take();
        if let Some(pause) = pause {
            pause.reached.notify_one();
            pause.release.notified().await;
        }
        Ok(self.state().user_mut(id).map(|record| record.clone()))
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        unused("UserStore::list_users")
    }

    async fn users_page(
        &self,
        _after: Option<&str>,
        _limit: usize,
        _contains: Option<&str>,
    ) -> Result<Vec<User>, StoreError> {
        unused("UserStore::users_page")
    }

    async fn set_password_hash(
        &self,
        id: &UserId,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        Ok(self.state().user_mut(id).is_some_and(|record| {
            record.password_hash = password_hash.to_owned();
            true
        }))
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        let mut state = self.state();
        let before = state.users.len();
        state.users.retain(|_, record| &record.user.id != id);
        Ok(state.users.len() < before)
    }

    async fn set_roles(&self, id: &UserId, roles: &Roles) -> Result<bool, StoreError> {
        Ok(self.state().user_mut(id).is_some_and(|record| {
            record.standing.roles = roles.clone();
            true
        }))
    }

    async fn swap_roles(
        &self,
        _id: &UserId,
        _expected: &Roles,
        _roles: &Roles,
    ) -> Result<bool, StoreError> {
        unused("UserStore::swap_roles")
    }

    async fn set_claims(&self, id: &UserId, claims: &CustomClaims) -> Result<bool, StoreError> {
        Ok(self.state().user_mut(id).is_some_and(|record| {
            record.standing.claims = claims.clone();
            true
        }))
    }

    async fn set_disabled(&self, id: &UserId, disabled: bool) -> Result<bool, StoreError> {
        Ok(self.state().user_mut(id).is_some_and(|record| {
            record.standing.disabled = disabled;
            true
        }))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl SessionStore for MemoryStores {
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.sessions.contains_key(&record.id) {
            return Err(StoreError::Conflict);
        }
        state.sessions.insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn session_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.state().sessions.get(id).cloned())
    }

    async fn touch_session(
        &self,
        id: &SessionId,
        seen: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        match state.sessions.get_mut(id) {
            Some(record) if record.revoked_at.is_none() && record.last_seen_at < seen => {
                record.last_seen_at = seen;
                record.idle_expires_at = idle_expires_at;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_authentication(
        &self,
        id: &SessionId,
        auth_time: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        match state.sessions.get_mut(id) {
            Some(record) if record.revoked_at.is_none() => {
                record.auth_time = record.auth_time.max(auth_time);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn sessions_of_user(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut live: Vec<SessionRecord> = self
            .state()
            .sessions
            .values()
            .filter(|record| &record.user_id == user_id && record.is_live(now))
            .cloned()
            .collect();
        live.sort_by_key(|record| std::cmp::Reverse(record.created_at));
        Ok(live)
    }

    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool, StoreError> {
        Ok(self.state().revoke(id, now))
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let mut state = self.state();
        let ids: Vec<SessionId> = state
            .sessions
            .values()
            .filter(|record| &record.user_id == user_id && Some(&record.id) != keep)
            .map(|record| record.id.clone())
            .collect();
        Ok(ids.into_iter().filter(|id| state.revoke(id, now)).collect())
    }

    async fn mark_user_stale(&self, user_id: &UserId, at: Timestamp) -> Result<(), StoreError> {
        self.state().log(RevocationKind::User, user_id.clone(), at);
        Ok(())
    }

    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Revocation>, StoreError> {
        Ok(self
            .state()
            .revocations
            .iter()
            .filter(|revocation| revocation.sequence > after)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn revocation_cursor(&self) -> Result<u64, StoreError> {
        Ok(self.state().last_sequence)
    }

    async fn purge_expired(
        &self,
        now: Timestamp,
        revocation_retention: Duration,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let mut state = self.state();
        let ended: Vec<SessionId> = state
            .sessions
            .values()
            .filter(|record| now >= record.idle_expires_at.min(record.expires_at))
            .take(limit)
            .map(|record| record.id.clone())
            .collect();
        for id in &ended {
            state.sessions.remove(id);
        }
        let keep_from = now.saturating_sub(revocation_retention);
        let old = state
            .revocations
            .iter()
            .take_while(|revocation| revocation.revoked_at < keep_from)
            .take(limit)
            .count();
        state.revocations.drain(..old);
        Ok((ended.len() + old) as u64)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl RefreshStore for MemoryStores {
    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.refresh.contains_key(&record.token_hash) {
            return Err(StoreError::Conflict);
        }
        state.refresh.insert(record.token_hash, record.clone());
        Ok(())
    }

    async fn refresh_by_token(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        Ok(self.state().refresh.get(token_hash).cloned())
    }

    async fn rotate_refresh(
        &self,
        parent: &TokenHash,
        successor: &RefreshRecord,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        let mut state = self.state();
        let Some(record) = state.refresh.get(parent).cloned() else {
            return Ok(Rotation::Unknown);
        };
        if let Some(spent_at) = record.spent_at {
            let successor = record
                .successor_hash
                .and_then(|hash| state.refresh.get(&hash).cloned());
            return Ok(Rotation::AlreadySpent {
                spent_at,
                successor,
            });
        }
        if state.refresh.contains_key(&successor.token_hash) {
            return Err(StoreError::Conflict);
        }
        state
            .refresh
            .insert(successor.token_hash, successor.clone());
        let parent = state.refresh.get_mut(parent).unwrap();
        parent.spent_at = Some(now);
        parent.successor_hash = Some(successor.token_hash);
        Ok(Rotation::Rotated)
    }

    async fn purge_refresh(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let mut state = self.state();
        let expired: Vec<TokenHash> = state
            .refresh
            .values()
            .filter(|record| now >= record.expires_at)
            .take(limit)
            .map(|record| record.token_hash)
            .collect();
        for hash in &expired {
            state.refresh.remove(hash);
        }
        Ok(expired.len() as u64)
    }
}

#[async_trait]
impl KeyStore for MemoryStores {
    async fn signing_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        unused("KeyStore::signing_keys")
    }

    async fn insert_signing_key(&self, _key: &KeyRecord) -> Result<(), StoreError> {
        unused("KeyStore::insert_signing_key")
    }

    async fn retire_signing_keys(
        &self,
        _except: &str,
        _retired_at: i64,
    ) -> Result<u64, StoreError> {
        unused("KeyStore::retire_signing_keys")
    }

    async fn delete_signing_keys_retired_before(&self, _before: i64) -> Result<u64, StoreError> {
        unused("KeyStore::delete_signing_keys_retired_before")
    }

    async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .state()
            .secrets
            .entry(name.to_owned())
            .or_insert_with(|| candidate.to_vec())
            .clone())
    }
}

#[async_trait]
impl ClientStore for MemoryStores {
    async fn insert_client(&self, _client: &ClientRecord) -> Result<(), StoreError> {
        unused("ClientStore::insert_client")
    }

    async fn client_by_id(&self, _id: &str) -> Result<Option<ClientRecord>, StoreError> {
        unused("ClientStore::client_by_id")
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        unused("ClientStore::list_clients")
    }

    async fn delete_client(&self, _name: &str) -> Result<bool, StoreError> {
        unused("ClientStore::delete_client")
    }
}

#[async_trait]
impl ServiceStore for MemoryStores {
    async fn insert_service(&self, _service: &ServiceRecord) -> Result<(), StoreError> {
        unused("ServiceStore::insert_service")
    }

    async fn service_by_audience(
        &self,
        _audience: &str,
    ) -> Result<Option<ServiceRecord>, StoreError> {
        unused("ServiceStore::service_by_audience")
    }

    async fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        unused("ServiceStore::list_services")
    }

    async fn delete_service(&self, _name: &str) -> Result<bool, StoreError> {
        unused("ServiceStore::delete_service")
    }
}

#[async_trait]
impl LoginThrottle for MemoryStores {
    async fn blocked_for(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError> {
        Ok(self
            .state()
            .failures
            .get(key)
            .and_then(|&(failures, opened_at)| {
                let closes_at = opened_at.saturating_add(rule.window);
                (failures >= rule.max_failures && now < closes_at)
                    .then(|| closes_at.duration_since(now))
            }))
    }

    async fn record_failure(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        let window = state.failures.entry(key.clone()).or_insert((0, now));
        if now >= window.1.saturating_add(rule.window) {
            *window = (0, now);
        }
        window.0 = window.0.saturating_add(1);
        Ok(())
    }

    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        self.state().failures.remove(key);
        Ok(())
    }
}

/// The session as the store holds it now.
pub(crate) async fn stored_session(deployment: &Deployment, id: &SessionId) -> SessionRecord {
    deployment.store.session_by_id(id).await.unwrap().unwrap()
}
