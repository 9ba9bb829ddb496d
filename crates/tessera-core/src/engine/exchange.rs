//! Token exchange (RFC 8693) beside the engine: the registry of downstream services, the
//! scopes a user may receive for one, and child sessions — sessions a stateful service
//! obtains for its own cookie, which end whenever their parent ends.

use std::time::Duration;

use super::{Engine, ValidSession};
use crate::audit::{AuditKind, Audited};
use crate::error::Error;
use crate::id::{SessionId, SessionToken, UserId};
use crate::session::{ParentSession, SessionRecord};
use crate::store::{ServiceRecord, ServiceScope, StoreError};
use crate::user::{Role, Standing};

/// The longest `max_ttl` a service may be registered with: a day. Exchanged tokens are meant
/// to be short; a service that needs longer uses a child session.
pub const MAX_SERVICE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// At most this many scopes per service, and roles per scope.
const MAX_SCOPES: usize = 64;

/// A service to register (see [`Engine::register_service`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewService {
    /// Its name: 1–64 of `A–Z a–z 0–9 . _ -`.
    pub name: String,
    /// Its audience: 1–256 visible ASCII characters, usually its base URL.
    pub audience: String,
    /// Its scopes, each `NAME` (every user may receive it) or `NAME=ROLE|ROLE…` (only users
    /// holding one of the roles). A scope name is 1–64 RFC 6749 scope characters, no `=`.
    pub scopes: Vec<String>,
    /// The longest lifetime of a token issued for it: 1 second to [`MAX_SERVICE_TTL`].
    pub max_ttl: Duration,
    /// Whether it may exchange an access token for a child session.
    pub sessions: bool,
}

/// Why a service registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceRejection {
    /// The name is empty, too long or has other characters than `A–Z a–z 0–9 . _ -`.
    #[error("a service name is 1-64 of A-Z a-z 0-9 . _ -")]
    Name,
    /// The audience is empty, longer than 256 bytes, or has spaces or control characters.
    #[error("an audience is 1-256 visible ASCII characters")]
    Audience,
    /// A scope is malformed, repeated, names an invalid role, or there are too many.
    #[error("invalid scope {0:?}: NAME or NAME=ROLE|ROLE, RFC 6749 characters, no repeats")]
    Scope(String),
    /// `max_ttl` is zero or longer than a day.
    #[error("max_ttl must be between 1s and 24h")]
    MaxTtl,
}

/// Why a token exchange was refused, in RFC 8693 / RFC 6749 terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeRejection {
    /// `invalid_target`: no service is registered for the audience, or it does not take
    /// child sessions.
    #[error("{0}")]
    InvalidTarget(&'static str),
    /// `invalid_scope`: a requested scope the service does not define or the user may not
    /// have, or not exactly one operation for a one-time token.
    #[error("{0}")]
    InvalidScope(&'static str),
}

impl NewService {
    /// The record to store at `now`, or why not.
    fn validate(&self, now: crate::time::Timestamp) -> Result<ServiceRecord, ServiceRejection> {
        let name_ok = (1..=64).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !name_ok {
            return Err(ServiceRejection::Name);
        }
        let audience_ok = (1..=256).contains(&self.audience.len())
            && self.audience.bytes().all(|b| b.is_ascii_graphic());
        if !audience_ok {
            return Err(ServiceRejection::Audience);
        }
        if self.max_ttl < Duration::from_secs(1) || self.max_ttl > MAX_SERVICE_TTL {
            return Err(ServiceRejection::MaxTtl);
        }
        if self.scopes.len() > MAX_SCOPES {
            return Err(ServiceRejection::Scope(format!(
                "{} scopes",
                self.scopes.len()
            )));
        }
        let mut scopes: Vec<ServiceScope> = Vec::with_capacity(self.scopes.len());
        for text in &self.scopes {
            let scope = parse_scope(text).ok_or_else(|| ServiceRejection::Scope(text.clone()))?;
            if scopes.iter().any(|known| known.name == scope.name) {
                return Err(ServiceRejection::Scope(text.clone()));
            }
            scopes.push(scope);
        }
        Ok(ServiceRecord {
            name: self.name.clone(),
            audience: self.audience.clone(),
            scopes,
            max_ttl: self.max_ttl,
            sessions: self.sessions,
            created_at: now,
        })
    }
}

/// `NAME` or `NAME=ROLE|ROLE…`.
fn parse_scope(text: &str) -> Option<ServiceScope> {
    let (name, roles) = match text.split_once('=') {
        Some((name, roles)) => (name, Some(roles)),
        None => (text, None),
    };
    if !is_scope_token(name) {
        return None;
    }
    let roles = match roles {
        None => Vec::new(),
        Some(roles) => {
            let mut parsed = Vec::new();
            for role in roles.split('|') {
                let role = Role::parse(role).ok()?;
                if parsed.len() >= MAX_SCOPES || parsed.contains(&role.as_str().to_owned()) {
                    return None;
                }
                parsed.push(role.as_str().to_owned());
            }
            parsed
        }
    };
    Some(ServiceScope {
        name: name.to_owned(),
        roles,
    })
}

/// RFC 6749 §3.3 `scope-token` (`%x21 / %x23-5B / %x5D-7E`), 1–64 characters, without `=`
/// (which separates the roles at registration).
pub fn is_scope_token(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E) && b != b'=')
}

