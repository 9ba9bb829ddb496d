//! The audit trail at the edges: [`Audit`], the extractor that gives a handler the
//! request's [`AuditContext`] (client address, `User-Agent`), so the engine's events say
//! where a change came from — handlers that change something hand it to
//! [`Engine::with_context`](tessera_core::Engine::with_context), and the session check never
//! pays for it — and [`EventBody`], the one JSON shape of an event, with
//! [`parse_rfc3339`] for the time filters.

use std::collections::BTreeMap;

use axum::extract::FromRequestParts;
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use serde::Serialize;
use tessera_core::{AuditContext, AuditRecord, SessionId, Timestamp, UserId};
use utoipa::ToSchema;

use crate::AppState;
use crate::body::Rfc3339;
use crate::extract::ClientIp;
use crate::problem::Problem;

/// The request's audit context: the client's address (through `server.trusted_proxies`,
/// as for the login throttle) and its `User-Agent`, with no actor. A handler that knows
/// who acts (an administrator's client) sets it with [`AuditContext::acting`].
#[derive(Debug, Clone)]
pub struct Audit(pub AuditContext);

impl FromRequestParts<AppState> for Audit {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|value| value.to_str().ok());
        Ok(Audit(AuditContext::request(ip, user_agent)))
    }
}

/// An audit event as JSON: the one shape `tessera audit --json` prints and
/// `GET /v1/admin/audit` answers with. Absent values are `null`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventBody<'a> {
    /// Position in the trail, increasing in commit order: the cursor.
    pub id: u64,
    /// When it happened, by the clock of the instance that recorded it (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub time: Rfc3339,
    /// What happened: `login_succeeded`, `login_failed`, `login_throttled`, `logout`,
    /// `session_revoked`, `sessions_revoked`, `refresh_reuse_detected`, `user_created`,
    /// `user_deleted`, `password_changed`, `password_reset`, `user_disabled`,
    /// `user_enabled`, `roles_changed`, `key_rotated`, `client_created`, `client_deleted`,
    /// `service_created`, `service_deleted`, `token_exchanged` or `admin_action`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Who did it: `user`, `client` (an admin client), `cli`, `system` or `anonymous`.
    pub actor_type: &'static str,
    /// The user id or client id of a `user` or `client` actor.
    pub actor_id: Option<&'a str>,
    /// The account it concerns.
    pub user_id: Option<&'a str>,
    /// The session it concerns.
    pub session_id: Option<&'a str>,
    /// The client's address, for events that came over HTTP.
    pub ip: Option<&'a str>,
    /// The client's `User-Agent`, cut to 256 bytes.
    pub user_agent: Option<&'a str>,
    /// `success` or `failure`.
    pub outcome: &'static str,
    /// A few words more, as strings (`transport`, `count`, `kid`, …); never a secret.
    pub detail: BTreeMap<&'a str, &'a str>,
}

impl<'a> From<&'a AuditRecord> for EventBody<'a> {
    fn from(record: &'a AuditRecord) -> Self {
        let event = &record.event;
        EventBody {
            id: record.id,
            time: Rfc3339(event.at),
            kind: event.kind.as_str(),
            actor_type: event.actor.kind(),
            actor_id: event.actor.id(),
            user_id: event.user_id.as_ref().map(UserId::as_str),
            session_id: event.session_id.as_ref().map(SessionId::as_str),
            ip: event.ip.as_deref(),
            user_agent: event.user_agent.as_deref(),
            outcome: event.outcome.as_str(),
            detail: event.detail.iter().collect(),
        }
    }
}

/// An audit event as a JSON value ([`EventBody`]): `id` (the cursor), `time` (RFC 3339),
/// `type`, `actor_type`, `actor_id`, `user_id`, `session_id`, `ip`, `user_agent`, `outcome`
/// and `detail` (an object of strings); absent values are `null`.
pub fn event_json(record: &AuditRecord) -> serde_json::Value {
    // Strings, numbers and a map with string keys: serializing cannot fail.
    serde_json::to_value(EventBody::from(record)).unwrap_or(serde_json::Value::Null)
}

/// Text that is not an RFC 3339 time in UTC (`2026-01-31T12:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be an RFC 3339 time in UTC, like 2026-01-31T12:00:00Z")]
pub struct NotRfc3339;

/// Parses an RFC 3339 time in UTC (`Z`; fractions of a second kept to the millisecond), for
/// the audit filters `since` and `until`.
pub fn parse_rfc3339(text: &str) -> Result<Timestamp, NotRfc3339> {
    let time = humantime::parse_rfc3339(text).map_err(|_| NotRfc3339)?;
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| NotRfc3339)?;
    let millis = i64::try_from(since_epoch.as_millis()).map_err(|_| NotRfc3339)?;
    Ok(Timestamp::from_unix_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_to_the_millisecond() {
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20Z"),
            Ok(Timestamp::from_unix_millis(1_700_000_000_000))
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.250Z"),
            Ok(Timestamp::from_unix_millis(1_700_000_000_250))
        );
        for bad in ["2023-11-14", "yesterday", "2023-11-14T22:13:20+02:00", ""] {
            assert_eq!(parse_rfc3339(bad), Err(NotRfc3339), "{bad}");
        }
    }
}
