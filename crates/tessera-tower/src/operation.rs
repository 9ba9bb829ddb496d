//! One-time operation tokens (`typ` `txntoken+jwt`): accepted only by the route guard
//! [`require_operation`], once.
//!
//! The layer verifies such a token like an access token (signature, issuer, its one
//! audience, expiry, revoked session, stale user) but does not make it a [`Principal`]: it
//! leaves a [`PendingOperation`] in the request's extensions. Only `require_operation(op)`
//! turns that into a `Principal` — when the token's operation is `op` and its `jti` is
//! recorded as used in the replay guard for the first time. Everything else refuses a pending
//! token: the `Principal` extractors and `require_authenticated/scope/role` answer
//! `401 invalid_token`, and the layer replaces whatever answer a route gave without a
//! `require_operation` judging the token with the same `401`. So a one-time token opens
//! nothing but its own operation, and only once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::http::{Request, Response};
use futures_util::future::{Either, ready};
use tower::{Layer, Service};

use crate::auth::{RETRY_AFTER, ResponseFuture};
use crate::principal::Principal;
use crate::rejection::Rejection;
use crate::replay::{Presentation, ReplayGuard};

/// A verified one-time operation token that no `require_operation` has judged yet.
#[derive(Debug, Clone)]
pub(crate) struct PendingOperation {
    pub(crate) principal: Principal,
    pub(crate) guard: Arc<dyn ReplayGuard>,
    /// The token's `exp` plus the leeway: how long the guard must remember its `jti`.
    pub(crate) remember_until: i64,
    /// Set by the first `require_operation` that looks at the token, whatever it decides;
    /// read by the layer once the route has answered.
    pub(crate) judged: Arc<AtomicBool>,
}

/// A route guard that lets a request through only with a one-time operation token for
/// `operation`, the first time that token is presented. Put it on the operation's route with
/// `.route_layer(require_operation("refund"))`, inside [`TesseraAuth`](crate::TesseraAuth).
///
/// In this order, so a token shown on the wrong route is not used up:
/// 1. The layer has verified the token (and refused it if invalid, expired, of a revoked
///    session or a stale user).
/// 2. Its operation (`scope`) must be exactly `operation`: otherwise `403` with
///    `WWW-Authenticate: Bearer error="insufficient_scope", scope="<operation>"`, and the
///    token stays usable on its own route.
/// 3. Its `jti` is recorded in the layer's replay guard
///    ([`TesseraAuthBuilder::replay_guard`](crate::TesseraAuthBuilder::replay_guard)): the
///    first presentation passes, with a [`Principal`] whose
///    [`operation`](Principal::operation) and [`transaction_id`](Principal::transaction_id)
///    are set; any later one is `401 invalid_token`; a guard that cannot answer (Redis
///    down) is `503` with `Retry-After`.
///
/// Any other credential — an access token, whatever its scope, or a session — is refused
/// with `403 insufficient_scope`: the route wants a token minted for this one use, which
/// is single-use by construction; an access token is replayable for its whole lifetime.
/// No credential at all is `401`.
pub fn require_operation(operation: impl Into<String>) -> RequireOperation {
    RequireOperation {
        operation: Arc::from(operation.into()),
    }
}

/// The layer made by [`require_operation`].
#[derive(Debug, Clone)]
pub struct RequireOperation {
    operation: Arc<str>,
}

impl<S> Layer<S> for RequireOperation {
    type Service = RequireOperationService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireOperationService {
            inner,
            operation: Arc::clone(&self.operation),
        }
    }
}

/// The service [`RequireOperation`] wraps around a route.
#[derive(Debug, Clone)]
pub struct RequireOperationService<S> {
    inner: S,
    operation: Arc<str>,
}

impl<S, B, ResBody> Service<Request<B>> for RequireOperationService<S>
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
        let refuse = |rejection: Rejection, request: &Request<B>| {
            Either::Left(Either::Left(ready(Ok(
                rejection.to_response_for(request.headers())
            ))))
        };
        let Some(pending) = request.extensions_mut().remove::<PendingOperation>() else {
            return match request.extensions().get::<Principal>() {
                None => refuse(Rejection::MissingCredential, &request),
                // Consumed by an outer guard for the same operation in this very request.
                Some(principal) if principal.operation() == Some(&*self.operation) => {
                    Either::Left(Either::Right(self.inner.call(request)))
                }
                Some(_) => refuse(self.insufficient(), &request),
            };
        };
        pending.judged.store(true, Ordering::Release);
        if pending.principal.operation() != Some(&*self.operation) {
            tracing::debug!("one-time token refused on another operation's route");
            return refuse(self.insufficient(), &request);
        }
        // The ready inner service goes with the request; its clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(async move {
            let Some(token_id) = pending.principal.token_id() else {
                // Every one-time principal is made from claims with a `jti`.
                return Ok(Rejection::InvalidToken.to_response_for(request.headers()));
            };
            let presentation = pending
                .guard
                .consume(token_id, pending.remember_until)
                .await;
            let rejection = match presentation {
                Ok(Presentation::First) => {
                    request.extensions_mut().insert(pending.principal);
                    return inner.call(request).await;
                }
                Ok(Presentation::Replay) => {
                    tracing::debug!("one-time token presented again refused");
                    Rejection::InvalidToken
                }
                Err(error) => {
                    tracing::warn!(%error, "the replay guard could not record a one-time token");
                    Rejection::Unavailable {
                        retry_after: RETRY_AFTER,
                    }
                }
            };
            Ok(rejection.to_response_for(request.headers()))
        }))
    }
}

impl<S> RequireOperationService<S> {
    fn insufficient(&self) -> Rejection {
        Rejection::InsufficientScope {
            scope: self.operation.to_string(),
        }
    }
}
