//! The caller's own account: re-authentication, password change and deletion.
//!
//! Password change and deletion are sensitive: they need the password proven within
//! `session.reauthentication_window` (`403 reauthentication_required` otherwise; prove it
//! with `POST /v1/reauthenticate` and retry), and the password again in the body.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tessera_core::PasswordChange;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Authenticated, Carrier};
use crate::body::{CurrentSession, Rfc3339, SessionBody, json, to_json};
use crate::extract::{ApiJson, ClientIp};
use crate::problem::{Problem, ProblemBody};
use crate::routes::accounts::CookieLogin;
use crate::routes::tokens::TokenResponse;

/// `POST /v1/reauthenticate` and `DELETE /v1/account`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordProof {
    /// The account's current password.
    pub password: String,
}

/// The answer to `POST /v1/reauthenticate`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reauthenticated {
    /// The session's new `auth_time` (RFC 3339): sensitive actions are allowed until
    /// `session.reauthentication_window` after it.
    #[schema(value_type = String, format = DateTime)]
    pub auth_time: Rfc3339,
}

/// `POST /v1/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// The account's current password.
    pub current_password: String,
    /// The new password: the same rules as at registration (at least
    /// `auth.password_min_length` characters, at most `auth.password_max_bytes` bytes, not a
    /// common password, not the username).
    pub new_password: String,
    /// Only when the request carries a JWT access token: put the new refresh token in the
    /// `__Secure-tessera_refresh` cookie instead of the body, as at login. Defaults to `false`.
    #[serde(default)]
    pub refresh_cookie: bool,
}

