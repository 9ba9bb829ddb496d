//! The audit trail: a durable, append-only record of authentication and administration
//! events that an operator can query after the fact.
//!
//! An [`AuditEvent`] says what happened ([`AuditKind`], a closed set with stable snake_case
//! names), when, who did it ([`Actor`]), to whom (the subject user and session), from where
//! (IP, user agent), whether it worked ([`Outcome`]) and a few words more ([`AuditDetail`]).
//! It never holds a secret: no password, token, client secret or hash of one — the types
//! below have no field that could carry one, and the detail map only takes values the code
//! writes itself.
//!
//! [`AuditStore`] is the trail's storage contract. Stores that make a change in a
//! transaction can also write the change's event in that same transaction: the `*_audited`
//! methods of [`UserStore`](crate::UserStore), [`SessionStore`](crate::SessionStore),
//! [`KeyStore`](crate::KeyStore) and [`ClientStore`](crate::ClientStore) return
//! [`Audited`], which says whether they did.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use async_trait::async_trait;

use crate::id::{SessionId, UserId};
use crate::store::StoreError;
use crate::time::Timestamp;

/// What happened. The names ([`AuditKind::as_str`]) are stable: they are stored, filtered on
/// and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditKind {
    /// A login opened a session.
    LoginSucceeded,
    /// A login was refused: unknown user or wrong password.
    LoginFailed,
    /// A login was refused by the account or address throttle before its password was
    /// checked.
    LoginThrottled,
    /// A session ended itself.
    Logout,
    /// One session was revoked by someone (its owner, an administrator, the CLI) or by the
    /// server itself (refresh-token reuse).
    SessionRevoked,
    /// Several sessions of one user were revoked at once ("log out everywhere", "log out
    /// other devices", an administrator's revoke-all).
    SessionsRevoked,
    /// A spent refresh token came back outside its grace window: treated as theft, and the
    /// session is revoked.
    RefreshReuseDetected,
    /// An account was created.
    UserCreated,
    /// An account was deleted.
    UserDeleted,
    /// An account's password was changed by its owner.
    PasswordChanged,
    /// An account's password was reset by an administrator.
    PasswordReset,
    /// An account was disabled.
    UserDisabled,
    /// An account was enabled again.
    UserEnabled,
    /// An account's roles or custom claims changed.
    RolesChanged,
    /// A new signing key was added (by the CLI, an administrator or the schedule).
    KeyRotated,
    /// An API client was registered.
    ClientCreated,
    /// An API client was removed.
    ClientDeleted,
    /// A downstream service was registered for token exchange.
    ServiceCreated,
    /// A downstream service was removed.
    ServiceDeleted,
    /// A token was exchanged (RFC 8693): an audience-bound token, a one-time token or a child
    /// session; the detail names the service and what was issued.
    TokenExchanged,
    /// Any other administrative action; the detail says which.
    AdminAction,
}

impl AuditKind {
    /// Every kind, in declaration order.
    pub const ALL: [AuditKind; 21] = [
        AuditKind::LoginSucceeded,
        AuditKind::LoginFailed,
        AuditKind::LoginThrottled,
        AuditKind::Logout,
        AuditKind::SessionRevoked,
        AuditKind::SessionsRevoked,
        AuditKind::RefreshReuseDetected,
        AuditKind::UserCreated,
        AuditKind::UserDeleted,
        AuditKind::PasswordChanged,
        AuditKind::PasswordReset,
        AuditKind::UserDisabled,
        AuditKind::UserEnabled,
        AuditKind::RolesChanged,
        AuditKind::KeyRotated,
        AuditKind::ClientCreated,
        AuditKind::ClientDeleted,
        AuditKind::ServiceCreated,
        AuditKind::ServiceDeleted,
        AuditKind::TokenExchanged,
        AuditKind::AdminAction,
    ];

