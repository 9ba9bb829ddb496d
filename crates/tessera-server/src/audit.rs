//! The audit trail at the edges: [`Audit`], the extractor that gives a handler the
//! request's [`AuditContext`] (client address, `User-Agent`), so the engine's events say
//! where a change came from — handlers that change something hand it to
//! [`Engine::with_context`](tessera_core::Engine::with_context), and the session check never
//! pays for it — and [`event_json`], the one JSON shape of an event, with
//! [`parse_rfc3339`] for the time filters.

use axum::extract::FromRequestParts;
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use tessera_core::{AuditContext, AuditRecord, SessionId, Timestamp, UserId};

use crate::AppState;
use crate::body::rfc3339;
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

/// An audit event as JSON, the one shape `tessera audit --json` prints (and an admin API
/// can answer with): `id` (the cursor), `time` (RFC 3339), `type`, `actor_type`,
/// `actor_id`, `user_id`, `session_id`, `ip`, `user_agent`, `outcome` and `detail` (an
/// object of strings); absent values are `null`.
pub fn event_json(record: &AuditRecord) -> serde_json::Value {
    let event = &record.event;
    let detail: serde_json::Map<String, serde_json::Value> = event
        .detail
        .iter()
        .map(|(key, value)| (key.to_owned(), value.into()))
        .collect();
    serde_json::json!({
        "id": record.id,
        "time": rfc3339(event.at),
        "type": event.kind.as_str(),
        "actor_type": event.actor.kind(),
        "actor_id": event.actor.id(),
        "user_id": event.user_id.as_ref().map(UserId::as_str),
        "session_id": event.session_id.as_ref().map(SessionId::as_str),
        "ip": event.ip,
        "user_agent": event.user_agent,
        "outcome": event.outcome.as_str(),
        "detail": detail,
    })
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
