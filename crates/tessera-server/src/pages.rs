//! Server-rendered pages for people: `/login`, `/register`, `/account`, and the static assets
//! (one stylesheet, the single-page-app client `tessera.js` and its example page).
//!
//! The pages work without JavaScript: plain forms, `application/x-www-form-urlencoded`, a
//! `303 See Other` after every successful post, and on failure the form again with a message
//! and a 4xx status. They call the same engine methods and pass the same Origin and CSRF
//! checks as the JSON API. Statuses come from [`Problem`], the one place that decides them;
//! the pages only choose the words.
//!
//! - [`login`]: the login and registration forms, guarded by a pre-session CSRF cookie.
//! - [`account`]: who you are, your sessions, revoking them, logging out.
//! - [`assets`]: the compiled-in CSS and JavaScript.

use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderName, LOCATION,
    REFERRER_POLICY, RETRY_AFTER, SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cookie::SameSite;
use serde::de::DeserializeOwned;
use tessera_core::{Error, Secret, SessionToken, ValidSession};

use crate::AppState;
use crate::auth::{Carrier, presented_token};
use crate::cookies;
use crate::extract::{is_form, read_form, too_large};
use crate::problem::Problem;

mod account;
mod assets;
mod login;

/// The pages' routes, merged into the API router.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { see_other("/account") }))
        .route("/login", get(login::show_login).post(login::log_in))
        .route("/register", get(login::show_register).post(login::register))
        .route("/account", get(account::show))
        .route("/account/sessions/{id}/revoke", post(account::revoke_one))
        .route("/account/revoke-others", post(account::revoke_others))
        .route("/account/reauthenticate", post(account::reauthenticate))
        .route("/account/password", post(account::change_password))
        .route("/account/delete", post(account::delete))
        .route("/logout", post(account::log_out))
        .route("/assets/{name}", get(assets::serve))
}

