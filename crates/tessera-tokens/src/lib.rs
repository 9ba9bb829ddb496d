//! Tessera's token issuing, beside the engine: signing keys and their rotation, signed
//! access/refresh pairs, and the check of bearer access tokens.
//!
//! The engine (`tessera-core`) decides *whether* a session may have tokens and keeps the
//! refresh chains; this crate turns its grants into signed JWTs with keys it keeps in the
//! engine's key store, so a handler only translates HTTP: [`Tokens::refresh`] takes a
//! refresh token and returns a signed pair.
//!
//! # Layout
//!
//! - [`Tokens`]: issue, refresh, authenticate a bearer JWT, publish the JWKS, rotate keys,
//!   sign exchanged tokens (RFC 8693: [`ExchangeGrant`], [`Tokens::sign_exchanged`]).
//! - [`TokenSettings`]: issuer, audience, algorithm, leeway, rotation schedule.
//! - [`TokenError`], [`IssueError`], [`AccessError`]: what can go wrong, with causes kept.
//!
//! # Quick start
//!
//! ```
//! use std::sync::Arc;
//! use tessera_core::{Engine, KeyStore, LoginAttempt, Transport};
//! use tessera_tokens::{TokenSettings, Tokens};
//!
//! async fn demo(engine: Engine, keys: Arc<dyn KeyStore>) -> Result<(), Box<dyn std::error::Error>> {
//!     let tokens = Tokens::start(engine.clone(), keys, TokenSettings::new("https://auth.example")).await?;
//!     let login = engine
//!         .login(LoginAttempt {
//!             username: "alice",
//!             password: "correct horse battery staple",
//!             transport: Transport::Token,
//!             ip: None,
//!             user_agent: None,
//!         })
//!         .await?;
//!     let pair = tokens.issue(&login.session).await?;
//!     let session = tokens.authenticate(&pair.access_token).await?;
//!     assert_eq!(session.username(), "alice");
//!     let refreshed = tokens.refresh(&pair.refresh_token).await?;
//!     assert_ne!(refreshed.tokens.refresh_token.encode(), pair.refresh_token.encode());
//!     Ok(())
//! }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use tessera_core::{
    AccessGrant, AuditContext, Engine, KeyStore, RefreshToken, SessionId, Timestamp, TokenGrant,
    UserId, ValidSession,
};
use tessera_jose::{AccessClaims, Audience, VerifyError};

mod error;
mod exchange;
mod keys;
mod settings;
mod time;
mod verified;

pub use error::{AccessError, IssueError, TokenError};
pub use exchange::{
    ACCESS_TOKEN_TYPE_URN, CLIENT_CREDENTIALS_TYPE_URN, ExchangeGrant, ExchangedToken,
    JWT_TYPE_URN, MAX_ACTOR_DEPTH, REFRESH_TOKEN_TYPE_URN, SESSION_COOKIE_TYPE_URN,
    SESSION_TYPE_URN, Signed, TXN_TOKEN_TYPE_URN, actor_claim,
};
pub use settings::{
    DEFAULT_ALGORITHM, DEFAULT_AUDIENCE, DEFAULT_KEY_PUBLISH_LEAD, DEFAULT_KEY_ROTATION,
    DEFAULT_LEEWAY, Hs256Secret, TokenSettings,
};

use keys::SigningKeys;
use time::UnixSeconds;
use verified::VerifiedTokens;

/// Token issuing and checking over one engine. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Tokens {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    keys: SigningKeys,
    verified: VerifiedTokens,
}

/// A signed access token and the refresh token issued with it.
#[derive(Debug, Clone)]
pub struct SignedTokens {
    /// The compact JWS access token.
    pub access_token: String,
    /// Seconds until the access token expires, for `expires_in`.
    pub expires_in: i64,
    /// The opaque refresh token; hand it to the client and forget it.
    pub refresh_token: RefreshToken,
    /// When the refresh token stops being accepted.
    pub refresh_expires_at: Timestamp,
}

/// A key added by [`Tokens::rotate`].
#[derive(Debug, Clone)]
pub struct RotatedKey {
    /// Its key id, as tokens and the JWKS name it.
    pub kid: String,
    /// When it starts signing (it is published at once).
    pub activates_at: Timestamp,
}

/// A stored signing key as operators see it, from [`Tokens::signing_keys`]: never its key
/// material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Its key id (`kid`).
    pub kid: String,
    /// The JOSE algorithm it signs with (`EdDSA`, `ES256`, `RS256`).
    pub algorithm: String,
    /// When it was created, and published in the JWKS.
    pub created_at: Timestamp,
    /// When it starts signing.
    pub activates_at: Timestamp,
    /// When it stops signing (a successor took over then); it stays published until every
    /// token it signed has expired.
    pub retired_at: Option<Timestamp>,
}

