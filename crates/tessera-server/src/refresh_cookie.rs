//! The refresh cookie of single-page apps on the token transport.
//!
//! A browser app that keeps its access token in memory still needs the refresh token to
//! survive a reload, and script-readable storage would hand it to any injected script. So a
//! token-transport login may ask for it in a cookie instead (`"refresh_cookie": true`):
//! `__Secure-tessera_refresh`, `HttpOnly` (no script reads it), `Secure`, `SameSite=Strict`
//! and `Path=/v1/token` (only the token endpoint ever receives it). `POST /v1/token` with
//! `grant_type=refresh_token` and no `refresh_token` parameter spends it, and rotation
//! replaces it.
//!
//! The cookie is ambient, so its use is CSRF-protected like a cookie session: the request
//! must come from an allowed origin (an `Origin` header, or `Sec-Fetch-Site: same-origin`,
//! that passes [`OriginPolicy::check`](crate::csrf::OriginPolicy::check)) and must be JSON,
//! which a cross-site form cannot send and cross-site `fetch` cannot send without a CORS
//! preflight this server never grants.

use axum::http::header::{CONTENT_TYPE, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use cookie::SameSite;
use tessera_tokens::SignedTokens;

use crate::AppState;
use crate::cookies;
use crate::errors::OAuthError;

/// The only path the browser sends the cookie to.
const PATH: &str = "/v1/token";

/// The refresh cookie as a `POST /v1/token` request presented it.
#[derive(Debug)]
pub(crate) struct RefreshCookie {
    /// The cookie's value, if exactly one such cookie came.
    value: Option<String>,
    /// Why the request may not use the cookie, if it may not.
    refused: Option<&'static str>,
}

impl RefreshCookie {
    /// Reads the cookie and the request's CSRF credentials (before the body is consumed).
    pub(crate) fn read(state: &AppState, headers: &HeaderMap) -> RefreshCookie {
        // Two cookies of the name are treated as none: never guess between them.
        let value = cookies::single(headers, name(state))
            .ok()
            .flatten()
            .map(str::to_owned);
        RefreshCookie {
            value,
            refused: csrf_refusal(state, headers),
        }
    }

    /// The refresh token to spend for a request that named none: the cookie's, if it has
    /// one and may use it; otherwise why not ([`Unusable::response`] is the answer).
    pub(crate) fn token(&self) -> Result<&str, Unusable> {
        let Some(value) = self.value.as_deref() else {
            return Err(Unusable::Missing);
        };
        match self.refused {
            Some(reason) => Err(Unusable::Refused(reason)),
            None => Ok(value),
        }
    }

    /// A refusal of the cookie's refresh token (`invalid_grant`): the cookie is cleared, as
    /// it can never work again.
    pub(crate) fn refused(state: &AppState, mut response: Response) -> Response {
        response.headers_mut().append(SET_COOKIE, clear(state));
        response
    }
}

/// Why a token request cannot use the refresh cookie.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Unusable {
    /// No cookie (and no `refresh_token` parameter).
    Missing,
    /// The request could have been made by another site.
    Refused(&'static str),
}

impl Unusable {
    /// The OAuth error to answer with.
    pub(crate) fn response(self) -> Response {
        match self {
            Unusable::Missing => OAuthError::invalid_request("refresh_token is required"),
            Unusable::Refused(reason) => {
                OAuthError::response(StatusCode::FORBIDDEN, "invalid_request", reason)
            }
        }
    }
}

fn csrf_refusal(state: &AppState, headers: &HeaderMap) -> Option<&'static str> {
    const CROSS_SITE: &str = "the refresh cookie is only accepted from this server's own origin";
    if state.http.origins.check(headers).is_err() {
        return Some(CROSS_SITE);
    }
    let vouched = headers.contains_key(ORIGIN)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes() == b"same-origin");
    if !vouched {
        return Some(CROSS_SITE);
    }
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<mime::Mime>().ok())
        .is_some_and(|mime| mime.type_() == "application" && mime.subtype() == "json");
    if !is_json {
        return Some("the refresh cookie is only accepted with an application/json body");
    }
    None
}

/// Puts the pair's refresh token in the cookie (the access token goes in the body).
pub(crate) fn set(state: &AppState, headers: &mut HeaderMap, tokens: &SignedTokens) {
    let lifetime = tokens
        .refresh_expires_at
        .duration_since(state.engine.clock().now());
    let max_age = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let value = cookies::set(
        name(state),
        &tokens.refresh_token.encode(),
        attributes(state, Some(max_age)),
    );
    headers.append(SET_COOKIE, value);
}

/// A `Set-Cookie` that removes the refresh cookie (logout, a refused refresh).
pub(crate) fn clear(state: &AppState) -> HeaderValue {
    cookies::removal(name(state), attributes(state, None))
}

fn attributes(state: &AppState, max_age: Option<i64>) -> cookies::Attributes {
    cookies::Attributes {
        secure: state.http.cookies.secure,
        same_site: SameSite::Strict,
        path: PATH,
        max_age,
    }
}

/// `__Secure-tessera_refresh`, or `tessera_refresh` when `danger.insecure_cookies` drops
/// `Secure` (browsers refuse a `__Secure-` cookie without it).
fn name(state: &AppState) -> &'static str {
    if state.http.cookies.secure {
        "__Secure-tessera_refresh"
    } else {
        "tessera_refresh"
    }
}
