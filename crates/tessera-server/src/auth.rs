//! Who is calling: the session cookie, a bearer session token or a bearer JWT access token,
//! checked on every request that needs a session, with CSRF protection for
//! cookie-authenticated unsafe requests; and, for the admin API, an API client with the admin
//! scope ([`AdminClient`]).

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use headers::authorization::Basic;
use headers::{Authorization, HeaderMapExt as _};
use tessera_core::{ClientRecord, Error, SessionToken, ValidSession};
use tessera_tokens::AccessError;

use crate::AppState;
use crate::cookies;
pub use crate::cookies::CookieSettings;
use crate::csrf::CSRF_HEADER;
use crate::extract::ClientIp;
use crate::metrics::CheckOutcome;
use crate::problem::Problem;

/// How the session token arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// The session cookie.
    Cookie,
    /// `Authorization: Bearer` with the opaque session token.
    Bearer,
    /// `Authorization: Bearer` with a JWT access token.
    AccessToken,
}

/// A credential as presented, before it is checked.
#[derive(Debug)]
pub enum Credential<'h> {
    /// The opaque session token, from the cookie or the bearer header.
    Session(SessionToken, Carrier),
    /// A compact JWS from the bearer header.
    AccessToken(&'h str),
}

/// A request from a valid session.
#[derive(Debug)]
pub struct Authenticated {
    /// The session, with this request counted as activity.
    pub session: ValidSession,
    /// The session token presented (`None` for a JWT access token).
    pub token: Option<SessionToken>,
    /// How it was presented.
    pub carrier: Carrier,
}

/// Why a request is not authenticated; clears a dead session cookie on the way out.
#[derive(Debug)]
pub struct AuthRejection {
    problem: Problem,
    clear_cookie: Option<HeaderValue>,
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let mut response = self.problem.into_response();
        if let Some(clear) = self.clear_cookie {
            response.headers_mut().insert(SET_COOKIE, clear);
        }
        response
    }
}

impl From<Problem> for AuthRejection {
    fn from(problem: Problem) -> Self {
        AuthRejection {
            problem,
            clear_cookie: None,
        }
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, AuthRejection> {
        let http = &state.http;
        let metrics = &state.metrics;
        let credential = presented_credential(&parts.headers, &http.cookies.name)
            .inspect_err(|_| metrics.session_checked(None, CheckOutcome::Unauthenticated))?;
        let (token, carrier) = match credential {
            Some(Credential::Session(token, carrier)) => (token, carrier),
            Some(Credential::AccessToken(jwt)) => return access_token(state, jwt).await,
            None => {
                metrics.session_checked(None, CheckOutcome::Unauthenticated);
                return Err(Problem::unauthenticated("no session cookie or bearer token").into());
            }
        };
        if carrier == Carrier::Cookie && !is_safe(&parts.method) {
            let checked = http.origins.check(&parts.headers).and_then(|()| {
                let csrf = parts
                    .headers
                    .get(CSRF_HEADER)
                    .and_then(|value| value.to_str().ok());
                if csrf.is_some_and(|csrf| token.verify_csrf(csrf)) {
                    Ok(())
                } else {
                    Err(Problem::csrf("missing or wrong X-CSRF-Token"))
                }
            });
            checked.inspect_err(|_| {
                metrics.session_checked(Some(carrier), CheckOutcome::CsrfFailed)
            })?;
        }
        match state.engine.validate(&token).await {
            Ok(session) => {
                metrics.session_checked(Some(carrier), CheckOutcome::Ok);
                Ok(Authenticated {
                    session,
                    token: Some(token),
                    carrier,
                })
            }
            Err(error) => {
                metrics.session_checked(Some(carrier), CheckOutcome::of(&error));
                // A cookie naming a dead session is cleared; on a store failure it is kept, so
                // the client retries instead of losing its login.
                let dead = matches!(error, Error::Unauthenticated | Error::SessionExpired);
                Err(AuthRejection {
                    clear_cookie: (dead && carrier == Carrier::Cookie)
                        .then(|| http.cookies.clear_cookie()),
                    problem: error.into(),
                })
            }
        }
    }
}

/// A request of an API client with the admin scope (`tessera client add NAME --admin`),
/// authenticated by its id and secret in HTTP Basic (`client_secret_basic`, as
/// `/v1/introspect` takes them). Nothing else opens the admin API: a session cookie, a
/// bearer token or a client without the scope does not.
///
/// Refusals are problem+json: no credentials `401 unauthenticated` and wrong ones `401
/// invalid_client`, both with `WWW-Authenticate: Basic`; a client without the scope `403
/// forbidden`. Failed attempts count towards the per-address login limit, so an address
/// over it gets `429 rate_limited` until its window closes. A request a browser marks as
/// cross-site is refused (`403 csrf_failed`) before the credentials are checked: a browser
/// may have cached Basic credentials for the origin and would send them with it.
#[derive(Debug)]
pub struct AdminClient(pub ClientRecord);

impl FromRequestParts<AppState> for AdminClient {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        state.http.origins.check(&parts.headers)?;
        let Some(Authorization(basic)) = parts.headers.typed_get::<Authorization<Basic>>() else {
            return Err(Problem::unauthenticated(
                "admin client credentials (HTTP Basic) are required",
            )
            .basic_challenge());
        };
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        match state
            .engine
            .authenticate_client_from(basic.username(), basic.password(), ip)
            .await
        {
            Ok(client) if client.admin => {
                // Who did it, beside the engine's own events (which name what was done).
                tracing::info!(
                    target: "tessera::audit",
                    event = "admin_request",
                    client_id = %client.id,
                    method = %parts.method,
                    path = parts.uri.path(),
                );
                Ok(AdminClient(client))
            }
            Ok(_) => Err(Problem::forbidden(
                "this client does not carry the admin scope",
            )),
            Err(error) => Err(Problem::from(error).basic_challenge()),
        }
    }
}

