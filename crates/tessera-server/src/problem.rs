//! Errors as HTTP responses: RFC 9457 `application/problem+json` with a stable `code`.
//!
//! This is the one place that decides which status an error gets.

use std::time::Duration;

use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_core::Error;
use utoipa::ToSchema;

use crate::body::to_json;

/// An error response.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    retry_after: Option<Duration>,
}

/// The body of an error response (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody<'a> {
    /// `urn:tessera:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// A short, fixed summary of the problem type.
    pub title: &'a str,
    /// The HTTP status.
    pub status: u16,
    /// What happened in this case; never contains a secret.
    pub detail: &'a str,
    /// Stable machine-readable code, e.g. `invalid_credentials`.
    pub code: &'a str,
}

impl Problem {
    /// A problem with its parts.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            code,
            title,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// 403 `csrf_failed`.
    pub fn csrf(detail: &str) -> Self {
        Problem::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            "CSRF check failed",
            detail,
        )
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated(detail: &str) -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            detail,
        )
    }

    /// 422 `validation_failed`.
    pub fn validation(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Validation failed",
            detail,
        )
    }

    /// 400 `malformed_request`.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            "Malformed request",
            detail,
        )
    }

    /// 404 `not_found`.
    pub fn not_found(detail: &str) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not_found", "Not found", detail)
    }

    /// 500 `internal_error`; the cause is logged, never shown.
    pub fn internal() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal error",
            "the server failed; the error has been logged",
        )
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);
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
            Error::Unauthenticated => Problem::unauthenticated("no valid session"),
            Error::SessionExpired => Problem::new(
                StatusCode::UNAUTHORIZED,
                "session_expired",
                "Session expired",
                "the session has expired; log in again",
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
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "Store unavailable",
                    "the session store cannot be reached; retry shortly",
                )
                .retry_after(UNAVAILABLE_RETRY)
            }
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "internal failure");
                Problem::internal()
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            type_: format!("urn:tessera:problem:{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
        };
        let mut response = crate::body::response(
            self.status,
            HeaderValue::from_static("application/problem+json"),
            to_json(&body),
        );
        // `body::response` already holds `Cache-Control: no-store` with the other security
        // headers.
        let headers = response.headers_mut();
        if let Some(wait) = self.retry_after {
            // Round up: a client that waits the whole seconds given must not be refused again.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if self.status == StatusCode::UNAUTHORIZED && self.code != "invalid_credentials" {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tessera\""),
            );
        }
        response
    }
}