/// No inline script or style anywhere: markup loads `/assets/*` only, so an injected
/// `<script>` or `style=` attribute does nothing.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The headers every page carries. `Referrer-Policy: same-origin` rather than the API's
/// `no-referrer`: under `no-referrer` browsers send `Origin: null` on a same-origin form
/// post, which the Origin check must refuse.
fn page_headers(headers: &mut HeaderMap, csp: &'static str) {
    let fixed: [(HeaderName, &'static str); 7] = [
        (CONTENT_TYPE, "text/html; charset=utf-8"),
        // Pages show session data or carry a CSRF token: never stored by any cache.
        (CACHE_CONTROL, "no-store"),
        (CONTENT_SECURITY_POLICY, csp),
        (REFERRER_POLICY, "same-origin"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// A rendered page with `status` and `headers`; a template that fails to render (never
/// expected: the templates are checked at compile time) is logged and answered with a plain
/// 500.
fn page_parts(status: StatusCode, headers: HeaderMap, template: &impl Template) -> Response {
    let (status, html) = match template.render() {
        Ok(html) => (status, html),
        Err(error) => {
            tracing::error!(%error, "a page template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>The server failed; the error has been logged.</p>"
                    .to_owned(),
            )
        }
    };
    let mut response = (status, html).into_response();
    let response_headers = response.headers_mut();
    for (name, value) in &headers {
        response_headers.append(name, value.clone());
    }
    page_headers(response_headers, PAGE_CSP);
    response
}

/// A failure shown as a page: the status and headers (`Retry-After`, …) are the ones the API
/// would answer with, decided by [`Problem`]; the body is `template`, built from the
/// [`Failure`] so it can word the message.
fn failure_page<T: Template>(
    problem: Problem,
    extra: HeaderMap,
    template: impl FnOnce(&Failure) -> T,
) -> Response {
    let code = problem.code();
    let (mut parts, _json) = problem.into_response().into_parts();
    let retry_after = parts
        .headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok())
        .map(Duration::from_secs);
    let failure = Failure { code, retry_after };
    parts.headers.remove(CONTENT_LENGTH);
    for (name, value) in &extra {
        parts.headers.append(name, value.clone());
    }
    page_parts(parts.status, parts.headers, &template(&failure))
}

/// A page that only says something, with one link onward.
#[derive(Debug, Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: String,
    link_href: &'a str,
    link_text: &'a str,
}

/// What went wrong, as a page describes it.
#[derive(Debug, Clone, Copy)]
struct Failure {
    /// The problem's stable code.
    code: &'static str,
    /// How long to wait, for throttling and overload.
    retry_after: Option<Duration>,
}

impl Failure {
    /// A sentence for people. Login failures never say whether the account exists.
    fn message(&self) -> String {
        match self.code {
            "invalid_credentials" => "Wrong username or password.".to_owned(),
            "rate_limited" => format!(
                "Too many failed attempts. Try again in {}.",
                describe_wait(self.retry_after.unwrap_or(Duration::from_secs(60)))
            ),
            "csrf_failed" => "This form has expired or was sent from another site. Reload the \
                              page and try again."
                .to_owned(),
            "username_taken" => "That username is taken; choose another.".to_owned(),
            "store_unavailable" | "server_busy" => {
                "The server cannot complete this right now. Try again in a moment.".to_owned()
            }
            "not_found" => "That session has already ended.".to_owned(),
            "payload_too_large" => "The form was too large.".to_owned(),
            "unsupported_media_type" | "malformed_request" | "validation_failed" => {
                "The form could not be read. Reload the page and try again.".to_owned()
            }
            _ => "Something went wrong on our side. Try again later.".to_owned(),
        }
    }
}

/// "1 minute", "14 minutes", "45 seconds": the wait as people say it, rounded up.
fn describe_wait(wait: Duration) -> String {
    let seconds = wait.as_secs().max(1);
    if seconds < 60 {
        return plural(seconds, "second");
    }
    plural(seconds.div_ceil(60), "minute")
}

fn plural(count: u64, unit: &str) -> String {
    if count == 1 {
        format!("1 {unit}")
    } else {
        format!("{count} {unit}s")
    }
}

/// `303 See Other` to `location`: the "get" of post/redirect/get.
fn see_other(location: &str) -> Response {
    see_other_with(location, HeaderMap::new())
}

fn see_other_with(location: &str, mut headers: HeaderMap) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(LOCATION, value);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    *response.headers_mut() = headers;
    response
}

/// Reads an `application/x-www-form-urlencoded` body into `T`, refusing other content types,
/// oversized bodies and unknown or repeated fields as [`Problem`]s.
async fn form<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Problem> {
    if !is_form(headers) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "forms must be application/x-www-form-urlencoded",
        ));
    }
    let limit = state.http.max_body_bytes;
    let oversized = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<usize>().ok())
        .is_some_and(|length| length > limit);
    if oversized {
        return Err(too_large());
    }
    read_form(body, limit).await.map_err(Problem::validation)
}

/// The session cookie of a page request, checked by the engine (counting as activity).
#[derive(Debug)]
enum CookieSession {
    /// A live session and the token that proves it.
    Live(ValidSession, SessionToken),
    /// No session cookie (or only a bearer header, which pages ignore).
    Absent,
    /// A cookie naming a session that ended: `expired` by its timeouts, or revoked.
    Ended {
        /// Idle or absolute expiry rather than revocation.
        expired: bool,
    },
}