/// A bearer JWT: signature and claims checked against our own keys, then its `sid` against
/// the revocation-coherent session cache. No CSRF check: nothing ambient carries it.
async fn access_token(state: &AppState, jwt: &str) -> Result<Authenticated, AuthRejection> {
    let checked = state.tokens.authenticate(jwt).await;
    let outcome = match &checked {
        Ok(_) => CheckOutcome::Ok,
        Err(AccessError::Engine(error)) => CheckOutcome::of(error),
        Err(_) => CheckOutcome::Unauthenticated,
    };
    state
        .metrics
        .session_checked(Some(Carrier::AccessToken), outcome);
    let session = checked.map_err(Problem::from)?;
    Ok(Authenticated {
        session,
        token: None,
        carrier: Carrier::AccessToken,
    })
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Finds the credential: `Authorization: Bearer` (preferred: it carries no ambient
/// authority) with a JWT (told apart by its dots) or the opaque session token, else the
/// session cookie. `Ok(None)` when neither is present; malformed or ambiguous credentials are
/// refused before any store is asked.
pub fn presented_credential<'h>(
    headers: &'h HeaderMap,
    cookie_name: &str,
) -> Result<Option<Credential<'h>>, Problem> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let text = value
            .to_str()
            .map_err(|_| Problem::unauthenticated("malformed Authorization header"))?;
        let token = match text.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(Problem::unauthenticated(
                    "only Bearer authorization is supported",
                ));
            }
        };
        if token.contains('.') {
            return Ok(Some(Credential::AccessToken(token)));
        }
        return match SessionToken::parse(token) {
            Ok(token) => Ok(Some(Credential::Session(token, Carrier::Bearer))),
            Err(_) => Err(Problem::unauthenticated("malformed bearer token")),
        };
    }
    match session_cookie(headers, cookie_name)? {
        Some(value) => match SessionToken::parse(value) {
            Ok(token) => Ok(Some(Credential::Session(token, Carrier::Cookie))),
            Err(_) => Err(Problem::unauthenticated("malformed session cookie")),
        },
        None => Ok(None),
    }
}

/// The opaque session token presented, if any (a JWT or no credential gives `None`).
pub fn presented_token(
    headers: &HeaderMap,
    cookie_name: &str,
) -> Result<Option<(SessionToken, Carrier)>, Problem> {
    Ok(match presented_credential(headers, cookie_name)? {
        Some(Credential::Session(token, carrier)) => Some((token, carrier)),
        _ => None,
    })
}

/// The session cookie's value ([`cookies::single`]: two of that name are refused).
fn session_cookie<'h>(
    headers: &'h HeaderMap,
    cookie_name: &str,
) -> Result<Option<&'h str>, Problem> {
    cookies::single(headers, cookie_name)
        .map_err(|_| Problem::unauthenticated("more than one session cookie"))
}

#[cfg(test)]
mod tests {
    use axum::http::header::COOKIE;

    use super::*;

    const NAME: &str = "__Host-tessera_session";

    fn with_cookies(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(COOKIE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_session_cookie_is_found_exactly_once() {
        let token = SessionToken::generate().unwrap().encode();
        let headers = with_cookies(&["theme=dark", &format!("other=1; {NAME}={token}")]);
        assert_eq!(
            session_cookie(&headers, NAME).unwrap(),
            Some(token.as_str())
        );
        let twice = with_cookies(&[&format!("{NAME}={token}; {NAME}=other")]);
        assert!(session_cookie(&twice, NAME).is_err());
        let wrong_case = with_cookies(&[&format!("__host-tessera_session={token}")]);
        assert_eq!(session_cookie(&wrong_case, NAME).unwrap(), None);
    }

    #[test]
    fn bearer_wins_and_junk_is_refused_before_the_store() {
        let token = SessionToken::generate().unwrap();
        let mut headers = with_cookies(&["x=y"]);
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("bearer {}", token.encode())).unwrap(),
        );
        let (found, carrier) = presented_token(&headers, NAME).unwrap().unwrap();
        assert_eq!((found, carrier), (token, Carrier::Bearer));
        for bad in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer abc"] {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(bad).unwrap());
            assert!(presented_token(&headers, NAME).is_err(), "{bad}");
        }
        // Dots make it a JWT, checked by the verifier rather than parsed as a session token.
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer a.b.c"));
        assert!(matches!(
            presented_credential(&headers, NAME),
            Ok(Some(Credential::AccessToken("a.b.c")))
        ));
    }

    #[test]
    fn cookies_carry_the_host_prefix_attributes() {
        let settings = CookieSettings {
            name: NAME.into(),
            secure: true,
        };
        let token = SessionToken::generate().unwrap();
        let set = settings.session_cookie(&token);
        let text = set.to_str().unwrap();
        assert!(
            text.starts_with(&format!("{NAME}={}", token.encode())),
            "{text}"
        );
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
            assert!(text.contains(attribute), "{text} lacks {attribute}");
        }
        assert!(!text.contains("Domain"), "{text}");
        assert!(!text.contains("Max-Age"), "{text}");
        let clear = settings.clear_cookie();
        assert!(clear.to_str().unwrap().contains("Max-Age=0"), "{clear:?}");
    }
}