    /// The stable name: `login_succeeded`, `login_failed`, `login_throttled`, `logout`,
    /// `session_revoked`, `sessions_revoked`, `refresh_reuse_detected`, `user_created`,
    /// `user_deleted`, `password_changed`, `password_reset`, `user_disabled`,
    /// `user_enabled`, `roles_changed`, `key_rotated`, `client_created`, `client_deleted`,
    /// `service_created`, `service_deleted`, `token_exchanged`, `admin_action`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginSucceeded => "login_succeeded",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::LoginThrottled => "login_throttled",
            AuditKind::Logout => "logout",
            AuditKind::SessionRevoked => "session_revoked",
            AuditKind::SessionsRevoked => "sessions_revoked",
            AuditKind::RefreshReuseDetected => "refresh_reuse_detected",
            AuditKind::UserCreated => "user_created",
            AuditKind::UserDeleted => "user_deleted",
            AuditKind::PasswordChanged => "password_changed",
            AuditKind::PasswordReset => "password_reset",
            AuditKind::UserDisabled => "user_disabled",
            AuditKind::UserEnabled => "user_enabled",
            AuditKind::RolesChanged => "roles_changed",
            AuditKind::KeyRotated => "key_rotated",
            AuditKind::ClientCreated => "client_created",
            AuditKind::ClientDeleted => "client_deleted",
            AuditKind::ServiceCreated => "service_created",
            AuditKind::ServiceDeleted => "service_deleted",
            AuditKind::TokenExchanged => "token_exchanged",
            AuditKind::AdminAction => "admin_action",
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of a closed set's ([`AuditKind`], [`Actor`], [`Outcome`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?}")]
pub struct UnknownName {
    what: &'static str,
    name: String,
}

impl UnknownName {
    fn new(what: &'static str, name: &str) -> Self {
        // Bounded: the name may come from a command line or a corrupt row.
        let name = truncated(name, 64).to_owned();
        UnknownName { what, name }
    }
}

impl FromStr for AuditKind {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, UnknownName> {
        AuditKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownName::new("audit event type", name))
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A signed-in user, acting on their own account or sessions.
    User(UserId),
    /// An API client with administrative rights, by client id.
    Client(String),
    /// An operator at the `tessera` command line (with direct database access).
    Cli,
    /// The server itself: a scheduled job, or a rule such as refresh-reuse detection.
    System,
    /// Nobody authenticated: a login attempt, a self-registration, a token revocation that
    /// proved possession of the token only.
    Anonymous,
}

impl Actor {
    /// The actor's type as stored: `user`, `client`, `cli`, `system` or `anonymous`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::Client(_) => "client",
            Actor::Cli => "cli",
            Actor::System => "system",
            Actor::Anonymous => "anonymous",
        }
    }

    /// The user or client id, for the types that have one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Actor::User(id) => Some(id.as_str()),
            Actor::Client(id) => Some(id),
            Actor::Cli | Actor::System | Actor::Anonymous => None,
        }
    }

    /// The actor from its stored [`kind`](Actor::kind) and [`id`](Actor::id).
    pub fn from_parts(kind: &str, id: Option<&str>) -> Result<Actor, UnknownName> {
        let unknown = || UnknownName::new("actor", kind);
        match (kind, id) {
            ("user", Some(id)) => UserId::parse(id).map(Actor::User).map_err(|_| unknown()),
            ("client", Some(id)) => Ok(Actor::Client(id.to_owned())),
            ("cli", None) => Ok(Actor::Cli),
            ("system", None) => Ok(Actor::System),
            ("anonymous", None) => Ok(Actor::Anonymous),
            _ => Err(unknown()),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id() {
            Some(id) => write!(f, "{}:{id}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}

/// Whether the action did what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It did.
    Success,
    /// It was refused (wrong password, throttled, a reused refresh token).
    Failure,
}

impl Outcome {
    /// `success` or `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

impl FromStr for Outcome {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, UnknownName> {
        match name {
            "success" => Ok(Outcome::Success),
            "failure" => Ok(Outcome::Failure),
            other => Err(UnknownName::new("outcome", other)),
        }
    }
}

/// A few words more about an event (`transport: token`, `count: 3`, `kid: …`), bounded:
/// at most [`AuditDetail::MAX_ENTRIES`] entries, keys of at most
/// [`AuditDetail::MAX_KEY_BYTES`] and values cut to [`AuditDetail::MAX_VALUE_BYTES`].
///
/// Values are written by Tessera's code, never copied from a request wholesale, and never a
/// secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditDetail(BTreeMap<String, String>);

impl AuditDetail {
    /// Most entries kept; later ones are dropped.
    pub const MAX_ENTRIES: usize = 8;
    /// Longest key kept; longer keys are dropped.
    pub const MAX_KEY_BYTES: usize = 32;
    /// Longest value kept; longer values are cut at a character boundary.
    pub const MAX_VALUE_BYTES: usize = 128;

    /// Adds (or replaces) an entry, within the bounds.
    pub fn insert(&mut self, key: &str, value: impl fmt::Display) {
        if key.is_empty() || key.len() > Self::MAX_KEY_BYTES {
            return;
        }
        if self.0.len() >= Self::MAX_ENTRIES && !self.0.contains_key(key) {
            return;
        }
        let value = value.to_string();
        self.0.insert(
            key.to_owned(),
            truncated(&value, Self::MAX_VALUE_BYTES).to_owned(),
        );
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The entries, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: AsRef<str>, V: fmt::Display> FromIterator<(K, V)> for AuditDetail {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut detail = AuditDetail::default();
        for (key, value) in entries {
            detail.insert(key.as_ref(), value);
        }
        detail
    }
}

/// One event, as appended to the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// What happened.
    pub kind: AuditKind,
    /// When.
    pub at: Timestamp,
    /// Who did it.
    pub actor: Actor,
    /// The account it concerns, when there is one (for a failed login: the account the
    /// username named, if it exists).
    pub user_id: Option<UserId>,
    /// The session it concerns, when there is one.
    pub session_id: Option<SessionId>,
    /// The client's address, when the event came over HTTP.
    pub ip: Option<String>,
    /// The client's `User-Agent`, cut to 256 bytes.
    pub user_agent: Option<String>,
    /// Whether it worked.
    pub outcome: Outcome,
    /// A few words more.
    pub detail: AuditDetail,
}

/// Longest `User-Agent` kept in an event, in bytes (as for sessions).
pub const MAX_USER_AGENT: usize = 256;

impl AuditEvent {
    /// A successful `kind` by `actor` at `at`, about nobody in particular yet.
    pub fn new(kind: AuditKind, at: Timestamp, actor: Actor) -> Self {
        AuditEvent {
            kind,
            at,
            actor,
            user_id: None,
            session_id: None,
            ip: None,
            user_agent: None,
            outcome: Outcome::Success,
            detail: AuditDetail::default(),
        }
    }

    /// The event with `user` as its subject.
    pub fn user(mut self, user: &UserId) -> Self {
        self.user_id = Some(user.clone());
        self
    }

    /// The event about `session`.
    pub fn session(mut self, session: &SessionId) -> Self {
        self.session_id = Some(session.clone());
        self
    }

    /// The event done by `actor`.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    /// The event with `outcome`.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// The event with `key: value` in its detail.
    pub fn detail(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.detail.insert(key, value);
        self
    }

    /// The event from the client at `ip` with `user_agent` (cut to [`MAX_USER_AGENT`]).
    pub fn client(mut self, ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        self.ip = ip.map(|ip| ip.to_canonical().to_string());
        self.user_agent = user_agent.map(|agent| truncated(agent, MAX_USER_AGENT).to_owned());
        self
    }
}

/// An event as stored, with its position in the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the trail: strictly increasing in commit order, never reused. It is the
    /// cursor of [`AuditStore::query`].
    pub id: u64,
    /// The event.
    pub event: AuditEvent,
}

/// Which events [`AuditStore::query`] returns; every field set must match. The default
/// matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events whose subject is this user.
    pub user_id: Option<UserId>,
    /// Only events of this kind.
    pub kind: Option<AuditKind>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events before this time.
    pub until: Option<Timestamp>,
}

impl AuditFilter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.user_id
            .as_ref()
            .is_none_or(|user| event.user_id.as_ref() == Some(user))
            && self.kind.is_none_or(|kind| event.kind == kind)
            && self.since.is_none_or(|since| event.at >= since)
            && self.until.is_none_or(|until| event.at < until)
    }
}

