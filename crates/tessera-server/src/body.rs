//! Response bodies, shared by the handlers and the OpenAPI document.

use std::sync::LazyLock;

use axum::body::Body;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::{Serialize, Serializer};
use tessera_core::{EncodedToken, SessionRecord, Timestamp, User, ValidSession};
use time::OffsetDateTime;
use time::macros::format_description;
use utoipa::ToSchema;

/// A timestamp shown as RFC 3339 UTC with milliseconds, formatted without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Rfc3339(pub Timestamp);

impl Rfc3339 {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, or `None` outside the years 0 to 9999.
    ///
    /// `time` computes the calendar fields from whole seconds (its nanosecond constructor
    /// divides 128-bit integers); the digits are placed by hand, five times faster than
    /// interpreting a format description. This runs four times per session response.
    fn four_digit_year(self) -> Option<[u8; 24]> {
        let millis = self.0.unix_millis();
        let time = OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000)).ok()?;
        let year = time.year();
        if !(0..=9999).contains(&year) {
            return None;
        }
        let (hour, minute, second) = time.to_hms();
        let mut text = *b"0000-00-00T00:00:00.000Z";
        put_digits(&mut text[0..4], year.unsigned_abs());
        put_digits(&mut text[5..7], u32::from(u8::from(time.month())));
        put_digits(&mut text[8..10], u32::from(time.day()));
        put_digits(&mut text[11..13], u32::from(hour));
        put_digits(&mut text[14..16], u32::from(minute));
        put_digits(&mut text[17..19], u32::from(second));
        // In 0..1000, so the cast is exact.
        put_digits(&mut text[20..23], millis.rem_euclid(1000) as u32);
        Some(text)
    }

    /// Appends the JSON string.
    fn write_json(self, out: &mut Vec<u8>) {
        match self.four_digit_year() {
            Some(text) => {
                out.push(b'"');
                out.extend_from_slice(&text);
                out.push(b'"');
            }
            None => write_with_serde(out, &self),
        }
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(text) = self.four_digit_year() {
            let text = std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?;
            return serializer.serialize_str(text);
        }
        // Outside four-digit years: let `time` spell it (never reached with real clocks).
        let nanos = i128::from(self.0.unix_millis()) * 1_000_000;
        let time =
            OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(serde::ser::Error::custom)?;
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let text = time.format(format).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
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
    /// When the user last proved their password for this session: at login, or at the last
    /// `POST /v1/reauthenticate`. Password change, account deletion and `DELETE /v1/sessions`
    /// need it within `session.reauthentication_window`.
    #[schema(value_type = String, format = DateTime)]
    pub auth_time: Rfc3339,
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
            auth_time: Rfc3339(record.auth_time),
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

impl CurrentSession<'_> {
    /// The body as JSON: byte for byte what serde writes for it (the tests hold the two
    /// together), written directly because every `GET /v1/session` answers one, and serde's
    /// generic path (a call per field, every string escaped byte by byte) cost more than the
    /// rest of the handler.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"{\"session\":");
        self.session.write_json(&mut out);
        if let Some(token) = &self.csrf_token {
            out.extend_from_slice(b",\"csrf_token\":");
            write_str(&mut out, token.as_str());
        }
        out.push(b'}');
        out
    }
}

impl SessionBody<'_> {
    /// Appends the JSON object, fields in declaration order as serde writes them.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        write_str(out, self.id);
        out.extend_from_slice(b",\"user\":{\"id\":");
        write_str(out, self.user.id);
        out.extend_from_slice(b",\"username\":");
        write_str(out, self.user.username);
        out.extend_from_slice(b"},\"transport\":");
        write_str(out, self.transport);
        for (name, time) in [
            (&b",\"created_at\":"[..], self.created_at),
            (b",\"last_seen_at\":", self.last_seen_at),
            (b",\"idle_expires_at\":", self.idle_expires_at),
            (b",\"expires_at\":", self.expires_at),
            (b",\"auth_time\":", self.auth_time),
        ] {
            out.extend_from_slice(name);
            time.write_json(out);
        }
        out.extend_from_slice(b",\"ip\":");
        write_optional_str(out, self.ip);
        out.extend_from_slice(b",\"user_agent\":");
        write_optional_str(out, self.user_agent);
        match self.current {
            Some(true) => out.extend_from_slice(b",\"current\":true"),
            Some(false) => out.extend_from_slice(b",\"current\":false"),
            None => {}
        }
        out.push(b'}');
    }
}

