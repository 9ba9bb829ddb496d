//! Opaque session tokens — the browser's session cookie, or a bearer session token — for a
//! service routed behind Tessera's own origin. Tessera is asked once per token (RFC 7662
//! introspection, with the service's client credentials); the answer is cached by the
//! token's SHA-256, never past the session's idle expiry nor a short maximum age, and the
//! revocation set is checked on every request as for JWTs, so a logout is honoured within
//! the same staleness bound.
//!
//! Cookie-carried requests with unsafe methods need what Tessera itself demands (see its
//! `csrf` module): a browser's `Sec-Fetch-Site`/`Origin` must name Tessera's origin, and
//! `X-CSRF-Token` must hold the session's CSRF token. Introspection answers the SHA-256 of
//! that token (`csrf_token_sha256`), never the token.
//!
//! A child session — one a stateful service obtained for itself by token exchange — is
//! introspected with the `aud` of the service it belongs to: a session whose `aud` does not
//! name this service is not active here (a cart session must not open billing). An ordinary
//! session has no `aud` and is accepted by every service that accepts sessions.

use std::sync::Arc;

use axum::http::header::{COOKIE, ORIGIN};
use axum::http::{HeaderMap, Method, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tessera_jose::Audience;

use crate::error::FetchError;
use crate::fetch::Tessera;
use crate::principal::Principal;
use crate::verified::CredentialHash;

/// The header carrying the session's CSRF token, as on Tessera.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// Length of Tessera's encoded session token (48 bytes in base64url).
const SESSION_TOKEN_LEN: usize = 64;

/// How a session token reached the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carrier {
    Cookie,
    Bearer,
}

/// What introspection said about a session token, as cached: `None` = not active (unknown,
/// expired, revoked, or not a session token at all). Inactive is final for a session token,
/// so it is cached too: a flood of one made-up token costs Tessera one question.
pub(crate) type SessionAnswer = Option<Arc<ActiveSession>>;

/// A live session, as Tessera described it.
#[derive(Debug)]
pub(crate) struct ActiveSession {
    pub(crate) principal: Principal,
    /// SHA-256 of the session's CSRF token.
    csrf_token_sha256: Option<[u8; 32]>,
}

impl ActiveSession {
    /// Whether `headers` carry this session's CSRF token, compared in constant time.
    pub(crate) fn csrf_matches(&self, headers: &HeaderMap) -> bool {
        let (Some(expected), Some(presented)) = (
            self.csrf_token_sha256.as_ref(),
            headers.get(CSRF_HEADER).map(|value| value.as_bytes()),
        ) else {
            return false;
        };
        let presented: [u8; 32] = Sha256::digest(presented).into();
        bool::from(presented.ct_eq(expected))
    }
}

/// The builder's session settings, resolved.
#[derive(Debug, Clone)]
pub(crate) struct SessionOptions {
    /// The session cookie's name, when cookies are accepted.
    pub(crate) cookie_name: Option<String>,
    /// Whether `Authorization: Bearer <session token>` is accepted.
    pub(crate) bearer_tokens: bool,
    /// `POST` target for introspection (from the metadata).
    pub(crate) introspection_endpoint: String,
    /// Tessera's origin: the only one allowed to send cookie-carried unsafe requests.
    pub(crate) origin: Option<Origin>,
    /// The longest an answer is reused, seconds.
    pub(crate) max_age_seconds: i64,
    /// This service's audience: a child session's `aud` must name it.
    pub(crate) audience: String,
}

/// Whether `token` has the shape of a Tessera session token (64 base64url characters), so
/// anything else is refused without asking Tessera.
pub(crate) fn is_session_token(token: &str) -> bool {
    token.len() == SESSION_TOKEN_LEN
        && token
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// The value of the session cookie `name`: `Ok(None)` without one, `Err` when it is sent
/// more than once (which one would be the session?).
pub(crate) fn session_cookie<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Result<Option<&'h str>, ()> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for cookie in cookie::Cookie::split_parse(text).flatten() {
            if cookie.name() == name {
                if found.is_some() {
                    return Err(());
                }
                found = cookie.value_raw();
            }
        }
    }
    Ok(found)
}

/// Safe methods change nothing, so need no CSRF defence (RFC 9110 §9.2.1).
pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Check 1 of Tessera's CSRF defence: a browser's `Sec-Fetch-Site` and `Origin` must not
/// say the request comes from another site than Tessera's origin. Clients that send
/// neither are not browsers.
pub(crate) fn origin_allowed(headers: &HeaderMap, own: Option<&Origin>) -> bool {
    let origin_allowed = headers.get(ORIGIN).map(|value| {
        let parsed = value.to_str().ok().and_then(Origin::parse);
        parsed.is_some() && parsed.as_ref() == own
    });
    let site_allowed = match headers.get("sec-fetch-site").map(|value| value.as_bytes()) {
        None | Some(b"same-origin" | b"none") => true,
        Some(b"same-site") => origin_allowed == Some(true),
        // `cross-site`, and anything a browser should not send.
        Some(_) => false,
    };
    site_allowed && origin_allowed != Some(false)
}