/// The scopes of `service` that a user with `standing` may receive.
pub fn allowed_scopes<'a>(
    service: &'a ServiceRecord,
    standing: &Standing,
) -> impl Iterator<Item = &'a str> {
    service
        .scopes
        .iter()
        .filter(|scope| {
            scope.roles.is_empty()
                || scope
                    .roles
                    .iter()
                    .any(|role| standing.roles.iter().any(|held| held == role))
        })
        .map(|scope| scope.name.as_str())
}

/// The scopes to grant for `requested` (space-separated, RFC 6749 §3.3), never more than
/// [`allowed_scopes`]: all of those when nothing is requested.
pub fn grant_scopes(
    service: &ServiceRecord,
    standing: &Standing,
    requested: Option<&str>,
) -> Result<Vec<String>, ExchangeRejection> {
    let allowed: Vec<&str> = allowed_scopes(service, standing).collect();
    let Some(requested) = requested else {
        return Ok(allowed.into_iter().map(str::to_owned).collect());
    };
    let mut granted: Vec<String> = Vec::new();
    for scope in requested.split(' ').filter(|scope| !scope.is_empty()) {
        if !allowed.contains(&scope) {
            return Err(ExchangeRejection::InvalidScope(
                "a requested scope is not available to this user for this service",
            ));
        }
        if !granted.iter().any(|known| known == scope) {
            granted.push(scope.to_owned());
        }
    }
    Ok(granted)
}

impl Engine {
    /// Registers a downstream service. Records `service_created` (actor from the context)
    /// with its insertion.
    pub async fn register_service(&self, service: NewService) -> Result<ServiceRecord, Error> {
        let record = service.validate(self.now())?;
        let event = self
            .audit_event(AuditKind::ServiceCreated)
            .detail("name", &record.name)
            .detail("audience", &record.audience);
        let services = &self.inner.stores.services;
        let inserted = if self.audits() {
            services.insert_service_audited(&record, &event).await
        } else {
            services
                .insert_service(&record)
                .await
                .map(Audited::left_to_caller)
        };
        match inserted {
            Ok(inserted) => self.settle(inserted, |()| true, event).await,
            Err(StoreError::Conflict) => return Err(Error::ServiceTaken),
            Err(other) => return Err(other.into()),
        }
        Ok(record)
    }

    /// Every registered service, oldest first.
    pub async fn services(&self) -> Result<Vec<ServiceRecord>, Error> {
        Ok(self.inner.stores.services.list_services().await?)
    }

    /// Removes a service by name; [`Error::ServiceNotFound`] if there is none. Tokens issued
    /// for it stay valid until they expire; its child sessions until they end.
    pub async fn remove_service(&self, name: &str) -> Result<(), Error> {
        let event = self
            .audit_event(AuditKind::ServiceDeleted)
            .detail("name", name);
        let services = &self.inner.stores.services;
        let deleted = if self.audits() {
            services.delete_service_audited(name, &event).await?
        } else {
            Audited::left_to_caller(services.delete_service(name).await?)
        };
        if self.settle(deleted, |deleted| *deleted, event).await {
            Ok(())
        } else {
            Err(Error::ServiceNotFound)
        }
    }