/// What an audited change returned, and whether the store wrote the change's audit event
/// itself, in the change's own transaction.
///
/// When `recorded` is `false` the store left the event to the caller, who appends it to the
/// trail after the change (and only if the change happened). A store never writes the event
/// of a change that failed or changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Audited<T> {
    /// What the plain method returns.
    pub value: T,
    /// Whether the event was written with the change.
    pub recorded: bool,
}

impl<T> Audited<T> {
    /// `value`, the event written with it.
    pub fn recorded(value: T) -> Self {
        Audited {
            value,
            recorded: true,
        }
    }

    /// `value`, the event left to the caller.
    pub fn left_to_caller(value: T) -> Self {
        Audited {
            value,
            recorded: false,
        }
    }
}

/// The audit trail's storage: append-only, except for purging what is older than the
/// retention.
///
/// A store that also implements the `*_audited` change methods writes the events of those
/// changes into this same trail, so an engine's audit store must be the same database as
/// its user store.
#[async_trait]
pub trait AuditStore: Send + Sync + fmt::Debug + 'static {
    /// Appends `event`, durably, and returns its id: greater than every id assigned before,
    /// and assigned so that ids commit in increasing order (a reader that saw id `n` will
    /// never later see a new event with an id below `n`).
    async fn append(&self, event: &AuditEvent) -> Result<u64, StoreError>;

    /// The events matching `filter` with `id > after`, oldest (lowest id) first, at most
    /// `limit`. Paging with `after` = the last id seen never skips or repeats an event,
    /// whatever is appended meanwhile.
    async fn query(
        &self,
        filter: &AuditFilter,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Deletes at most `limit` events that happened before `before`, oldest first. Returns
    /// how many went. Never lowers the next id.
    async fn purge_before(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError>;
}

/// Who is acting and from where, for the events an engine records: set per request by the
/// server ([`Engine::with_context`](crate::Engine::with_context)) and once by the CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditContext {
    /// Who acts, when the engine cannot tell by itself (an administrator, the CLI). Methods
    /// that act for a signed-in user on their own sessions record that user instead.
    /// `None` means [`Actor::Anonymous`].
    pub actor: Option<Actor>,
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
}

