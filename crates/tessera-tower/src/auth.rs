//! The layer and its service: read the credential, answer from memory, and pass the
//! [`Principal`] on to the inner service.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Request, Response};
use futures_util::future::{BoxFuture, Either, Ready, ready};
use tessera_jose::VerifyError;
use tokio::task::JoinHandle;
use tower::{Layer, Service};

use crate::builder::TesseraAuthBuilder;
use crate::feed::{self, Freshness, Revocations};
use crate::fetch::Tessera;
use crate::health::Health;
use crate::keys::{Keys, Refreshed};
use crate::principal::Principal;
use crate::rejection::Rejection;
use crate::verified::{self, VerifiedCredentials};

/// The middleware: a cloneable handle on the keys, the revocation set and the background
/// tasks that keep them fresh. It is the [`Layer`]; wrap a router or any tower service in it.
///
/// Built by [`TesseraAuth::builder`]. The background tasks stop when the last clone (and
/// every service made from it) is dropped.
#[derive(Debug, Clone)]
pub struct TesseraAuth {
    pub(crate) shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

/// Everything the request path reads, and the background tasks write.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) tessera: Tessera,
    pub(crate) keys: Keys,
    pub(crate) revocations: Revocations,
    pub(crate) freshness: Freshness,
    pub(crate) verified: VerifiedCredentials,
    pub(crate) endpoints: Endpoints,
    pub(crate) options: Options,
}

/// Where the revocation feed is.
#[derive(Debug)]
pub(crate) struct Endpoints {
    pub(crate) revocations: String,
    pub(crate) revocation_stream: String,
}

/// The builder's settings, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) max_staleness: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) stream_idle_timeout: Duration,
    pub(crate) jwks_refresh_interval: Duration,
    pub(crate) leeway_seconds: i64,
}

/// The background tasks, aborted when the last handle goes.
#[derive(Debug)]
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// What one request's credential amounts to.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// No credential: the extractors decide (a required [`Principal`] answers `401`).
    Anonymous,
    Authenticated(Principal),
    Rejected(Rejection),
    /// A JWT naming a `kid` not in the key set while a fetch is due or running.
    UnknownKey,
}

/// How long a `503` asks the client to wait: about one reconnect of the feed.
const RETRY_AFTER: Duration = Duration::from_secs(2);

impl TesseraAuth {
    /// Starts configuring the middleware for tokens issued by `issuer_url` (Tessera's
    /// public URL, where `/.well-known/oauth-authorization-server` is served) to this
    /// service's `audience`.
    pub fn builder(
        issuer_url: impl Into<String>,
        audience: impl Into<String>,
    ) -> TesseraAuthBuilder {
        TesseraAuthBuilder::new(issuer_url.into(), audience.into())
    }

    pub(crate) fn start(shared: Shared) -> TesseraAuth {
        let shared = Arc::new(shared);
        let tasks = vec![
            tokio::spawn(feed::follow(Arc::clone(&shared))),
            tokio::spawn(refresh_keys_on_schedule(Arc::clone(&shared))),
        ];
        TesseraAuth {
            shared,
            _tasks: Arc::new(Tasks(tasks)),
        }
    }

    /// A handle that says how fresh the revocation set is: put the service's readiness on it.
    pub fn health(&self) -> Health {
        Health::new(Arc::clone(&self.shared))
    }

    /// Checks the credential of a request with these headers, from memory only. `Ok(None)`
    /// means no credential was sent; a token naming a key not yet fetched is refused here
    /// (the service waits for the fetch instead).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Principal>, Rejection> {
        match self.shared.authenticate(headers) {
            Outcome::Anonymous => Ok(None),
            Outcome::Authenticated(principal) => Ok(Some(principal)),
            Outcome::Rejected(rejection) => Err(rejection),
            Outcome::UnknownKey => Err(Rejection::InvalidToken),
        }
    }
}