    /// The service registered for exactly `audience`, or `invalid_target`.
    pub async fn service_for(&self, audience: &str) -> Result<ServiceRecord, Error> {
        self.inner
            .stores
            .services
            .service_by_audience(audience)
            .await?
            .ok_or(Error::Exchange(ExchangeRejection::InvalidTarget(
                "no service is registered for this audience",
            )))
    }

    /// The user's standing for an exchanged token: read afresh, refused like a dead
    /// subject token when the account is disabled or gone.
    pub async fn standing_for_exchange(&self, user_id: &UserId) -> Result<Standing, Error> {
        match self.inner.stores.users.user_by_id(user_id).await? {
            Some(record) if !record.standing.disabled => Ok(record.standing),
            _ => Err(Error::InvalidGrant),
        }
    }

    /// Creates a child session of `parent` for `service` (which must take sessions): same
    /// user, its own idle timeout, never past the parent's absolute expiry. Returns its
    /// token (hand it to the service, which sets it as its own cookie) and record.
    ///
    /// Races with the parent's revocation are closed from both sides: the revocation revokes
    /// the children it finds, and this re-reads the parent after inserting the child and
    /// revokes the child itself if the parent ended meanwhile — so no live child of a
    /// revoked parent is left, whichever runs first.
    pub async fn create_child_session(
        &self,
        parent: &ValidSession,
        service: &ServiceRecord,
    ) -> Result<(SessionToken, SessionRecord), Error> {
        if !service.sessions {
            return Err(Error::Exchange(ExchangeRejection::InvalidTarget(
                "this service does not take child sessions",
            )));
        }
        let parent_record = parent.record();
        if parent_record.parent.is_some() {
            return Err(Error::InvalidGrant);
        }
        self.standing_for_exchange(&parent_record.user_id).await?;
        let now = self.now();
        let token = SessionToken::generate()?;
        let expires_at = parent_record.expires_at;
        if now >= expires_at {
            return Err(Error::InvalidGrant);
        }
        let record = SessionRecord {
            id: token.session_id(),
            verifier: token.verifier(),
            user_id: parent_record.user_id.clone(),
            transport: parent_record.transport,
            created_at: now,
            auth_time: parent_record.auth_time,
            last_seen_at: now,
            idle_expires_at: self.inner.config.session.idle_expiry(now, expires_at),
            expires_at,
            ip: parent_record.ip.clone(),
            user_agent: parent_record.user_agent.clone(),
            revoked_at: None,
            parent: Some(ParentSession {
                id: parent_record.id.clone(),
                audience: service.audience.clone(),
            }),
        };
        let sessions = &self.inner.stores.sessions;
        sessions.insert_session(&record).await?;
        if !self.parent_is_live(&parent_record.id).await? {
            sessions.revoke_session(&record.id, self.now()).await?;
            self.forget_revoked(&record.id);
            return Err(Error::InvalidGrant);
        }
        Ok((token, record))
    }

    /// Whether the session `id` is unrevoked (by its record and by the revocation log this
    /// process has read) and unexpired, read from the store.
    pub(super) async fn parent_is_live(&self, id: &SessionId) -> Result<bool, Error> {
        if self.inner.revoked.contains_key(id) {
            return Ok(false);
        }
        let record = self.inner.stores.sessions.session_by_id(id).await?;
        Ok(record.is_some_and(|record| record.is_live(self.now())))
    }

    /// Revokes the live child sessions of `parent` (owned by `user_id`), each logged like
    /// any revocation so every verifier drops them. Returns how many it revoked.
    pub(super) async fn revoke_children(
        &self,
        parent: &SessionId,
        user_id: &UserId,
    ) -> Result<usize, Error> {
        let sessions = &self.inner.stores.sessions;
        let children = sessions.children_of(parent, user_id, self.now()).await?;
        let mut revoked = 0;
        for child in &children {
            if sessions.revoke_session(child, self.now()).await? {
                revoked += 1;
            }
            self.forget_revoked(child);
        }
        Ok(revoked)
    }
}
