//! The layer and its service: read the credential, answer from memory, and pass the
//! [`Principal`] on to the inner service.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method, Request, Response};
use futures_util::future::{BoxFuture, Either, Ready, ready};
use tessera_jose::{VerifiedToken, VerifyError};
use tokio::task::JoinHandle;
use tower::{Layer, Service};

use crate::builder::TesseraAuthBuilder;
use crate::feed::{self, Freshness, Revocations};
use crate::fetch::Tessera;
use crate::health::Health;
use crate::keys::{Keys, Refreshed};
use crate::operation::PendingOperation;
use crate::principal::Principal;
use crate::rejection::Rejection;
use crate::replay::ReplayGuard;
use crate::session::{self, ActiveSession, Carrier, Origin, SessionAnswer, SessionOptions};
use crate::verified::{self, CredentialHash, VerifiedCredentials};

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
    /// Tessera's answers about session tokens (empty unless session credentials are accepted).
    pub(crate) sessions: VerifiedCredentials<SessionAnswer>,
    /// `None` unless session credentials are accepted.
    pub(crate) session_options: Option<SessionOptions>,
    /// Where one-time operation tokens are recorded as used.
    pub(crate) replay_guard: Arc<dyn ReplayGuard>,
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
    /// A session token not answered from the cache: Tessera must be asked.
    Introspect(String, Carrier),
}