/// A successful refresh: the session and its successor pair.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The session the tokens belong to, its activity updated.
    pub session: ValidSession,
    /// The successor pair (the same one again for a retry inside the grace window).
    pub tokens: SignedTokens,
}

impl Tokens {
    /// Loads the signing keys from `keys` (the engine's key store), creating the first one
    /// when there is none for the configured algorithm.
    pub async fn start(
        engine: Engine,
        keys: Arc<dyn KeyStore>,
        settings: TokenSettings,
    ) -> Result<Tokens, TokenError> {
        let now = UnixSeconds::of(engine.clock().now());
        let access_ttl = engine.config().tokens.access_ttl;
        let keys = SigningKeys::start(keys, settings, access_ttl, now).await?;
        Ok(Tokens {
            inner: Arc::new(Inner {
                engine,
                keys,
                verified: VerifiedTokens::default(),
            }),
        })
    }

    /// The engine the tokens hang off.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Starts the refresh chain of a session that logged in with the token transport and
    /// signs its first access token.
    pub async fn issue(&self, session: &ValidSession) -> Result<SignedTokens, IssueError> {
        let grant = self.inner.engine.issue_tokens(session).await?;
        Ok(self.sign_grant(grant)?)
    }

    /// Rotates a refresh token (see [`Engine::refresh`]) and signs the successor's access
    /// token.
    pub async fn refresh(&self, token: &RefreshToken) -> Result<Refreshed, IssueError> {
        self.refresh_with(&self.inner.engine, token).await
    }

    /// [`Tokens::refresh`] for a client in `context`: a reuse of a spent token is recorded in
    /// the audit trail with its address and user agent.
    pub async fn refresh_in(
        &self,
        token: &RefreshToken,
        context: AuditContext,
    ) -> Result<Refreshed, IssueError> {
        self.refresh_with(&self.inner.engine.with_context(context), token)
            .await
    }

    async fn refresh_with(
        &self,
        engine: &Engine,
        token: &RefreshToken,
    ) -> Result<Refreshed, IssueError> {
        let refreshed = engine.refresh(token).await?;
        Ok(Refreshed {
            session: refreshed.session,
            tokens: self.sign_grant(refreshed.tokens)?,
        })
    }

    /// Checks a bearer access token: signature, header and claims, then its session against
    /// the revocation-coherent cache (no store round trip on a hit).
    pub async fn authenticate(&self, jwt: &str) -> Result<ValidSession, AccessError> {
        let claims = self.verify(jwt).map_err(AccessError::Invalid)?;
        self.session_for_claims(&claims).await
    }

    /// The live session verified `claims` name: refused when stale, when `sid` names no
    /// session, or when the session is another user's. [`Tokens::authenticate`] after the
    /// signature check; token exchange uses it for subject tokens verified against other
    /// audiences.
    pub async fn session_for_claims(
        &self,
        claims: &AccessClaims,
    ) -> Result<ValidSession, AccessError> {
        if self.is_stale(claims) {
            return Err(AccessError::Stale);
        }
        let session_id = SessionId::parse(&claims.sid).map_err(|_| AccessError::NoSession)?;
        let session = self.inner.engine.session_for_access(&session_id).await?;
        if session.record().user_id.as_str() != claims.sub {
            return Err(AccessError::SubjectMismatch);
        }
        Ok(session)
    }

    /// True when the token was issued before a change of its user's standing that this
    /// process knows of (see [`Engine::mark_user_stale`]): a map read, no store. A `sub`
    /// that is not a user id names nobody with a standing.
    pub fn is_stale(&self, claims: &AccessClaims) -> bool {
        UserId::parse(&claims.sub)
            .is_ok_and(|user_id| self.inner.engine.is_token_stale(&user_id, claims.iat))
    }

    /// Verifies a bearer JWT (signature, header, issuer, audience, times), or finds it among
    /// the tokens verified before and not yet expired. Says nothing about its session.
    pub fn verify(&self, jwt: &str) -> Result<Arc<AccessClaims>, VerifyError> {
        let now = self.now();
        let leeway = UnixSeconds::of_duration(self.inner.keys.settings().leeway);
        self.inner.verified.verify(jwt, now.get(), leeway, || {
            self.inner.keys.current().verifier.verify(jwt, now.get())
        })
    }

    /// The published verification keys as a JWK Set document.
    pub fn jwks_json(&self) -> Vec<u8> {
        let jwks = self.inner.keys.current().keyring.jwks(self.now().get());
        // A JWK Set of strings and numbers always serializes.
        serde_json::to_vec(&jwks).unwrap_or_default()
    }

    /// The `iss` of every token.
    pub fn issuer(&self) -> &str {
        &self.inner.keys.settings().issuer
    }

