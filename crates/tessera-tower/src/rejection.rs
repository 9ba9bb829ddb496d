//! The answers a resource server gives (RFC 6750 §3): a status and a `WWW-Authenticate`
//! challenge, never a body that says why a signature failed. A gRPC request
//! (`content-type: application/grpc…`) gets the same answer the gRPC way: HTTP `200` with
//! `grpc-status` (`16 UNAUTHENTICATED`, `7 PERMISSION_DENIED`, `14 UNAVAILABLE`) in a
//! trailers-only response, as gRPC clients expect.

use std::time::Duration;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;

/// Why a request was not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// No credential at all: `401` with `WWW-Authenticate: Bearer`.
    MissingCredential,
    /// A credential that is not valid here (bad signature, wrong audience or issuer,
    /// expired, revoked, unknown key, malformed): `401` with
    /// `WWW-Authenticate: Bearer error="invalid_token"`. Which check failed is logged at
    /// debug level, never answered.
    InvalidToken,
    /// A valid credential without the scope or role the route needs: `403` with
    /// `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`.
    InsufficientScope {
        /// The scope (or role) required.
        scope: String,
    },
    /// A request carried by the session cookie with an unsafe method, without the session's
    /// CSRF token in `X-CSRF-Token` or from another origin than Tessera's: `403`, as Tessera
    /// answers it (`csrf_failed`), with no challenge.
    CsrfFailed,
    /// The revocation feed is staler than the configured bound, Tessera could not be asked
    /// about a session token, or the replay guard could not record a one-time operation
    /// token: `503` with `Retry-After`. Answering from a stale revocation set, without
    /// Tessera's answer, or without knowing the token is used for the first time, would be
    /// a guess.
    Unavailable {
        /// When to try again.
        retry_after: Duration,
    },
}

impl Rejection {
    /// The answer as a response with any body type that has an empty default, so the layer
    /// can answer in front of any tower service (axum, tonic, hyper).
    pub fn to_response<B: Default>(&self) -> Response<B> {
        let mut response = Response::new(B::default());
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let (status, challenge) = match self {
            Rejection::MissingCredential => (
                StatusCode::UNAUTHORIZED,
                Some(HeaderValue::from_static("Bearer")),
            ),
            Rejection::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                Some(HeaderValue::from_static(r#"Bearer error="invalid_token""#)),
            ),
            Rejection::InsufficientScope { scope } => {
                // RFC 6750 §3: scope tokens are %x21 / %x23-5B / %x5D-7E; another name
                // (quotes, backslashes, controls) is left out of the challenge.
                let quotable = !scope.is_empty()
                    && scope
                        .bytes()
                        .all(|byte| matches!(byte, 0x21 | 0x23..=0x5B | 0x5D..=0x7E | b' '));
                let with_scope = quotable
                    .then(|| {
                        HeaderValue::from_str(&format!(
                            r#"Bearer error="insufficient_scope", scope="{scope}""#
                        ))
                        .ok()
                    })
                    .flatten();
                let challenge = with_scope.unwrap_or(HeaderValue::from_static(
                    r#"Bearer error="insufficient_scope""#,
                ));
                (StatusCode::FORBIDDEN, Some(challenge))
            }
            Rejection::CsrfFailed => (StatusCode::FORBIDDEN, None),
            Rejection::Unavailable { retry_after } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
                (StatusCode::SERVICE_UNAVAILABLE, None)
            }
        };
        if let Some(challenge) = challenge {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        *response.status_mut() = status;
        response
    }

    /// The answer as a gRPC client expects it: HTTP `200`, `content-type: application/grpc`
    /// and the status in `grpc-status`/`grpc-message` of a trailers-only response (the
    /// `WWW-Authenticate` challenge is kept).
    pub fn to_grpc_response<B: Default>(&self) -> Response<B> {
        let mut response = self.to_response::<B>();
        let (code, message) = match self {
            Rejection::MissingCredential => ("16", "missing credential"),
            Rejection::InvalidToken => ("16", "invalid token"),
            Rejection::InsufficientScope { .. } => ("7", "insufficient scope"),
            Rejection::CsrfFailed => ("7", "csrf check failed"),
            Rejection::Unavailable { .. } => ("14", "credentials cannot be checked now"),
        };
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static(code));
        headers.insert("grpc-message", HeaderValue::from_static(message));
        response
    }

    /// [`to_grpc_response`](Self::to_grpc_response) for a gRPC request (its `content-type`
    /// starts with `application/grpc`), [`to_response`](Self::to_response) otherwise.
    pub fn to_response_for<B: Default>(&self, request_headers: &HeaderMap) -> Response<B> {
        let grpc = request_headers
            .get(CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
        if grpc {
            self.to_grpc_response()
        } else {
            self.to_response()
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> axum::response::Response {
        self.to_response()
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Rejection::MissingCredential => "no credential",
            Rejection::InvalidToken => "invalid token",
            Rejection::InsufficientScope { .. } => "insufficient scope",
            Rejection::CsrfFailed => "csrf check failed",
            Rejection::Unavailable { .. } => "credentials cannot be checked now",
        })
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_carry_the_rfc_6750_challenge_and_no_body() {
        let unavailable = Rejection::Unavailable {
            retry_after: Duration::from_millis(300),
        }
        .to_response::<String>();
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[RETRY_AFTER], "1");
        assert!(unavailable.headers().get(WWW_AUTHENTICATE).is_none());
        let odd_scope = Rejection::InsufficientScope {
            scope: "a\"b".to_owned(),
        }
        .to_response::<String>();
        assert_eq!(
            odd_scope.headers()[WWW_AUTHENTICATE],
            r#"Bearer error="insufficient_scope""#
        );
        let invalid = Rejection::InvalidToken.to_response::<String>();
        assert_eq!(invalid.status(), StatusCode::UNAUTHORIZED);
        assert!(invalid.body().is_empty());
        let csrf = Rejection::CsrfFailed.to_response::<String>();
        assert_eq!(csrf.status(), StatusCode::FORBIDDEN);
        assert!(csrf.headers().get(WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn grpc_requests_get_the_grpc_status_in_a_trailers_only_answer() {
        let mut grpc = HeaderMap::new();
        grpc.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        let cases = [
            (Rejection::MissingCredential, "16"),
            (Rejection::InvalidToken, "16"),
            (
                Rejection::InsufficientScope {
                    scope: "a".to_owned(),
                },
                "7",
            ),
            (Rejection::CsrfFailed, "7"),
            (
                Rejection::Unavailable {
                    retry_after: Duration::from_secs(2),
                },
                "14",
            ),
        ];
        for (rejection, code) in cases {
            let answer = rejection.to_response_for::<String>(&grpc);
            assert_eq!(answer.status(), StatusCode::OK, "{rejection}");
            assert_eq!(answer.headers()["grpc-status"], code, "{rejection}");
            assert_eq!(answer.headers()[CONTENT_TYPE], "application/grpc");
            let plain = rejection.to_response_for::<String>(&HeaderMap::new());
            assert_ne!(plain.status(), StatusCode::OK, "{rejection}");
            assert!(plain.headers().get("grpc-status").is_none());
        }
    }
}
