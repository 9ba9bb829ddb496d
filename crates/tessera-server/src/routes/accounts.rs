//! Registration, login and logout.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tessera_core::{AuditContext, LoginAttempt, Transport};
use utoipa::ToSchema;

use crate::AppState;
use crate::audit::Audit;
use crate::auth::{Authenticated, Carrier, presented_token};
use crate::body::{CurrentSession, SessionBody, UserBody, json, to_json};
use crate::extract::{ApiJson, ClientIp};
use crate::problem::{Problem, ProblemBody};
use crate::routes::tokens::TokenResponse;

/// `POST /v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1–64 characters: letters, digits and `. _ @ + -`; unique regardless of case.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._@+-]+$")]
    pub username: String,
    /// At least `auth.password_min_length` characters and at most `auth.password_max_bytes`
    /// bytes of UTF-8; not a common password, nor the username.
    pub password: String,
}

/// `POST /v1/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
    /// `"cookie"` (default) or `"token"`.
    #[serde(default)]
    #[schema(value_type = Option<LoginTransport>)]
    pub transport: Option<String>,
    /// Token transport only: put the refresh token in the `__Secure-tessera_refresh` cookie
    /// (HttpOnly, `Path=/v1/token`) instead of the body, for browser apps. Defaults to `false`.
    #[serde(default)]
    pub refresh_cookie: bool,
}

/// How a login hands out its session (`LoginRequest::transport`), for the document: the
/// handler reads the field as text so an unknown value gets its own message.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum LoginTransport {
    /// The session cookie, and a CSRF token in the body.
    Cookie,
    /// A JWT access token and a refresh token in the body.
    Token,
}

/// The answer to `POST /v1/login`, by transport. Describes the document only: the handler
/// writes each body from its own type ([`CurrentSession`], [`TokenResponse`]).
#[derive(Debug, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse<'a> {
    /// `transport: "cookie"`: the session cookie is in `Set-Cookie`.
    Cookie(CookieLogin<'a>),
    /// `transport: "token"`.
    Token(TokenResponse<'a>),
}

/// The body of a cookie-transport login: [`CurrentSession`] with its CSRF token always there.
#[derive(Debug, ToSchema)]
pub struct CookieLogin<'a> {
    /// The new session.
    pub session: SessionBody<'a>,
    /// The session's CSRF token, to send as `X-CSRF-Token` on unsafe requests.
    pub csrf_token: String,
}

/// Creates an account.
#[utoipa::path(
    post, path = "/v1/users", tag = "accounts",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = UserBody),
        (status = 400, description = "`malformed_request`: the body is not a JSON object", body = ProblemBody),
        (status = 403, description = "`registration_closed`, or `csrf_failed` for a cross-site request", body = ProblemBody),
        (status = 409, description = "`username_taken`", body = ProblemBody),
        (status = 415, description = "`unsupported_media_type`: the body is not `application/json`", body = ProblemBody),
        (status = 422, description = "`validation_failed`: username or password refused, or unknown, missing or repeated fields", body = ProblemBody),
        (status = 503, description = "`server_busy` (every password-hashing slot taken) or `store_unavailable`, with `Retry-After`", body = ProblemBody),
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    Audit(audit): Audit,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<Response, Problem> {
    state.http.origins.check(&headers)?;
    if !state.http.registration {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "registration_closed",
            "Registration closed",
            "this server does not accept new accounts",
        ));
    }
    let user = state
        .engine
        .with_context(audit)
        .create_user(&body.username, &body.password)
        .await?;
    Ok(json(StatusCode::CREATED, to_json(&UserBody::from(&user))))
}

/// Logs in. With the cookie transport the session token is set as an HttpOnly cookie and the
/// body carries the CSRF token for later unsafe requests; with the token transport the body
/// carries a JWT access token and a refresh token.
#[utoipa::path(
    post, path = "/v1/login", tag = "sessions",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in. Cookie transport: `Set-Cookie` carries the session and the body is a `CookieLogin`. Token transport: the body is a `TokenResponse`, not cached", body = LoginResponse),
        (status = 400, description = "`malformed_request`: the body is not a JSON object", body = ProblemBody),
        (status = 401, description = "`invalid_credentials` (unknown user and wrong password alike)", body = ProblemBody),
        (status = 403, description = "`csrf_failed`: cross-site login", body = ProblemBody),
        (status = 415, description = "`unsupported_media_type`: the body is not `application/json`", body = ProblemBody),
        (status = 422, description = "`validation_failed`: unknown transport, `refresh_cookie` without the token transport, or unknown, missing or repeated fields", body = ProblemBody),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`server_busy` or `store_unavailable`, with `Retry-After`", body = ProblemBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, Problem> {
    let transport = match body.transport.as_deref() {
        None | Some("cookie") => Transport::Cookie,
        Some("token") => Transport::Token,
        Some(_) => {
            state.http.origins.check(&headers)?;
            return Err(Problem::validation(
                "transport must be \"cookie\" or \"token\"",
            ));
        }
    };
    if transport == Transport::Token {
        state.http.token_origins.check(&headers)?;
    } else {
        state.http.origins.check(&headers)?;
    }
    if body.refresh_cookie && transport != Transport::Token {
        return Err(Problem::validation(
            "refresh_cookie needs transport \"token\"",
        ));
    }
    let user_agent = headers
        .get("user-agent")
        .and_then(|value| value.to_str().ok());
    let logged_in = state
        .engine
        .login(LoginAttempt {
            username: &body.username,
            password: &body.password,
            transport,
            ip,
            user_agent,
        })
        .await?;
    if transport == Transport::Token {
        let tokens = state.tokens.issue(&logged_in.session).await?;
        let session = SessionBody::current(&logged_in.session);
        return Ok(super::tokens::token_response(
            &state,
            session,
            &tokens,
            body.refresh_cookie,
        ));
    }
    // The browser's previous session cookie is about to be overwritten, which would strand
    // that session: end it instead of leaving it live and unreachable.
    if let Ok(Some((previous, Carrier::Cookie))) =
        presented_token(&headers, &state.http.cookies.name)
        && let Ok(old) = state.engine.validate(&previous).await
        && state
            .engine
            .with_context(AuditContext::request(ip, user_agent))
            .logout(&old)
            .await
            .is_err()
    {
        tracing::warn!(session_id = %old.record().id, "could not end the session replaced by a new login");
    }
    let body = CurrentSession {
        session: SessionBody::current(&logged_in.session),
        csrf_token: Some(logged_in.token.csrf_token().encoded()),
    };
    let mut response = json(StatusCode::OK, to_json(&body));
    response.headers_mut().insert(
        SET_COOKIE,
        state.http.cookies.session_cookie(&logged_in.token),
    );
    Ok(response)
}

/// Logs out: revokes the current session and every credential of it, and clears the cookie.
#[utoipa::path(
    post, path = "/v1/logout", tag = "sessions",
    responses(
        (status = 204, description = "Logged out; the session cookie and the refresh cookie are cleared"),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ProblemBody),
        (status = 403, description = "`csrf_failed`: the cookie without a matching `X-CSRF-Token`, or a cross-site request", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("cookie" = [], "csrf" = []), ("bearer" = []))
)]
pub async fn logout(
    State(state): State<AppState>,
    Audit(audit): Audit,
    auth: Authenticated,
) -> Result<Response, Problem> {
    state
        .engine
        .with_context(audit)
        .logout(&auth.session)
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, state.http.cookies.clear_cookie());
    response
        .headers_mut()
        .append(SET_COOKIE, crate::refresh_cookie::clear(&state));
    Ok(response)
}