/// The request's session cookie, if any. Malformed or duplicated cookies count as ended.
fn session_cookie_token(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<SessionToken>, Problem> {
    match presented_token(headers, &state.http.cookies.name) {
        Ok(Some((token, Carrier::Cookie))) => Ok(Some(token)),
        Ok(_) => Ok(None),
        Err(problem) => Err(problem),
    }
}

/// Validates the session cookie. Store failures are errors (fail closed); a dead session is
/// [`CookieSession::Ended`].
async fn cookie_session(state: &AppState, headers: &HeaderMap) -> Result<CookieSession, Problem> {
    let token = match session_cookie_token(state, headers) {
        Ok(Some(token)) => token,
        Ok(None) => return Ok(CookieSession::Absent),
        Err(_) => return Ok(CookieSession::Ended { expired: false }),
    };
    validate(state, token).await
}

async fn validate(state: &AppState, token: SessionToken) -> Result<CookieSession, Problem> {
    match state.engine.validate(&token).await {
        Ok(session) => Ok(CookieSession::Live(session, token)),
        Err(Error::SessionExpired) => Ok(CookieSession::Ended { expired: true }),
        Err(Error::Unauthenticated) => Ok(CookieSession::Ended { expired: false }),
        Err(other) => Err(other.into()),
    }
}

/// Where a request without a live session goes: the login page, saying why, with a dead
/// cookie cleared.
fn to_login(state: &AppState, session: &CookieSession) -> Response {
    let mut headers = HeaderMap::new();
    let location = match session {
        CookieSession::Ended { expired } => {
            headers.append(SET_COOKIE, state.http.cookies.clear_cookie());
            if *expired {
                "/login?notice=expired"
            } else {
                "/login?notice=signed-out"
            }
        }
        _ => "/login",
    };
    see_other_with(location, headers)
}

/// The pre-session CSRF secret of the login and registration forms: a random value in an
/// HttpOnly, `SameSite=Strict` cookie, and its HMAC (the same derivation as a session's CSRF
/// token) in the form. A cross-site page can neither read the cookie nor compute the field,
/// so it cannot log a victim into the attacker's account (login CSRF). The `__Host-` prefix
/// stops a sibling subdomain from planting a cookie of its own.
#[derive(Debug)]
struct FormSecret {
    secret: Secret,
    /// Set when the secret is new and the browser must store it.
    set_cookie: Option<HeaderValue>,
}

impl FormSecret {
    /// The request's form secret, or a new one (with the cookie that stores it).
    fn of(state: &AppState, headers: &HeaderMap) -> Result<FormSecret, Problem> {
        if let Some(secret) = Self::presented(state, headers) {
            return Ok(FormSecret {
                secret,
                set_cookie: None,
            });
        }
        let secret = Secret::generate().map_err(|error| {
            tracing::error!(%error, "no randomness for a form secret");
            Problem::internal()
        })?;
        let set_cookie = cookies::set(
            form_cookie_name(state),
            &secret.encode(),
            cookies::Attributes {
                secure: state.http.cookies.secure,
                same_site: SameSite::Strict,
                path: "/",
                max_age: None,
            },
        );
        Ok(FormSecret {
            set_cookie: Some(set_cookie),
            secret,
        })
    }

    /// The secret the browser sent, if exactly one well-formed cookie carries it.
    fn presented(state: &AppState, headers: &HeaderMap) -> Option<Secret> {
        cookies::single(headers, form_cookie_name(state))
            .ok()
            .flatten()
            .and_then(|raw| Secret::parse(raw).ok())
    }

    /// The value the form carries in `csrf_token`.
    fn field(&self) -> String {
        self.secret.csrf_token().encode()
    }

    /// Headers to send with the page that shows the form.
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(set_cookie) = &self.set_cookie {
            headers.append(SET_COOKIE, set_cookie.clone());
        }
        headers
    }
}

/// `__Host-tessera_form`, or `tessera_form` when `danger.insecure_cookies` drops `Secure`
/// (browsers refuse a `__Host-` cookie without it).
fn form_cookie_name(state: &AppState) -> &'static str {
    if state.http.cookies.secure {
        "__Host-tessera_form"
    } else {
        "tessera_form"
    }
}

/// Check 1 (Origin / `Sec-Fetch-Site`) and the form secret's token, for the forms shown
/// before there is a session.
fn check_form_secret(
    state: &AppState,
    headers: &HeaderMap,
    presented: Option<&str>,
) -> Result<(), Problem> {
    state.http.origins.check(headers)?;
    let secret = FormSecret::presented(state, headers);
    match (secret, presented) {
        (Some(secret), Some(presented)) if secret.verify_csrf(presented) => Ok(()),
        _ => Err(Problem::csrf("missing or wrong csrf_token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_rounded_up_and_spelled_out() {
        assert_eq!(describe_wait(Duration::from_millis(200)), "1 second");
        assert_eq!(describe_wait(Duration::from_secs(45)), "45 seconds");
        assert_eq!(describe_wait(Duration::from_secs(60)), "1 minute");
        assert_eq!(describe_wait(Duration::from_secs(61)), "2 minutes");
        assert_eq!(describe_wait(Duration::from_secs(15 * 60)), "15 minutes");
    }

    #[test]
    fn login_failures_do_not_say_whether_the_account_exists() {
        let message = Failure {
            code: "invalid_credentials",
            retry_after: None,
        }
        .message();
        assert!(!message.to_lowercase().contains("exist"), "{message}");
        assert!(!message.to_lowercase().contains("unknown"), "{message}");
    }
}