    /// How long after a revocation a verifier must remember it: the longest an access token
    /// naming the session can still be accepted.
    pub fn remember_revocations_for(&self) -> Duration {
        self.inner.engine.config().tokens.access_ttl + self.inner.keys.settings().leeway
    }

    /// Re-reads the keys from the store (picks up rotations made elsewhere). A key that
    /// disappeared (deleted after a compromise, or long retired) stops vouching for tokens
    /// through the verified-token cache.
    pub async fn reload(&self) -> Result<(), TokenError> {
        if self.inner.keys.reload().await? {
            self.inner.verified.clear();
        }
        Ok(())
    }

    /// Drops verified tokens that have expired (for the maintenance task).
    pub fn sweep(&self) {
        let leeway = UnixSeconds::of_duration(self.inner.keys.settings().leeway);
        self.inner.verified.sweep(self.now().get(), leeway);
    }

    /// Adds a new key that is published at once and signs after `key_publish_lead`; the keys
    /// it replaces stop signing then and stay published until their tokens have expired.
    /// Records `key_rotated` with no actor; [`Tokens::rotate_in`] names one.
    pub async fn rotate(&self) -> Result<RotatedKey, TokenError> {
        self.rotate_in(AuditContext::default()).await
    }

    /// [`Tokens::rotate`], recorded in the audit trail as done by `context`'s actor (the
    /// CLI, an administrator).
    pub async fn rotate_in(&self, context: AuditContext) -> Result<RotatedKey, TokenError> {
        let engine = self.inner.engine.with_context(context);
        let now = self.now();
        let kid = self.inner.keys.rotate(now, &engine).await?;
        // The stored activation, in the whole seconds key records keep.
        let lead = UnixSeconds::of_duration(self.inner.keys.settings().key_publish_lead);
        let activates_at = UnixSeconds::timestamp(now.get().saturating_add(lead));
        Ok(RotatedKey { kid, activates_at })
    }

    /// The signing keys in the key store, oldest first, without their key material: what
    /// every instance signs and verifies with once it has reloaded. An HS256 key comes from
    /// configuration and is not stored, so it is not listed.
    pub async fn signing_keys(&self) -> Result<Vec<KeyInfo>, TokenError> {
        Ok(self
            .inner
            .keys
            .stored()
            .await?
            .into_iter()
            .map(|record| KeyInfo {
                kid: record.kid,
                algorithm: record.algorithm,
                created_at: UnixSeconds::timestamp(record.created_at),
                activates_at: UnixSeconds::timestamp(record.activates_at),
                retired_at: record.retired_at.map(UnixSeconds::timestamp),
            })
            .collect())
    }

    /// Rotates if the newest signing key is older than `key_rotation`, unless another
    /// instance is already doing it. Returns the new key id when this call rotated.
    /// Records `key_rotated` with the system as the actor.
    pub async fn rotate_if_due(&self) -> Result<Option<String>, TokenError> {
        self.inner
            .keys
            .rotate_if_due(self.now(), &self.inner.engine)
            .await
    }

    fn now(&self) -> UnixSeconds {
        UnixSeconds::of(self.inner.engine.clock().now())
    }

    fn sign_grant(&self, grant: TokenGrant) -> Result<SignedTokens, TokenError> {
        let access_token = self.sign_access(&grant.access)?;
        let access = &grant.access;
        Ok(SignedTokens {
            access_token,
            expires_in: (access.expires_at.unix_millis() - access.issued_at.unix_millis())
                .div_euclid(1000),
            refresh_token: grant.refresh_token,
            refresh_expires_at: grant.refresh_expires_at,
        })
    }

    /// Signs an access grant into a compact JWS with the current signing key. Every grant
    /// the engine hands out goes through here; benchmarks mint tokens with it.
    pub fn sign_access(&self, grant: &AccessGrant) -> Result<String, TokenError> {
        let signer = self.inner.keys.signer(self.now())?;
        let settings = self.inner.keys.settings();
        let claims = AccessClaims {
            iss: settings.issuer.clone(),
            sub: grant.user_id.as_str().to_owned(),
            aud: Audience::Many(settings.audience.clone()),
            exp: UnixSeconds::of(grant.expires_at).get(),
            iat: UnixSeconds::of(grant.issued_at).get(),
            nbf: None,
            auth_time: Some(UnixSeconds::of(grant.auth_time).get()),
            jti: grant.token_id.clone(),
            sid: grant.session_id.as_str().to_owned(),
            scope: None,
            roles: grant.roles.iter().map(str::to_owned).collect(),
            client_id: None,
            extra: grant.claims.as_map().clone(),
        };
        Ok(signer.sign(&claims)?)
    }
}