/// Appends `text` as a JSON string. Text with nothing to escape (ids, base64, most user
/// agents) is copied as it is; anything else is escaped by serde_json.
fn write_str(out: &mut Vec<u8>, text: &str) {
    // A fold without early exit, so the compiler checks many bytes at once: a user agent
    // took as long byte by byte as the rest of the body.
    let needs_escape = text.bytes().fold(false, |found, byte| {
        found | (byte < 0x20) | (byte == b'"') | (byte == b'\\')
    });
    if needs_escape {
        write_with_serde(out, text);
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

fn write_optional_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => write_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends `value` as serde_json writes it. Writing a string or a timestamp into a `Vec`
/// cannot fail; if it did, the value would be `null` rather than half written.
fn write_with_serde<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let start = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"null");
    }
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
    /// The caller's live sessions (those of their logins), newest first, each with its
    /// child sessions.
    pub sessions: Vec<ListedSession<'a>>,
}

/// A session in `GET /v1/sessions`, with the child sessions services obtained from it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedSession<'a> {
    /// The session.
    #[serde(flatten)]
    pub session: SessionBody<'a>,
    /// Its live child sessions: sessions a registered stateful service exchanged an access
    /// token of this session for (RFC 8693). They end with it; revoking one leaves it alone.
    /// Omitted when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildSessionBody<'a>>,
}

/// A child session in `GET /v1/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChildSessionBody<'a> {
    /// The session.
    #[serde(flatten)]
    pub session: SessionBody<'a>,
    /// The audience of the service it belongs to.
    pub service: &'a str,
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

/// The headers every API response carries (added on the way out by
/// `server::security_headers` when a response lacks them).
pub(crate) const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (CACHE_CONTROL, "no-store"),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (X_FRAME_OPTIONS, "DENY"),
    (REFERRER_POLICY, "no-referrer"),
    (
        CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
];

/// The headers of a JSON response: the security headers first, then the type. Responses
/// start from a copy, so the security layer finds its five in place with one comparison,
/// where looking each up and inserting it cost about 2k instructions per request.
static JSON_HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
    let mut headers = HeaderMap::with_capacity(SECURITY_HEADERS.len() + 1);
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers
});

/// Whether the first five header values are the security headers with their default values,
/// as in a response built by [`response`] (a handler may have appended to or replaced them
/// since; then the comparison fails and the layer checks each).
pub(crate) fn starts_with_security_headers(headers: &HeaderMap) -> bool {
    headers
        .iter()
        .take(SECURITY_HEADERS.len())
        .map(|(name, value)| (name, value.as_bytes()))
        .eq(SECURITY_HEADERS
            .iter()
            .map(|(name, value)| (name, value.as_bytes())))
}

/// A JSON response.
pub fn json(status: StatusCode, body: Vec<u8>) -> Response {
    with_headers(status, JSON_HEADERS.clone(), body)
}

/// A response of `content_type`.
pub fn response(status: StatusCode, content_type: HeaderValue, body: Vec<u8>) -> Response {
    let mut headers = JSON_HEADERS.clone();
    headers.insert(CONTENT_TYPE, content_type);
    with_headers(status, headers, body)
}

fn with_headers(status: StatusCode, headers: HeaderMap, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
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
        assert_eq!(
            rfc3339(Timestamp::from_unix_millis(-1)),
            "1969-12-31T23:59:59.999Z"
        );
    }

    fn body<'a>(username: &'a str, user_agent: Option<&'a str>) -> SessionBody<'a> {
        SessionBody {
            id: "mpGmX-v0BJD6OxtCzXuYIQ",
            user: SessionUser {
                id: "sLTX5JjTOSssNHKknYmCSw",
                username,
            },
            transport: "cookie",
            created_at: Rfc3339(Timestamp::from_unix_millis(1_700_000_000_123)),
            last_seen_at: Rfc3339(Timestamp::from_unix_millis(-62_167_219_200_001)),
            idle_expires_at: Rfc3339(Timestamp::EPOCH),
            expires_at: Rfc3339(Timestamp::from_unix_millis(253_402_300_799_999)),
            auth_time: Rfc3339(Timestamp::from_unix_millis(1_700_000_000_456)),
            ip: Some("127.0.0.1"),
            user_agent,
            current: None,
        }
    }

    #[test]
    fn hand_written_session_json_is_what_serde_writes() {
        let csrf = tessera_core::SessionToken::generate()
            .unwrap()
            .csrf_token()
            .encoded();
        let odd = "quote \" backslash \\ tab \t nul \u{0} del \u{7f} é 🙂 </script>";
        for (username, user_agent) in [("bench", Some("curl/7.88.1")), (odd, Some(odd)), ("", None)]
        {
            for csrf_token in [Some(csrf), None] {
                for current in [None, Some(true), Some(false)] {
                    let body = CurrentSession {
                        session: SessionBody {
                            current,
                            ..body(username, user_agent)
                        },
                        csrf_token,
                    };
                    let ours = String::from_utf8(body.to_json()).unwrap();
                    assert_eq!(ours, String::from_utf8(to_json(&body)).unwrap());
                }
            }
        }
    }
}