impl Shared {
    /// The request path: no I/O, no lock held across anything but a map read.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Outcome {
        let Some(authorization) = headers.get(AUTHORIZATION) else {
            return Outcome::Anonymous;
        };
        let Some(token) = bearer(authorization.as_bytes()) else {
            // Another scheme (Basic, …) is not ours to judge.
            return if has_bearer_scheme(authorization.as_bytes()) {
                Outcome::Rejected(Rejection::InvalidToken)
            } else {
                Outcome::Anonymous
            };
        };
        if self.freshness.staleness() > self.options.max_staleness {
            return Outcome::Rejected(Rejection::Unavailable {
                retry_after: RETRY_AFTER,
            });
        }
        let now = feed::now_unix();
        let key = verified::hash(token);
        let principal = match self.verified.get(&key, now) {
            Some(principal) => principal,
            None => match self.keys.verifier().verify(token, now) {
                Ok(claims) => {
                    let until = claims.exp.saturating_add(self.options.leeway_seconds);
                    let principal = Principal::from_claims(claims);
                    self.verified.insert(key, principal.clone(), until);
                    principal
                }
                Err(VerifyError::UnknownKey) if self.keys.worth_waiting_for() => {
                    return Outcome::UnknownKey;
                }
                Err(error) => {
                    tracing::debug!(%error, "bearer token refused");
                    return Outcome::Rejected(Rejection::InvalidToken);
                }
            },
        };
        if self.revocations.contains(principal.session_id()) {
            tracing::debug!("bearer token of a revoked session refused");
            return Outcome::Rejected(Rejection::InvalidToken);
        }
        if self
            .revocations
            .is_stale(principal.subject(), principal.issued_at())
        {
            tracing::debug!("bearer token issued before its user's standing changed refused");
            return Outcome::Rejected(Rejection::InvalidToken);
        }
        Outcome::Authenticated(principal)
    }

    /// Fetches the key set (rate-limited, one at a time); a key that vanished stops vouching
    /// through the cache.
    pub(crate) async fn refresh_keys(&self) {
        match self.keys.refresh(&self.tessera).await {
            Ok(Refreshed::Fetched { removed: true }) => self.verified.clear(),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not refresh the key set"),
        }
    }
}

async fn refresh_keys_on_schedule(shared: Arc<Shared>) {
    let mut schedule = tokio::time::interval(shared.options.jwks_refresh_interval);
    schedule.tick().await;
    loop {
        schedule.tick().await;
        shared.refresh_keys().await;
        shared.verified.sweep(feed::now_unix());
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive, RFC 7235 §2.1).
fn bearer(value: &[u8]) -> Option<&str> {
    let (scheme, token) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = std::str::from_utf8(token).ok()?.trim_matches(' ');
    (!token.is_empty()).then_some(token)
}

fn has_bearer_scheme(value: &[u8]) -> bool {
    value
        .get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"bearer"))
}

impl<S> Layer<S> for TesseraAuth {
    type Service = TesseraAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TesseraAuthService {
            inner,
            auth: self.clone(),
        }
    }
}

/// The service [`TesseraAuth`] wraps around another: requests with a valid credential reach
/// it with a [`Principal`] in their extensions; invalid ones are answered here.
#[derive(Debug, Clone)]
pub struct TesseraAuthService<S> {
    inner: S,
    auth: TesseraAuth,
}

/// The future of [`TesseraAuthService`]: an immediate answer, the inner service's future, or
/// (only for a token naming a key not fetched yet) a wait for the key set first.
pub type ResponseFuture<F, B, E> =
    Either<Either<Ready<Result<Response<B>, E>>, F>, BoxFuture<'static, Result<Response<B>, E>>>;

impl<S, B, ResBody> Service<Request<B>> for TesseraAuthService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self.auth.shared.authenticate(request.headers()) {
            Outcome::Anonymous => Either::Left(Either::Right(self.inner.call(request))),
            Outcome::Authenticated(principal) => {
                request.extensions_mut().insert(principal);
                Either::Left(Either::Right(self.inner.call(request)))
            }
            Outcome::Rejected(rejection) => {
                Either::Left(Either::Left(ready(Ok(rejection.to_response()))))
            }
            Outcome::UnknownKey => {
                // The ready inner service goes with the request; its clone stays for the next.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let shared = Arc::clone(&self.auth.shared);
                Either::Right(Box::pin(async move {
                    shared.refresh_keys().await;
                    match shared.authenticate(request.headers()) {
                        Outcome::Anonymous => inner.call(request).await,
                        Outcome::Authenticated(principal) => {
                            request.extensions_mut().insert(principal);
                            inner.call(request).await
                        }
                        Outcome::Rejected(rejection) => Ok(rejection.to_response()),
                        Outcome::UnknownKey => Ok(Rejection::InvalidToken.to_response()),
                    }
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_with_any_scheme_case_and_nothing_else_is() {
        assert_eq!(bearer(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer(b"bearer abc"), Some("abc"));
        assert_eq!(bearer(b"BEARER  abc "), Some("abc"));
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearerabc"), None);
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer \xff"), None);
        assert!(has_bearer_scheme(b"Bearer "));
        assert!(!has_bearer_scheme(b"Basic x"));
    }
}
