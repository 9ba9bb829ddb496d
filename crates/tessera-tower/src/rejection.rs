//! The answers a resource server gives (RFC 6750 §3): a status and a `WWW-Authenticate`
//! challenge, never a body that says why a signature failed.

use std::time::Duration;

use axum::http::header::{CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Response, StatusCode};
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
    /// The revocation feed is staler than the configured bound: `503` with `Retry-After`.
    /// Answering from a stale revocation set would be a guess.
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
            Rejection::Unavailable { .. } => "revocation feed too stale",
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
    }
}