/// The answer to `POST /v1/password`: the caller's session under its new id, in the form
/// the request's credential came in. Describes the document only: the handler writes each
/// body from its own type.
#[derive(Debug, ToSchema)]
#[serde(untagged)]
pub enum PasswordChanged<'a> {
    /// The request carried the session cookie: the new cookie is in `Set-Cookie`.
    Cookie(CookieLogin<'a>),
    /// The request carried the session token as a bearer token.
    Bearer(BearerSession<'a>),
    /// The request carried a JWT access token: a new access token and refresh token.
    Token(TokenResponse<'a>),
}

/// A session handed back as a bearer session token.
#[derive(Debug, Serialize, ToSchema)]
pub struct BearerSession<'a> {
    /// The session.
    pub session: SessionBody<'a>,
    /// The new opaque session token, for `Authorization: Bearer`; the old one no longer works.
    pub session_token: String,
}

/// Proves the password again, for the sensitive actions that follow.
#[utoipa::path(
    post, path = "/v1/reauthenticate", tag = "accounts",
    request_body = PasswordProof,
    responses(
        (status = 200, description = "The password is right; the session's `auth_time` is now", body = Reauthenticated),
        (status = 400, description = "`malformed_request`: the body is not a JSON object", body = ProblemBody),
        (status = 401, description = "`invalid_credentials` (a wrong password counts toward the login throttle), `unauthenticated` or `session_expired`", body = ProblemBody),
        (status = 403, description = "`csrf_failed`: the cookie without a matching `X-CSRF-Token`, or a cross-site request", body = ProblemBody),
        (status = 415, description = "`unsupported_media_type`: the body is not `application/json`", body = ProblemBody),
        (status = 422, description = "`validation_failed`: unknown, missing or repeated fields", body = ProblemBody),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`server_busy` or `store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("cookie" = [], "csrf" = []), ("bearer" = []))
)]
pub async fn reauthenticate(
    State(state): State<AppState>,
    auth: Authenticated,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<PasswordProof>,
) -> Result<Response, Problem> {
    let auth_time = state
        .engine
        .reauthenticate(&auth.session, &body.password, ip)
        .await?;
    let body = Reauthenticated {
        auth_time: Rfc3339(auth_time),
    };
    Ok(json(StatusCode::OK, to_json(&body)))
}

/// Changes the caller's password. Every other session of the user ends (cookies, bearer
/// tokens, access and refresh tokens); the caller's continues under a new id, handed back
/// in the form its credential came in, and the old id is revoked.
#[utoipa::path(
    post, path = "/v1/password", tag = "accounts",
    request_body = NewPassword,
    responses(
        (status = 200, description = "Changed. Cookie: `Set-Cookie` carries the new session cookie and the body is a `CookieLogin`. Bearer session token: a `BearerSession`. JWT access token: a `TokenResponse`, not cached", body = PasswordChanged),
        (status = 400, description = "`malformed_request`: the body is not a JSON object", body = ProblemBody),
        (status = 401, description = "`invalid_credentials`: the current password is wrong (counted toward the login throttle); `unauthenticated` or `session_expired`", body = ProblemBody),
        (status = 403, description = "`reauthentication_required`: the password was not proven within `session.reauthentication_window`; or `csrf_failed`", body = ProblemBody),
        (status = 415, description = "`unsupported_media_type`: the body is not `application/json`", body = ProblemBody),
        (status = 422, description = "`validation_failed`: the new password is refused, `refresh_cookie` without a JWT access token, or unknown, missing or repeated fields", body = ProblemBody),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`server_busy` or `store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("cookie" = [], "csrf" = []), ("bearer" = []))
)]
pub async fn change_password(
    State(state): State<AppState>,
    auth: Authenticated,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<NewPassword>,
) -> Result<Response, Problem> {
    if body.refresh_cookie && auth.carrier != Carrier::AccessToken {
        return Err(Problem::validation(
            "refresh_cookie needs a JWT access token",
        ));
    }
    let renamed = state
        .engine
        .change_password(
            &auth.session,
            PasswordChange {
                current_password: &body.current_password,
                new_password: &body.new_password,
                ip,
            },
        )
        .await?;
    let session = SessionBody::current(&renamed.session);
    Ok(match auth.carrier {
        Carrier::Cookie => {
            let body = CurrentSession {
                session,
                csrf_token: Some(renamed.token.csrf_token().encoded()),
            };
            let mut response = json(StatusCode::OK, body.to_json());
            response.headers_mut().insert(
                SET_COOKIE,
                state.http.cookies.session_cookie(&renamed.token),
            );
            response
        }
        Carrier::Bearer => {
            let body = BearerSession {
                session,
                session_token: renamed.token.encode(),
            };
            json(StatusCode::OK, to_json(&body))
        }
        Carrier::AccessToken => {
            let tokens = state.tokens.issue(&renamed.session).await?;
            super::tokens::token_response(&state, session, &tokens, body.refresh_cookie)
        }
    })
}

/// Deletes the caller's account and ends every session of it.
#[utoipa::path(
    delete, path = "/v1/account", tag = "accounts",
    request_body = PasswordProof,
    responses(
        (status = 204, description = "Deleted; the session cookie and the refresh cookie are cleared"),
        (status = 400, description = "`malformed_request`: the body is not a JSON object", body = ProblemBody),
        (status = 401, description = "`invalid_credentials`: the password is wrong (counted toward the login throttle); `unauthenticated` or `session_expired`", body = ProblemBody),
        (status = 403, description = "`reauthentication_required`: the password was not proven within `session.reauthentication_window`; or `csrf_failed`", body = ProblemBody),
        (status = 415, description = "`unsupported_media_type`: the body is not `application/json`", body = ProblemBody),
        (status = 422, description = "`validation_failed`: unknown, missing or repeated fields", body = ProblemBody),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`server_busy` or `store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("cookie" = [], "csrf" = []), ("bearer" = []))
)]
pub async fn delete_account(
    State(state): State<AppState>,
    auth: Authenticated,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<PasswordProof>,
) -> Result<Response, Problem> {
    state
        .engine
        .delete_account(&auth.session, &body.password, ip)
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
