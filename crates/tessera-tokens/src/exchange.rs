//! Token exchange (RFC 8693): signing what the engine allowed — an access token bound to one
//! registered service's audience, or a one-time transaction token bound to one operation.

use std::time::Duration;

use serde_json::Map;
use tessera_core::{ServiceRecord, Standing, TokenId, ValidSession};
use tessera_jose::{AccessClaims, Actor, Audience, RequestContext, TransactionClaims, VerifyError};

use crate::time::UnixSeconds;
use crate::{IssueError, TokenError, Tokens};

/// RFC 8693 §3: an OAuth access token.
pub const ACCESS_TOKEN_TYPE_URN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3: a JWT.
pub const JWT_TYPE_URN: &str = "urn:ietf:params:oauth:token-type:jwt";
/// RFC 8693 §3: a refresh token (never exchangeable here).
pub const REFRESH_TOKEN_TYPE_URN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
/// IETF Transaction Tokens draft: a one-time transaction token.
pub const TXN_TOKEN_TYPE_URN: &str = "urn:ietf:params:oauth:token-type:txn_token";
/// Tessera: an opaque session token (a bearer session token, or a child session's token).
pub const SESSION_TYPE_URN: &str = "urn:tessera:params:oauth:token-type:session";
/// Tessera: the session cookie of the request itself (the subject token is omitted).
pub const SESSION_COOKIE_TYPE_URN: &str = "urn:tessera:params:oauth:token-type:session_cookie";
/// Tessera: a registered client's credentials, `client_id:client_secret`, as `actor_token`.
pub const CLIENT_CREDENTIALS_TYPE_URN: &str =
    "urn:tessera:params:oauth:token-type:client_credentials";

/// How deep an `act` chain may nest (RFC 8693 §4.1): one level per delegating service.
pub const MAX_ACTOR_DEPTH: usize = Actor::MAX_DEPTH;

/// What kind of token an exchange signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    /// An RFC 9068 access token (`typ` `at+jwt`) for the service's audience.
    Access,
    /// A one-time transaction token (`typ` `txntoken+jwt`): one operation, seconds long.
    OneTime {
        /// Its lifetime before the service's cap.
        lifetime: Duration,
    },
}

/// One exchange the engine allowed, to be signed.
#[derive(Debug, Clone)]
pub struct ExchangeGrant<'a> {
    /// The subject's session (the parent session: its revocation kills the token).
    pub session: &'a ValidSession,
    /// The user's standing, read afresh.
    pub standing: &'a Standing,
    /// The target service.
    pub service: &'a ServiceRecord,
    /// The scopes granted (for a one-time token, exactly one: its operation).
    pub scopes: &'a [String],
    /// The `act` claim: the acting client, wrapping the subject token's own `act`.
    pub act: Option<Actor>,
    /// The requesting client's address, for a one-time token's `rctx`.
    pub request_ip: Option<String>,
    /// What to sign.
    pub kind: Signed,
}

/// A signed exchanged token.
#[derive(Debug, Clone)]
pub struct ExchangedToken {
    /// The compact JWS.
    pub token: String,
    /// Its id (`jti`; also `txn` of a one-time token).
    pub token_id: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

/// The `act` claim for `client_id` acting on a subject token whose own `act` was
/// `subject_act` (RFC 8693 §4.1: the current actor outermost, prior actors nested). `None`
/// when the chain would nest deeper than [`MAX_ACTOR_DEPTH`].
pub fn actor_claim(client_id: &str, subject_act: Option<&Actor>) -> Option<Actor> {
    let actor = Actor::new(client_id);
    match subject_act {
        None => Some(actor),
        Some(prior) if prior.depth() >= MAX_ACTOR_DEPTH => None,
        Some(prior) => Some(actor.after(prior.clone())),
    }
}

impl Tokens {
    /// Verifies a subject access token for an exchange: as [`Tokens::verify`], except that
    /// its audience may be any of `audiences` (the server's own and the registered services').
    pub fn verify_subject(
        &self,
        jwt: &str,
        audiences: Vec<String>,
    ) -> Result<AccessClaims, VerifyError> {
        self.inner
            .keys
            .verifier_for(audiences)
            .verify(jwt, self.now().get())
    }

