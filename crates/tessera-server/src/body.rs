//! Response bodies, shared by the handlers and the OpenAPI document.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Serialize, Serializer};
use tessera_core::{EncodedToken, SessionRecord, Timestamp, User, ValidSession};
use time::OffsetDateTime;
use time::macros::format_description;
use utoipa::ToSchema;

/// A timestamp shown as RFC 3339 UTC with milliseconds, formatted without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Rfc3339(pub Timestamp);

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let nanos = i128::from(self.0.unix_millis()) * 1_000_000;
        let time =
            OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(serde::ser::Error::custom)?;
        let year = time.year();
        if !(0..=9999).contains(&year) {
            // Outside four-digit years: let `time` spell it (never reached with real clocks).
            let format = format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            let text = time.format(format).map_err(serde::ser::Error::custom)?;
            return serializer.serialize_str(&text);
        }
        // `time` computed the calendar fields; placing their digits by hand is five times
        // faster than interpreting a format description, and this runs four times per
        // session response.
        let (hour, minute, second, milli) = time.to_hms_milli();
        let mut text = *b"0000-00-00T00:00:00.000Z";
        put_digits(&mut text[0..4], year.unsigned_abs());
        put_digits(&mut text[5..7], u32::from(u8::from(time.month())));
        put_digits(&mut text[8..10], u32::from(time.day()));
        put_digits(&mut text[11..13], u32::from(hour));
        put_digits(&mut text[14..16], u32::from(minute));
        put_digits(&mut text[17..19], u32::from(second));
        put_digits(&mut text[20..23], u32::from(milli));
        let text = std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }
}

/// Writes `value` as zero-padded decimal filling `slot`.
fn put_digits(slot: &mut [u8], mut value: u32) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Formats a timestamp for people (the CLI).
pub fn rfc3339(timestamp: Timestamp) -> String {
    serde_json::to_value(Rfc3339(timestamp))
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A created user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody<'a> {
    /// Public user id.
    pub id: &'a str,
    /// The username as registered.
    pub username: &'a str,
    /// When the account was created (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
}

impl<'a> From<&'a User> for UserBody<'a> {
    fn from(user: &'a User) -> Self {
        UserBody {
            id: user.id.as_str(),
            username: &user.username,
            created_at: Rfc3339(user.created_at),
        }
    }
}

/// The user a session belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionUser<'a> {
    /// Public user id.
    pub id: &'a str,
    /// Username.
    pub username: &'a str,
}

/// A session, as its owner may see it. Never contains a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionBody<'a> {
    /// Public session id (safe to show; revoke with `DELETE /v1/sessions/{id}`).
    pub id: &'a str,
    /// The owner.
    pub user: SessionUser<'a>,
    /// `cookie` or `token`: how the session was handed out at login.
    pub transport: &'static str,
    /// Login time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
    /// Last request seen.
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: Rfc3339,
    /// When the session ends without further requests.
    #[schema(value_type = String, format = DateTime)]
    pub idle_expires_at: Rfc3339,
    /// When the session ends regardless of activity.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Rfc3339,
    /// Client address at login.
    pub ip: Option<&'a str>,
    /// Client `User-Agent` at login.
    pub user_agent: Option<&'a str>,
    /// In `GET /v1/sessions`: whether this is the session making the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
}

impl<'a> SessionBody<'a> {
    /// The session making the request.
    pub fn current(session: &'a ValidSession) -> Self {
        let record = session.record();
        SessionBody {
            last_seen_at: Rfc3339(session.last_seen_at()),
            idle_expires_at: Rfc3339(session.idle_expires_at()),
            ..SessionBody::listed(record, session.username(), None)
        }
    }

    /// A session from the store.
    pub fn listed(record: &'a SessionRecord, username: &'a str, current: Option<bool>) -> Self {
        SessionBody {
            id: record.id.as_str(),
            user: SessionUser {
                id: record.user_id.as_str(),
                username,
            },
            transport: record.transport.as_str(),
            created_at: Rfc3339(record.created_at),
            last_seen_at: Rfc3339(record.last_seen_at),
            idle_expires_at: Rfc3339(record.idle_expires_at),
            expires_at: Rfc3339(record.expires_at),
            ip: record.ip.as_deref(),
            user_agent: record.user_agent.as_deref(),
            current,
        }
    }
}

/// `GET /v1/session`, and `POST /v1/login` with the cookie transport.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrentSession<'a> {
    /// The session.
    pub session: SessionBody<'a>,
    /// The session's CSRF token, to send as `X-CSRF-Token` on unsafe requests; present when
    /// the session cookie authenticated the request.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "encoded_token"
    )]
    #[schema(value_type = Option<String>)]
    pub csrf_token: Option<EncodedToken>,
}

fn encoded_token<S: Serializer>(
    token: &Option<EncodedToken>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match token {
        Some(token) => serializer.serialize_str(token.as_str()),
        None => serializer.serialize_none(),
    }
}

/// `GET /v1/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList<'a> {
    /// The caller's live sessions, newest first.
    pub sessions: Vec<SessionBody<'a>>,
}

/// `DELETE /v1/sessions?scope=…`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// How many sessions were revoked.
    pub revoked: usize,
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    pub status: &'static str,
}

/// A JSON response with the given status.
pub fn json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Serializes `body` to JSON bytes; serialization of these types cannot fail, but if it did
/// the client would get an empty body rather than a crash.
pub fn to_json<T: Serialize>(body: &T) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(512);
    if serde_json::to_writer(&mut bytes, body).is_err() {
        bytes.clear();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let text = rfc3339(Timestamp::from_unix_millis(1_700_000_000_123));
        assert_eq!(text, "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(Timestamp::EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(951_782_400_007)),
            "2000-02-29T00:00:00.007Z"
        );
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(253_402_300_799_999)),
            "9999-12-31T23:59:59.999Z"
        );
    }
}
