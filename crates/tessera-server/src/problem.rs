//! Errors as HTTP responses: RFC 9457 `application/problem+json` with a stable `code`.
//!
//! Which status and code each domain error gets is decided in one place,
//! [`errors`](crate::errors).

use std::time::Duration;

use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
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
    /// A `401` asks for HTTP Basic client credentials instead of a bearer token.
    basic_challenge: bool,
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
            basic_challenge: false,
        }
    }

    /// On a `401`, challenges for HTTP Basic client credentials (`WWW-Authenticate: Basic`)
    /// instead of a bearer token: the answer of the routes that client credentials open.
    pub fn basic_challenge(mut self) -> Self {
        self.basic_challenge = true;
        self
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

    /// 403 `forbidden`: authenticated, but not allowed this.
    pub fn forbidden(detail: &str) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
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
            let challenge = if self.basic_challenge {
                "Basic realm=\"tessera\""
            } else {
                "Bearer realm=\"tessera\""
            };
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}