    /// The audiences this server's own access tokens carry.
    pub fn audiences(&self) -> &[String] {
        &self.inner.keys.settings().audience
    }

    /// Signs an exchanged token: `aud` the service's, `sid` the parent session, `scope` the
    /// granted scopes, the user's roles and custom claims, `act` when a client acts; its
    /// lifetime the shortest of the access-token lifetime (or the one-time lifetime), the
    /// service's `max_ttl` and what is left of the session.
    pub async fn sign_exchanged(
        &self,
        grant: ExchangeGrant<'_>,
    ) -> Result<ExchangedToken, IssueError> {
        let engine = &self.inner.engine;
        let record = grant.session.record();
        let now = engine.clock().now();
        let base = match grant.kind {
            Signed::Access => engine.config().tokens.access_ttl,
            Signed::OneTime { lifetime } => lifetime,
        };
        let lifetime = base.min(grant.service.max_ttl);
        let expires_at = now.saturating_add(lifetime).min(record.expires_at);
        let issued_at = engine.token_issue_time(&record.user_id, now).await;
        let token_id = TokenId::generate()
            .map_err(|error| IssueError::Token(TokenError::Randomness(error)))?
            .as_str()
            .to_owned();
        let iss = self.inner.keys.settings().issuer.clone();
        let sub = record.user_id.as_str().to_owned();
        let exp = UnixSeconds::of(expires_at).get();
        let iat = UnixSeconds::of(issued_at).get();
        let auth_time = Some(UnixSeconds::of(record.auth_time).get());
        let sid = record.id.as_str().to_owned();
        let roles: Vec<String> = grant.standing.roles.iter().map(str::to_owned).collect();
        let signer = self
            .inner
            .keys
            .signer(self.now())
            .map_err(IssueError::Token)?;
        let signed = match grant.kind {
            Signed::Access => {
                let mut claims = AccessClaims {
                    iss,
                    sub,
                    aud: Audience::One(grant.service.audience.clone()),
                    exp,
                    iat,
                    nbf: None,
                    auth_time,
                    jti: token_id.clone(),
                    sid,
                    scope: (!grant.scopes.is_empty()).then(|| grant.scopes.join(" ")),
                    roles,
                    client_id: None,
                    extra: grant.standing.claims.as_map().clone(),
                };
                claims.set_actor(grant.act.as_ref());
                signer.sign(&claims)
            }
            Signed::OneTime { .. } => {
                let claims = TransactionClaims {
                    iss,
                    sub,
                    aud: grant.service.audience.clone(),
                    exp,
                    iat,
                    nbf: None,
                    jti: token_id.clone(),
                    txn: Some(token_id.clone()),
                    sid,
                    // The engine grants exactly one scope for a one-time token.
                    scope: grant.scopes.join(" "),
                    auth_time,
                    roles,
                    act: grant.act,
                    rctx: grant.request_ip.map(|ip| RequestContext {
                        req_ip: Some(ip),
                        extra: Map::new(),
                    }),
                    extra: grant.standing.claims.as_map().clone(),
                };
                signer.sign_transaction(&claims)
            }
        };
        let token = signed.map_err(|error| IssueError::Token(TokenError::Sign(error)))?;
        Ok(ExchangedToken {
            token,
            token_id,
            expires_in: (expires_at.unix_millis() - now.unix_millis()).div_euclid(1000),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_claims_nest_the_prior_actor_and_stop_at_the_depth_bound() {
        let first = actor_claim("svc-a", None).expect("no prior actor");
        assert_eq!(first.to_value(), serde_json::json!({"sub": "svc-a"}));
        let second = actor_claim("svc-b", Some(&first)).expect("depth 2");
        assert_eq!(
            second.to_value(),
            serde_json::json!({"sub": "svc-b", "act": {"sub": "svc-a"}})
        );
        let mut chain = second;
        for depth in 3..=MAX_ACTOR_DEPTH {
            chain = actor_claim(&format!("svc-{depth}"), Some(&chain)).expect("within the bound");
        }
        assert_eq!(chain.depth(), MAX_ACTOR_DEPTH);
        assert!(actor_claim("one-too-many", Some(&chain)).is_none());
    }
}