impl AuditContext {
    /// The context of an operator at the command line.
    pub fn cli() -> Self {
        AuditContext {
            actor: Some(Actor::Cli),
            ..AuditContext::default()
        }
    }

    /// The context of an HTTP request from `ip` with `user_agent`, by nobody known yet.
    pub fn request(ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        AuditContext {
            actor: None,
            ip,
            user_agent: user_agent.map(|agent| truncated(agent, MAX_USER_AGENT).to_owned()),
        }
    }

    /// The context with `actor` acting.
    pub fn acting(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_and_are_snake_case() {
        for kind in AuditKind::ALL {
            let name = kind.as_str();
            assert_eq!(name.parse::<AuditKind>(), Ok(kind));
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert!("Login_Failed".parse::<AuditKind>().is_err());
        assert!("".parse::<AuditKind>().is_err());
    }

    #[test]
    fn actors_round_trip_through_their_parts() {
        let user = UserId::from_bytes(&[7; 16]);
        for actor in [
            Actor::User(user),
            Actor::Client("c-1".to_owned()),
            Actor::Cli,
            Actor::System,
            Actor::Anonymous,
        ] {
            assert_eq!(Actor::from_parts(actor.kind(), actor.id()), Ok(actor));
        }
        assert!(Actor::from_parts("cli", Some("x")).is_err());
        assert!(Actor::from_parts("user", None).is_err());
        assert!(Actor::from_parts("root", None).is_err());
    }

    #[test]
    fn detail_is_bounded() {
        let mut detail = AuditDetail::default();
        for n in 0..20 {
            detail.insert(&format!("k{n}"), n);
        }
        assert_eq!(detail.iter().count(), AuditDetail::MAX_ENTRIES);
        detail.insert("k0", "é".repeat(200));
        let value = detail.get("k0").unwrap_or_default();
        assert!(value.len() <= AuditDetail::MAX_VALUE_BYTES && value.starts_with('é'));
        detail.insert(&"x".repeat(33), 1);
        assert_eq!(detail.get(&"x".repeat(33)), None);
    }

    #[test]
    fn filters_match_every_field_set() {
        let user = UserId::from_bytes(&[7; 16]);
        let event = AuditEvent::new(
            AuditKind::Logout,
            Timestamp::from_unix_millis(1_000),
            Actor::Cli,
        )
        .user(&user);
        assert!(AuditFilter::default().matches(&event));
        let at = |ms| Some(Timestamp::from_unix_millis(ms));
        let filter = AuditFilter {
            user_id: Some(user.clone()),
            kind: Some(AuditKind::Logout),
            since: at(1_000),
            until: at(1_001),
        };
        assert!(filter.matches(&event));
        assert!(
            !AuditFilter {
                until: at(1_000),
                ..filter.clone()
            }
            .matches(&event)
        );
        assert!(
            !AuditFilter {
                kind: Some(AuditKind::LoginFailed),
                ..filter
            }
            .matches(&event)
        );
    }
}