/// The credential a request presents.
enum Presented<'h> {
    None,
    /// Something that is not a usable credential (a bearer header without a token, a
    /// repeated or misshapen session cookie).
    Malformed,
    Jwt(&'h str),
    Session(&'h str, Carrier),
}

/// How long a `503` asks the client to wait: about one reconnect of the feed.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(2);

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

    /// Checks the credential of a request with this method and these headers, as the layer
    /// does: from memory, except for a token naming a key not fetched yet (the key set is
    /// fetched first) and an opaque session token not seen before (Tessera is asked, when
    /// session credentials are accepted). `Ok(None)` means no credential was sent.
    ///
    /// A one-time operation token is refused here (`401 invalid_token`): only
    /// [`require_operation`](crate::require_operation) accepts it, once.
    pub async fn authenticate(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, Rejection> {
        match self.shared.resolve(method, headers).await {
            Outcome::Anonymous => Ok(None),
            Outcome::Authenticated(principal) if principal.is_one_time() => {
                Err(Rejection::InvalidToken)
            }
            Outcome::Authenticated(principal) => Ok(Some(principal)),
            Outcome::Rejected(rejection) => Err(rejection),
            Outcome::UnknownKey | Outcome::Introspect(..) => Err(Rejection::InvalidToken),
        }
    }
}

impl Shared {
    /// The request path: no I/O, no lock held across anything but a map read.
    pub(crate) fn authenticate(&self, method: &Method, headers: &HeaderMap) -> Outcome {
        let (token, carrier) = match self.presented(headers) {
            Presented::None => return Outcome::Anonymous,
            Presented::Malformed => return Outcome::Rejected(Rejection::InvalidToken),
            Presented::Jwt(token) => {
                if let Some(stale) = self.stale() {
                    return stale;
                }
                return self.authenticate_jwt(token);
            }
            Presented::Session(token, carrier) => (token, carrier),
        };
        if let Some(stale) = self.stale() {
            return stale;
        }
        let cookie_write = carrier == Carrier::Cookie && !session::is_safe(method);
        if cookie_write
            && (headers.get(session::CSRF_HEADER).is_none()
                || !session::origin_allowed(headers, self.own_origin()))
        {
            return Outcome::Rejected(Rejection::CsrfFailed);
        }
        let key = session::hash(token);
        match self.sessions.get(&key, feed::now_unix()) {
            Some(answer) => self.judge_session(&key, answer.as_deref(), cookie_write, headers),
            None => Outcome::Introspect(token.to_owned(), carrier),
        }
    }

    /// [`authenticate`](Self::authenticate), then whatever it asked for: the key set, or
    /// Tessera's word on a session token.
    pub(crate) async fn resolve(&self, method: &Method, headers: &HeaderMap) -> Outcome {
        match self.authenticate(method, headers) {
            Outcome::UnknownKey => {
                self.refresh_keys().await;
                match self.authenticate(method, headers) {
                    Outcome::UnknownKey => Outcome::Rejected(Rejection::InvalidToken),
                    other => other,
                }
            }
            Outcome::Introspect(token, carrier) => {
                self.introspect(method, headers, &token, carrier).await
            }
            other => other,
        }
    }

    /// Asks Tessera about a session token, caches the answer and judges the request by it.
    /// Tessera unreachable (or refusing this service's credentials) is `503`: no guess.
    async fn introspect(
        &self,
        method: &Method,
        headers: &HeaderMap,
        token: &str,
        carrier: Carrier,
    ) -> Outcome {
        let Some(options) = &self.session_options else {
            return Outcome::Rejected(Rejection::InvalidToken);
        };
        let now = feed::now_unix();
        match session::introspect(&self.tessera, options, token, now).await {
            Ok((answer, until)) => {
                let key = session::hash(token);
                self.sessions.insert(key, answer.clone(), until);
                let cookie_write = carrier == Carrier::Cookie && !session::is_safe(method);
                self.judge_session(&key, answer.as_deref(), cookie_write, headers)
            }
            Err(error) => {
                tracing::warn!(%error, "could not introspect a session token at Tessera");
                Outcome::Rejected(Rejection::Unavailable {
                    retry_after: RETRY_AFTER,
                })
            }
        }
    }

    /// A session token's request, given Tessera's (cached) answer.
    fn judge_session(
        &self,
        key: &CredentialHash,
        answer: Option<&ActiveSession>,
        cookie_write: bool,
        headers: &HeaderMap,
    ) -> Outcome {
        let Some(active) = answer else {
            return Outcome::Rejected(Rejection::InvalidToken);
        };
        if self.revocations.contains(active.principal.session_id()) {
            // Pushed by the feed since the answer was cached: forget the answer too.
            self.sessions.remove(key);
            tracing::debug!("session token of a revoked session refused");
            return Outcome::Rejected(Rejection::InvalidToken);
        }
        if cookie_write && !active.csrf_matches(headers) {
            return Outcome::Rejected(Rejection::CsrfFailed);
        }
        Outcome::Authenticated(active.principal.clone())
    }

    fn authenticate_jwt(&self, token: &str) -> Outcome {
        let now = feed::now_unix();
        let key = verified::hash(token);
        let principal = match self.verified.get(&key, now) {
            Some(principal) => principal,
            None => match self.keys.verifier().verify_any(token, now) {
                Ok(verified) => {
                    let (expires_at, principal) = match verified {
                        VerifiedToken::Access(claims) => {
                            (claims.exp, Principal::from_claims(claims))
                        }
                        VerifiedToken::Transaction(claims) => {
                            (claims.exp, Principal::from_transaction(claims))
                        }
                    };
                    let until = expires_at.saturating_add(self.options.leeway_seconds);
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

    /// `503` when the revocation set is staler than the bound: deciding on it would be a guess.
    fn stale(&self) -> Option<Outcome> {
        (self.freshness.staleness() > self.options.max_staleness).then_some(Outcome::Rejected(
            Rejection::Unavailable {
                retry_after: RETRY_AFTER,
            },
        ))
    }

    /// The credential of a request: a bearer token first (as on Tessera), else the session
    /// cookie when accepted.
    fn presented<'h>(&self, headers: &'h HeaderMap) -> Presented<'h> {
        let sessions = self.session_options.as_ref();
        if let Some(authorization) = headers.get(AUTHORIZATION) {
            let Some(token) = bearer(authorization.as_bytes()) else {
                // Another scheme (Basic, …) is not ours to judge.
                return if has_bearer_scheme(authorization.as_bytes()) {
                    Presented::Malformed
                } else {
                    Presented::None
                };
            };
            let session_token =
                sessions.is_some_and(|options| options.bearer_tokens) && !token.contains('.');
            return match (session_token, session::is_session_token(token)) {
                (false, _) => Presented::Jwt(token),
                (true, true) => Presented::Session(token, Carrier::Bearer),
                (true, false) => Presented::Malformed,
            };
        }
        let Some(name) = sessions.and_then(|options| options.cookie_name.as_deref()) else {
            return Presented::None;
        };
        match session::session_cookie(headers, name) {
            Ok(None) => Presented::None,
            Ok(Some(token)) if session::is_session_token(token) => {
                Presented::Session(token, Carrier::Cookie)
            }
            Ok(Some(_)) | Err(()) => Presented::Malformed,
        }
    }

    fn own_origin(&self) -> Option<&Origin> {
        self.session_options
            .as_ref()
            .and_then(|options| options.origin.as_ref())
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
        let now = feed::now_unix();
        shared.verified.sweep(now);
        shared.sessions.sweep(now);
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

/// The future of [`TesseraAuthService`] (and of
/// [`RequireOperationService`](crate::RequireOperationService)): an immediate answer, the
/// inner service's future, or a boxed one — only for a token naming a key not fetched yet (a
/// wait for the key set first), a session token to introspect, or a one-time operation
/// token (its route's answer checked, or the replay guard asked).
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
        match self
            .auth
            .shared
            .authenticate(request.method(), request.headers())
        {
            Outcome::Anonymous => Either::Left(Either::Right(self.inner.call(request))),
            Outcome::Authenticated(principal) if principal.is_one_time() => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let pending = self.auth.shared.pending(principal);
                Either::Right(Box::pin(call_with_pending(inner, request, pending)))
            }
            Outcome::Authenticated(principal) => {
                request.extensions_mut().insert(principal);
                Either::Left(Either::Right(self.inner.call(request)))
            }
            Outcome::Rejected(rejection) => Either::Left(Either::Left(ready(Ok(
                rejection.to_response_for(request.headers())
            )))),
            Outcome::UnknownKey | Outcome::Introspect(..) => {
                // The ready inner service goes with the request; its clone stays for the next.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let shared = Arc::clone(&self.auth.shared);
                Either::Right(Box::pin(async move {
                    match shared.resolve(request.method(), request.headers()).await {
                        Outcome::Anonymous => inner.call(request).await,
                        Outcome::Authenticated(principal) if principal.is_one_time() => {
                            let pending = shared.pending(principal);
                            call_with_pending(inner, request, pending).await
                        }
                        Outcome::Authenticated(principal) => {
                            request.extensions_mut().insert(principal);
                            inner.call(request).await
                        }
                        Outcome::Rejected(rejection) => {
                            Ok(rejection.to_response_for(request.headers()))
                        }
                        Outcome::UnknownKey | Outcome::Introspect(..) => {
                            Ok(Rejection::InvalidToken.to_response_for(request.headers()))
                        }
                    }
                }))
            }
        }
    }
}

impl Shared {
    /// A verified one-time token, waiting for a `require_operation` to judge it.
    fn pending(&self, principal: Principal) -> PendingOperation {
        PendingOperation {
            remember_until: principal
                .expires_at()
                .saturating_add(self.options.leeway_seconds),
            principal,
            guard: Arc::clone(&self.replay_guard),
            judged: Arc::default(),
        }
    }
}

/// Calls the route with a pending one-time token. A route where no `require_operation`
/// judged the token is answered `401 invalid_token` whatever it said: the token opens
/// nothing but its own operation (the extractors and `require_*` guards refuse it before a
/// handler runs; this also covers handlers that ask for no caller).
async fn call_with_pending<S, B, ResBody>(
    mut inner: S,
    mut request: Request<B>,
    pending: PendingOperation,
) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Default,
{
    let refused = Rejection::InvalidToken.to_response_for(request.headers());
    let judged = Arc::clone(&pending.judged);
    request.extensions_mut().insert(pending);
    let response = inner.call(request).await?;
    if judged.load(std::sync::atomic::Ordering::Acquire) {
        Ok(response)
    } else {
        tracing::debug!("one-time token refused on a route without require_operation");
        Ok(refused)
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