/// A web origin: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of a URL (`Origin` header value or Tessera's URL); `None` when it has none.
    pub(crate) fn parse(text: &str) -> Option<Origin> {
        let uri: Uri = text.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return None,
        };
        let authority = uri.authority()?;
        if authority.as_str().contains('@') {
            return None;
        }
        Some(Origin {
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(port),
            scheme,
        })
    }
}

/// `POST /v1/introspect`'s answer, the members used here.
#[derive(Debug, Deserialize)]
struct Introspection {
    active: bool,
    token_type: Option<String>,
    sub: Option<String>,
    sid: Option<String>,
    exp: Option<i64>,
    username: Option<String>,
    csrf_token_sha256: Option<String>,
    /// A child session's service (RFC 7662 `aud`: a string or an array); absent for an
    /// ordinary session.
    aud: Option<Audience>,
}

/// Asks Tessera about `token`: the answer, and until when it may be reused.
pub(crate) async fn introspect(
    tessera: &Tessera,
    options: &SessionOptions,
    token: &str,
    now: i64,
) -> Result<(SessionAnswer, i64), FetchError> {
    let answer: Introspection = tessera
        .post_form(&options.introspection_endpoint, &[("token", token)])
        .await?;
    let longest = now.saturating_add(options.max_age_seconds);
    // Only a session token: a refresh token is opaque too, and proves nothing here.
    let active = answer.active && answer.token_type.as_deref() == Some("session_token");
    let (true, Some(subject), Some(session_id), Some(expires_at)) =
        (active, answer.sub, answer.sid, answer.exp)
    else {
        return Ok((None, longest));
    };
    let audience = match answer.aud {
        None => Vec::new(),
        Some(audience) if audience.contains(&options.audience) => {
            audience.iter().map(str::to_owned).collect()
        }
        Some(_) => {
            tracing::debug!("a child session of another service refused");
            return Ok((None, longest));
        }
    };
    let csrf_token_sha256 = answer
        .csrf_token_sha256
        .and_then(|encoded| URL_SAFE_NO_PAD.decode(encoded).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
    let session = ActiveSession {
        principal: Principal::from_session(
            subject,
            session_id,
            answer.username,
            expires_at,
            audience,
        ),
        csrf_token_sha256,
    };
    Ok((Some(Arc::new(session)), longest.min(expires_at)))
}

/// The cache key of a session token: its SHA-256 under a prefix of its own, so it never
/// collides with a JWT's entry.
pub(crate) fn hash(token: &str) -> CredentialHash {
    Sha256::new()
        .chain_update(b"session:")
        .chain_update(token.as_bytes())
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_the_session_token_shape_is_worth_a_question() {
        assert!(is_session_token(&"a".repeat(64)));
        assert!(is_session_token(&format!("{}-_", "Z9".repeat(31))));
        assert!(!is_session_token(&"a".repeat(63)));
        assert!(!is_session_token(&"a".repeat(65)));
        assert!(!is_session_token(&format!("{}+", "a".repeat(63))));
        assert!(!is_session_token(&format!("{}.", "a".repeat(63))));
    }

    #[test]
    fn the_session_cookie_is_read_once_and_a_repeated_one_refused() {
        let one = headers(&[("cookie", "theme=dark; sid=abc"), ("cookie", "x=1")]);
        assert_eq!(session_cookie(&one, "sid"), Ok(Some("abc")));
        assert_eq!(session_cookie(&one, "other"), Ok(None));
        let two = headers(&[("cookie", "sid=abc"), ("cookie", "sid=def")]);
        assert_eq!(session_cookie(&two, "sid"), Err(()));
    }

    #[test]
    fn unsafe_cookie_requests_must_come_from_tessera_s_origin() {
        let own = Origin::parse("https://auth.example.com");
        let own = own.as_ref();
        assert!(origin_allowed(&headers(&[]), own), "not a browser");
        assert!(origin_allowed(
            &headers(&[
                ("origin", "https://auth.example.com"),
                ("sec-fetch-site", "same-origin")
            ]),
            own
        ));
        assert!(origin_allowed(
            &headers(&[("origin", "https://AUTH.example.com:443")]),
            own
        ));
        for refused in [
            headers(&[("origin", "https://evil.example")]),
            headers(&[("origin", "http://auth.example.com")]),
            headers(&[("origin", "null")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[("sec-fetch-site", "Same-Origin")]),
        ] {
            assert!(!origin_allowed(&refused, own), "{refused:?}");
        }
        assert!(origin_allowed(
            &headers(&[
                ("origin", "https://auth.example.com"),
                ("sec-fetch-site", "same-site")
            ]),
            own
        ));
    }

    #[test]
    fn the_csrf_token_is_compared_by_its_hash() {
        let session = ActiveSession {
            principal: Principal::from_session("u".into(), "s".into(), None, 0, Vec::new()),
            csrf_token_sha256: Some(Sha256::digest(b"the-token").into()),
        };
        assert!(session.csrf_matches(&headers(&[(CSRF_HEADER, "the-token")])));
        assert!(!session.csrf_matches(&headers(&[(CSRF_HEADER, "the-tokem")])));
        assert!(!session.csrf_matches(&headers(&[])));
        let without = ActiveSession {
            csrf_token_sha256: None,
            ..session
        };
        assert!(!without.csrf_matches(&headers(&[(CSRF_HEADER, "the-token")])));
    }
}
