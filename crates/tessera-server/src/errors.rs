//! Domain errors as HTTP answers — the one place that decides an error's status and code, in
//! both shapes the API speaks:
//!
//! - [`Problem`] (`application/problem+json`, RFC 9457) for the JSON API;
//! - [`OAuthError`] (RFC 6749 §5.2) for the OAuth-shaped endpoints `/v1/token`,
//!   `/v1/revoke` and `/v1/introspect`.
//!
//! Every mapping is an exhaustive `match` without a wildcard arm: a new variant of
//! [`tessera_core::Error`] or of the token errors does not compile until it has an answer
//! here, instead of silently becoming a `500`.

use std::time::Duration;

use axum::http::header::{CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;
use tessera_core::{Error, ExchangeRejection};
use tessera_tokens::{AccessError, IssueError, TokenError};
use utoipa::ToSchema;

use crate::body::{json, to_json};
use crate::problem::Problem;

/// How long a client should wait after a store outage or overload before retrying.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidCredentials => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
                "the username or password is wrong",
            ),
            Error::RateLimited { retry_after } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many attempts",
                "too many failed logins; wait before trying again",
            )
            .retry_after(retry_after),
            Error::UsernameTaken => Problem::new(
                StatusCode::CONFLICT,
                "username_taken",
                "Username taken",
                "that username is registered already",
            ),
            Error::InvalidUsername(rejection) => Problem::validation(rejection.to_string()),
            Error::PasswordRejected(rejection) => Problem::validation(rejection.to_string()),
            Error::InvalidStanding(rejection) => Problem::validation(rejection.to_string()),
            Error::Unauthenticated => Problem::unauthenticated("no valid session"),
            Error::SessionExpired => Problem::new(
                StatusCode::UNAUTHORIZED,
                "session_expired",
                "Session expired",
                "the session has expired; log in again",
            ),
            Error::ReauthenticationRequired => Problem::new(
                StatusCode::FORBIDDEN,
                "reauthentication_required",
                "Re-authentication required",
                "this action needs the password proven recently: POST /v1/reauthenticate, then retry",
            ),
            Error::InvalidGrant => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Invalid grant",
                "the refresh token is invalid, expired or spent",
            ),
            Error::InvalidClient => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed",
                "unknown client or wrong client secret",
            ),
            Error::ClientNameTaken => Problem::new(
                StatusCode::CONFLICT,
                "client_name_taken",
                "Client name taken",
                "a client with that name exists already",
            ),
            Error::ClientNotFound => Problem::not_found("no such client"),
            Error::ServiceTaken => Problem::new(
                StatusCode::CONFLICT,
                "service_taken",
                "Service taken",
                "a service with that name or audience is registered already",
            ),
            Error::ServiceNotFound => Problem::not_found("no such service"),
            Error::InvalidService(rejection) => Problem::validation(rejection.to_string()),
            Error::Exchange(rejection) => Problem::new(
                StatusCode::BAD_REQUEST,
                match rejection {
                    ExchangeRejection::InvalidTarget(_) => "invalid_target",
                    _ => "invalid_scope",
                },
                "Token exchange refused",
                exchange_description(&rejection),
            ),
            Error::SessionNotFound => Problem::not_found("no such session"),
            Error::UserNotFound => Problem::not_found("no such user"),
            Error::Busy => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_busy",
                "Server busy",
                "too many logins in progress; retry shortly",
            )
            .retry_after(UNAVAILABLE_RETRY),
            Error::Store(error) => {
                tracing::error!(error = %error, source = ?std::error::Error::source(&error), "store failure");
                store_unavailable()
            }
            error @ (Error::Hashing(_) | Error::Randomness(_)) => {
                tracing::error!(error = %error, source = ?std::error::Error::source(&error), "internal failure");
                Problem::internal()
            }
        }
    }
}

impl From<TokenError> for Problem {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Store(error) => Error::Store(error).into(),
            TokenError::SymmetricRotation => Problem::new(
                StatusCode::CONFLICT,
                "rotation_unsupported",
                "Rotation unsupported",
                "the HS256 key is configured, not generated: change token.hs256_secret to rotate it",
            ),
            error @ (TokenError::Key(_)
            | TokenError::NoSigningKey
            | TokenError::Sign(_)
            | TokenError::Randomness(_)) => {
                tracing::error!(%error, source = ?std::error::Error::source(&error), "could not sign an access token");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "Tokens unavailable",
                    "tokens cannot be signed right now; retry shortly",
                )
                .retry_after(UNAVAILABLE_RETRY)
            }
        }
    }
}

impl From<IssueError> for Problem {
    fn from(error: IssueError) -> Self {
        match error {
            IssueError::Engine(error) => error.into(),
            IssueError::Token(error) => error.into(),
        }
    }
}

impl From<AccessError> for Problem {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::Invalid(error) => {
                // Why a signature or claim failed is for the log, never for the client.
                tracing::debug!(%error, "access token refused");
                Problem::unauthenticated("the access token is invalid or expired")
            }
            AccessError::NoSession => Problem::unauthenticated("the access token names no session"),
            AccessError::SubjectMismatch => {
                Problem::unauthenticated("the access token does not match its session")
            }
            AccessError::Stale => {
                Problem::unauthenticated("the access token is stale; refresh it for a new one")
            }
            AccessError::Engine(error) => error.into(),
        }
    }
}

/// The fixed text of an exchange refusal (never the request's own words).
fn exchange_description(rejection: &ExchangeRejection) -> &'static str {
    match rejection {
        ExchangeRejection::InvalidTarget(text) | ExchangeRejection::InvalidScope(text) => text,
        _ => "the exchange was refused",
    }
}

fn store_unavailable() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "Store unavailable",
        "the session store cannot be reached; retry shortly",
    )
    .retry_after(UNAVAILABLE_RETRY)
}

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_grant`, `unsupported_grant_type`, `temporarily_unavailable`…
    pub error: &'static str,
    /// What went wrong, for a developer; never contains a token.
    pub error_description: &'static str,
}

impl OAuthError {
    /// The one way an OAuth endpoint answers an error: never cached, `Retry-After` on `503`
    /// and `429`, `WWW-Authenticate: Basic` on `401` (client authentication).
    pub fn response(
        status: StatusCode,
        error: &'static str,
        error_description: &'static str,
    ) -> Response {
        let mut response = json(
            status,
            to_json(&OAuthError {
                error,
                error_description,
            }),
        );
        no_store(response.headers_mut());
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                "retry-after",
                HeaderValue::from(UNAVAILABLE_RETRY.as_secs()),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\""),
            );
        }
        response
    }

    /// `400 invalid_request`.
    pub fn invalid_request(description: &'static str) -> Response {
        Self::response(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// `503 temporarily_unavailable`: the store failed; nothing was decided.
    pub fn unavailable() -> Response {
        Self::response(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the store cannot be reached; retry shortly",
        )
    }

    /// The OAuth answer to an engine error.
    pub fn from_engine(error: Error) -> Response {
        let invalid_grant = || {
            Self::response(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the refresh token is invalid, expired or spent",
            )
        };
        match error {
            Error::InvalidGrant
            | Error::Unauthenticated
            | Error::SessionExpired
            | Error::SessionNotFound
            | Error::UserNotFound => invalid_grant(),
            // No OAuth endpoint removes clients; were one to, an unknown one is a bad request.
            Error::ClientNotFound | Error::ServiceNotFound => {
                Self::invalid_request("no such client or service")
            }
            Error::Exchange(rejection) => Self::response(
                StatusCode::BAD_REQUEST,
                match rejection {
                    ExchangeRejection::InvalidTarget(_) => "invalid_target",
                    _ => "invalid_scope",
                },
                exchange_description(&rejection),
            ),
            Error::InvalidCredentials => Self::response(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the username or password is wrong",
            ),
            Error::InvalidClient => Self::response(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ),
            Error::RateLimited { .. } => Self::response(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "too many attempts; wait before trying again",
            ),
            Error::UsernameTaken
            | Error::ClientNameTaken
            | Error::ServiceTaken
            | Error::InvalidService(_)
            | Error::InvalidUsername(_)
            | Error::InvalidStanding(_)
            | Error::PasswordRejected(_)
            | Error::ReauthenticationRequired => {
                Self::invalid_request("the request's parameters were refused")
            }
            Error::Busy => Self::response(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the server is busy; retry shortly",
            ),
            Error::Store(error) => {
                tracing::error!(error = %error, source = ?std::error::Error::source(&error), "store failure");
                Self::unavailable()
            }
            error @ (Error::Hashing(_) | Error::Randomness(_)) => {
                tracing::error!(error = %error, source = ?std::error::Error::source(&error), "internal failure");
                Self::response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the server failed; the error has been logged",
                )
            }
        }
    }

    /// The OAuth answer to a failure to issue tokens.
    pub fn from_issue(error: IssueError) -> Response {
        match error {
            IssueError::Engine(error) => Self::from_engine(error),
            IssueError::Token(TokenError::Store(error)) => Self::from_engine(Error::Store(error)),
            IssueError::Token(
                error @ (TokenError::Key(_)
                | TokenError::SymmetricRotation
                | TokenError::NoSigningKey
                | TokenError::Sign(_)
                | TokenError::Randomness(_)),
            ) => {
                tracing::error!(%error, source = ?std::error::Error::source(&error), "could not sign an access token");
                Self::response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "tokens cannot be signed right now",
                )
            }
        }
    }
}

/// OAuth answers carrying tokens or errors are never cached (RFC 6749 §5.1).
pub(crate) fn no_store(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(error: Error) -> (StatusCode, &'static str) {
        let problem = Problem::from(error);
        (problem.status(), problem.code())
    }

    #[test]
    fn grant_client_and_client_name_errors_are_client_errors_in_both_shapes() {
        assert_eq!(
            status_of(Error::InvalidGrant),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
        assert_eq!(
            status_of(Error::InvalidClient),
            (StatusCode::UNAUTHORIZED, "invalid_client")
        );
        assert_eq!(
            status_of(Error::ClientNameTaken),
            (StatusCode::CONFLICT, "client_name_taken")
        );
        for (error, status) in [
            (Error::InvalidGrant, StatusCode::BAD_REQUEST),
            (Error::InvalidClient, StatusCode::UNAUTHORIZED),
            (Error::ClientNameTaken, StatusCode::BAD_REQUEST),
        ] {
            assert_eq!(OAuthError::from_engine(error).status(), status);
        }
    }

    #[test]
    fn only_failures_of_the_server_itself_are_5xx() {
        let client_errors = [
            Error::InvalidCredentials,
            Error::RateLimited {
                retry_after: Duration::from_secs(3),
            },
            Error::UsernameTaken,
            Error::Unauthenticated,
            Error::SessionExpired,
            Error::ReauthenticationRequired,
            Error::InvalidGrant,
            Error::InvalidClient,
            Error::ClientNameTaken,
            Error::ClientNotFound,
            Error::SessionNotFound,
            Error::UserNotFound,
        ];
        for error in client_errors {
            let text = error.to_string();
            let problem = Problem::from(error);
            assert!(problem.status().is_client_error(), "{text}: {problem:?}");
        }
        assert_eq!(
            Problem::from(Error::Busy).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
