//! Strict verification of access tokens (RFC 8725, RFC 9068) and one-time operation tokens
//! (`txntoken+jwt`).
//!
//! Every check is made here, in this order, before or around the JOSE library, which is only
//! asked to check the signature: size, three canonical base64url segments, a strict header
//! (unique members, no `crit`/`jwk`/`jku`/`x5u`/`x5c`/`x5t`, `typ` the type asked for, a
//! `kid` naming a configured key), `alg` equal to that key's algorithm, the signature — and
//! only then the claims, typed strictly.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny};

use crate::actor::Actor;
use crate::algorithm::Algorithm;
use crate::claims::AccessClaims;
use crate::jwk::Jwks;
use crate::key::KeyError;
use crate::strict_json;
use crate::transaction::{TransactionClaims, is_one_operation};

/// What a verifier checks besides the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierSettings {
    /// The issuer every token's `iss` must equal.
    pub issuer: String,
    /// A token's `aud` must name at least one of these. Empty strings are ignored; with no
    /// audience configured every token is rejected.
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Defaults to `30s`; values above
    /// `300s` are capped to `300s`.
    pub leeway: Duration,
    /// Tokens longer than this are rejected before any decoding. Defaults to `8192`.
    pub max_token_bytes: usize,
    /// The longest lifetime (`exp - iat`, rounded up to whole seconds) a token may claim,
    /// plus the leeway. Set it to the issuer's access-token lifetime, so a leaked signing key
    /// cannot mint tokens that outlive its rotation by months.
    /// Defaults to `None`: no bound.
    pub max_lifetime: Option<Duration>,
    /// The longest lifetime a one-time operation token may claim, plus the leeway: a
    /// verifier must remember every such token it accepted until it expires, so the bound
    /// also bounds that memory.
    /// Defaults to `5m`.
    pub max_transaction_lifetime: Duration,
}

impl VerifierSettings {
    /// The default leeway: 30 seconds.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
    /// The largest leeway honoured: 300 seconds (RFC 7519 §4.1.4, "a few minutes").
    pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
    /// The default size limit: 8 KiB, the common HTTP header-line limit.
    pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
    /// The default bound on a one-time operation token's lifetime: 5 minutes (Tessera issues
    /// them for 30 seconds by default).
    pub const DEFAULT_MAX_TRANSACTION_LIFETIME: Duration = Duration::from_secs(300);

    /// Settings for `issuer` and `audiences`, with the default leeway and size limit.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> VerifierSettings {
        VerifierSettings {
            issuer: issuer.into(),
            audiences,
            leeway: Self::DEFAULT_LEEWAY,
            max_token_bytes: Self::DEFAULT_MAX_TOKEN_BYTES,
            max_lifetime: None,
            max_transaction_lifetime: Self::DEFAULT_MAX_TRANSACTION_LIFETIME,
        }
    }
}

/// Verifies access tokens and one-time operation tokens against a fixed set of keys. Cheap
/// to clone.
///
/// Built from a [`Keyring`](crate::Keyring) by the issuer, or from a JWKS document by any
/// other service. Keys come only from there: nothing in a token ever selects a URL, a file
/// or a key, and nothing is fetched.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    keys: HashMap<String, VerificationKey>,
    issuer: String,
    audiences: Vec<String>,
    leeway_seconds: i64,
    max_token_bytes: usize,
    /// `max_lifetime` plus the leeway, in whole seconds.
    max_lifetime_seconds: Option<i64>,
    /// `max_transaction_lifetime` plus the leeway, in whole seconds.
    max_transaction_lifetime_seconds: i64,
}

/// One key a verifier accepts, bound to one algorithm, over the window it is published.
#[derive(Clone)]
pub(crate) struct VerificationKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) decoding_key: DecodingKey,
    pub(crate) published_from: i64,
    /// Exclusive; `None` while the key is not retired.
    pub(crate) published_until: Option<i64>,
}

impl VerificationKey {
    pub(crate) fn is_published(&self, now: i64) -> bool {
        self.published_from <= now && self.published_until.is_none_or(|until| now < until)
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key material stays out of logs: HMAC verification keys are secrets.
        let mut kids: Vec<&str> = self.inner.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        formatter
            .debug_struct("Verifier")
            .field("kids", &kids)
            .field("issuer", &self.inner.issuer)
            .field("audiences", &self.inner.audiences)
            .field("leeway_seconds", &self.inner.leeway_seconds)
            .field("max_token_bytes", &self.inner.max_token_bytes)
            .field("max_lifetime_seconds", &self.inner.max_lifetime_seconds)
            .field(
                "max_transaction_lifetime_seconds",
                &self.inner.max_transaction_lifetime_seconds,
            )
            .finish()
    }
}

/// Which part of a compact JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPart {
    /// The protected header.
    Header,
    /// The claims.
    Payload,
    /// The signature.
    Signature,
}

impl fmt::Display for TokenPart {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Header => "header",
            Self::Payload => "payload",
            Self::Signature => "signature",
        })
    }
}

/// Why a token was rejected. Messages never contain the token; JSON sources may quote a
/// header or claim value, never the signature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Longer than `max_token_bytes`; nothing was decoded.
    #[error("token is longer than {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// Not exactly three dot-separated segments.
    #[error("token does not have exactly three segments")]
    Malformed,
    /// A segment is not canonical unpadded base64url (padding, `+`/`/`, whitespace,
    /// non-zero trailing bits, impossible length).
    #[error("token {part} is not canonical base64url")]
    Encoding {
        /// The offending segment.
        part: TokenPart,
        /// The decoder's error.
        #[source]
        source: base64::DecodeError,
    },
    /// The signature segment is empty.
    #[error("token has no signature")]
    MissingSignature,
    /// The header is not a JSON object with unique member names and string `alg`/`kid`/`typ`.
    #[error("token header is not a valid JOSE header")]
    BadHeader(#[source] serde_json::Error),
    /// The header carries a member this verifier refuses: `crit` (no extension is
    /// implemented), key material or key locations (`jwk`, `jku`, `x5u`, `x5c`, `x5t`,
    /// `x5t#S256`), or JWE / unencoded-payload / nested-token members (`enc`, `zip`, `b64`,
    /// `cty`).
    #[error("token header carries the refused member `{member}`")]
    RefusedHeader {
        /// The member's name.
        member: &'static str,
    },
    /// `typ` is absent or not the type asked for: `at+jwt` / `application/at+jwt` for
    /// [`Verifier::verify`], `txntoken+jwt` / `application/txntoken+jwt` for
    /// [`Verifier::verify_transaction`], either for [`Verifier::verify_any`].
    #[error("token is not of the type accepted here (typ)")]
    WrongType,
    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKid,
    /// `kid` names no key published at this time.
    #[error("token names an unknown key")]
    UnknownKey,
    /// `alg` is not exactly the named key's algorithm (`none`, case variants, HS256 against
    /// an asymmetric key, …).
    #[error("token alg does not match its key's algorithm {expected}")]
    AlgorithmMismatch {
        /// The key's algorithm.
        expected: Algorithm,
    },
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// The JOSE library could not use the key.
    #[error("the verification key could not be used")]
    KeyUnusable(#[source] jsonwebtoken::errors::Error),
    /// The claims are not a valid, type-strict claim set for the token's type (missing
    /// required claim, `exp` as a string, empty `aud` array, duplicate claim, an `act` chain
    /// that is malformed or deeper than [`Actor::MAX_DEPTH`], …).
    #[error("token claims are invalid")]
    BadClaims(#[source] serde_json::Error),
    /// A required string claim is empty.
    #[error("token claim `{claim}` is empty")]
    EmptyClaim {
        /// The claim's name.
        claim: &'static str,
    },
    /// `iss` is not the configured issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` names none of the configured audiences.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// `now >= exp + leeway`.
    #[error("token has expired")]
    Expired,
    /// `now < nbf - leeway`.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iat > now + leeway`.
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// `exp - iat` exceeds `max_lifetime` (`max_transaction_lifetime` for a one-time
    /// operation token) plus the leeway.
    #[error("token claims a longer lifetime than the issuer grants")]
    LifetimeTooLong,
    /// A one-time operation token's `scope` is not exactly one operation (empty, several
    /// space-separated entries, characters RFC 6749 §3.3 does not allow).
    #[error("token scope is not exactly one operation")]
    NotOneOperation,
}

/// A verified token of either type, from [`Verifier::verify_any`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiedToken {
    /// An access token (`at+jwt`).
    Access(AccessClaims),
    /// A one-time operation token (`txntoken+jwt`): the caller must enforce single use.
    Transaction(TransactionClaims),
}

/// Which `typ` the header must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeCheck {
    AccessToken,
    TransactionToken,
    Either,
    Skip,
}

/// What the header's `typ` says the token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenType {
    Access,
    Transaction,
    Other,
}

impl TypeCheck {
    fn admits(self, found: TokenType) -> bool {
        match self {
            TypeCheck::AccessToken => found == TokenType::Access,
            TypeCheck::TransactionToken => found == TokenType::Transaction,
            TypeCheck::Either => found != TokenType::Other,
            TypeCheck::Skip => true,
        }
    }
}

impl Verifier {
    pub(crate) fn new(
        keys: HashMap<String, VerificationKey>,
        settings: VerifierSettings,
    ) -> Verifier {
        let leeway = settings.leeway.min(VerifierSettings::MAX_LEEWAY);
        let leeway_seconds = i64::try_from(leeway.as_secs()).unwrap_or(0);
        let max_lifetime_seconds = settings.max_lifetime.map(|lifetime| {
            // Rounded up: an issuer counting in milliseconds may round `exp` and `iat` apart.
            let seconds = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
            i64::try_from(seconds)
                .unwrap_or(i64::MAX)
                .saturating_add(leeway_seconds)
        });
        let max_transaction_lifetime_seconds = {
            let lifetime = settings.max_transaction_lifetime;
            let seconds = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
            i64::try_from(seconds)
                .unwrap_or(i64::MAX)
                .saturating_add(leeway_seconds)
        };
        let audiences = settings
            .audiences
            .into_iter()
            .filter(|audience| !audience.is_empty())
            .collect();
        Verifier {
            inner: Arc::new(VerifierInner {
                keys,
                issuer: settings.issuer,
                audiences,
                leeway_seconds,
                max_token_bytes: settings.max_token_bytes,
                max_lifetime_seconds,
                max_transaction_lifetime_seconds,
            }),
        }
    }

    /// A verifier for another service, from the issuer's JWKS. Every key needs a unique
    /// `kid` and an `alg` (EdDSA, ES256 or RS256) that fits its key; keys with private
    /// members, `use` other than `sig`, invalid points or RSA moduli under 2048 bits are
    /// refused. The keys never expire here: rebuild the verifier when the JWKS changes.
    pub fn from_jwks(jwks: &Jwks, settings: VerifierSettings) -> Result<Verifier, KeyError> {
        let mut keys = HashMap::with_capacity(jwks.keys.len());
        for jwk in &jwks.keys {
            let kid = jwk.kid.clone().ok_or(KeyError::MissingKid)?;
            if keys.contains_key(&kid) {
                return Err(KeyError::DuplicateKid { kid });
            }
            let (algorithm, decoding_key) =
                jwk.to_decoding_key()
                    .map_err(|problem| KeyError::InvalidJwk {
                        kid: kid.clone(),
                        problem,
                    })?;
            let key = VerificationKey {
                algorithm,
                decoding_key,
                published_from: i64::MIN,
                published_until: None,
            };
            keys.insert(kid, key);
        }
        Ok(Verifier::new(keys, settings))
    }

    /// Verifies `token` at `now` (unix seconds) and returns its claims.
    ///
    /// Time rules, with `L` the leeway: accepted while `now < exp + L` (so `exp = now - L` is
    /// already expired), `now >= nbf - L`, `iat <= now + L`, and, with a `max_lifetime` `M`,
    /// `exp - iat <= M + L`.
    ///
    /// Only `typ` `at+jwt` is accepted: a one-time operation token (`txntoken+jwt`) is
    /// refused with [`VerifyError::WrongType`], so a caller that does not enforce single use
    /// can never accept one. An `act` claim, kept in [`AccessClaims::extra`], must be a
    /// valid actor chain (see [`AccessClaims::actor`]).
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, VerifyError> {
        let (payload, _) = self.verify_signature(token, now, TypeCheck::AccessToken)?;
        self.access_claims(&payload, now)
    }

    /// Verifies a one-time operation token (`typ` `txntoken+jwt`) at `now` and returns its
    /// claims. An access token (`at+jwt`) is refused with [`VerifyError::WrongType`].
    ///
    /// The same checks as [`verify`](Self::verify), with `aud` exactly one audience (a
    /// string naming a configured audience), `scope` exactly one operation, `txn` non-empty
    /// when present, and the lifetime bounded by `max_transaction_lifetime`. Single use is
    /// the caller's to enforce: record `jti` until `exp` plus the leeway and refuse it the
    /// second time.
    pub fn verify_transaction(
        &self,
        token: &str,
        now: i64,
    ) -> Result<TransactionClaims, VerifyError> {
        let (payload, _) = self.verify_signature(token, now, TypeCheck::TransactionToken)?;
        self.transaction_claims(&payload, now)
    }

    /// Verifies a token of either type, by its `typ`: [`verify`](Self::verify) for
    /// `at+jwt`, [`verify_transaction`](Self::verify_transaction) for `txntoken+jwt`, with
    /// one signature check. For a caller that handles both and enforces single use of the
    /// second; anything else is refused with [`VerifyError::WrongType`].
    pub fn verify_any(&self, token: &str, now: i64) -> Result<VerifiedToken, VerifyError> {
        match self.verify_signature(token, now, TypeCheck::Either)? {
            (payload, TokenType::Transaction) => self
                .transaction_claims(&payload, now)
                .map(VerifiedToken::Transaction),
            (payload, _) => self.access_claims(&payload, now).map(VerifiedToken::Access),
        }
    }

    fn access_claims(&self, payload: &[u8], now: i64) -> Result<AccessClaims, VerifyError> {
        let claims: AccessClaims = parse_claims(payload)?;
        if let Some(act) = claims.extra.get("act") {
            Actor::from_value(act).map_err(VerifyError::BadClaims)?;
        }
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    fn transaction_claims(
        &self,
        payload: &[u8],
        now: i64,
    ) -> Result<TransactionClaims, VerifyError> {
        let claims: TransactionClaims = parse_claims(payload)?;
        self.check_transaction_claims(&claims, now)?;
        Ok(claims)
    }

    /// Every check up to and including the signature; returns the decoded payload, unread,
    /// and the type the header names.
    pub(crate) fn verify_signature(
        &self,
        token: &str,
        now: i64,
        type_check: TypeCheck,
    ) -> Result<(Vec<u8>, TokenType), VerifyError> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_bytes {
            return Err(VerifyError::TooLarge {
                limit: inner.max_token_bytes,
            });
        }
        let mut segments = token.split('.');
        let (Some(header_segment), Some(payload_segment), Some(signature_segment), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(VerifyError::Malformed);
        };

        let header_json = decode_segment(header_segment, TokenPart::Header)?;
        let header = Header::parse(&header_json)?;
        let token_type = header.token_type();
        if !type_check.admits(token_type) {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::MissingKid)?;
        let key = inner
            .keys
            .get(kid)
            .filter(|key| key.is_published(now))
            .ok_or(VerifyError::UnknownKey)?;
        if header.alg != key.algorithm.as_str() {
            return Err(VerifyError::AlgorithmMismatch {
                expected: key.algorithm,
            });
        }

        let payload = decode_segment(payload_segment, TokenPart::Payload)?;
        // Checked here so a non-canonical signature is an encoding error, not a bad signature;
        // 1024 bytes is an RSA-8192 signature, the largest a supported key can make.
        let mut signature = [0u8; 1024];
        let signature_length = URL_SAFE_NO_PAD
            .decode_slice(signature_segment, &mut signature)
            .map_err(|error| VerifyError::Encoding {
                part: TokenPart::Signature,
                source: match error {
                    base64::DecodeSliceError::DecodeError(source) => source,
                    base64::DecodeSliceError::OutputSliceTooSmall => {
                        base64::DecodeError::InvalidLength(signature_segment.len())
                    }
                },
            })?;
        if signature_length == 0 {
            return Err(VerifyError::MissingSignature);
        }

        let signing_input = &token[..header_segment.len() + 1 + payload_segment.len()];
        match jsonwebtoken::crypto::verify(
            signature_segment,
            signing_input.as_bytes(),
            &key.decoding_key,
            key.algorithm.to_jsonwebtoken(),
        ) {
            Ok(true) => Ok((payload, token_type)),
            Ok(false) => Err(VerifyError::BadSignature),
            Err(error) => Err(VerifyError::KeyUnusable(error)),
        }
    }

    fn check_claims(&self, claims: &AccessClaims, now: i64) -> Result<(), VerifyError> {
        let inner = &*self.inner;
        for (claim, value) in [
            ("sub", &claims.sub),
            ("jti", &claims.jti),
            ("sid", &claims.sid),
        ] {
            if value.is_empty() {
                return Err(VerifyError::EmptyClaim { claim });
            }
        }
        if claims.iss != inner.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        if !inner
            .audiences
            .iter()
            .any(|audience| claims.aud.contains(audience))
        {
            return Err(VerifyError::WrongAudience);
        }
        self.check_times(
            (claims.exp, claims.nbf, claims.iat),
            inner.max_lifetime_seconds,
            now,
        )
    }

    fn check_transaction_claims(
        &self,
        claims: &TransactionClaims,
        now: i64,
    ) -> Result<(), VerifyError> {
        let inner = &*self.inner;
        for (claim, value) in [
            ("sub", &claims.sub),
            ("jti", &claims.jti),
            ("sid", &claims.sid),
        ] {
            if value.is_empty() {
                return Err(VerifyError::EmptyClaim { claim });
            }
        }
        if claims.txn.as_deref().is_some_and(str::is_empty) {
            return Err(VerifyError::EmptyClaim { claim: "txn" });
        }
        if !is_one_operation(&claims.scope) {
            return Err(VerifyError::NotOneOperation);
        }
        if claims.iss != inner.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        if !inner.audiences.contains(&claims.aud) {
            return Err(VerifyError::WrongAudience);
        }
        self.check_times(
            (claims.exp, claims.nbf, claims.iat),
            Some(inner.max_transaction_lifetime_seconds),
            now,
        )
    }

    /// `exp`, `nbf`, `iat` and the lifetime bound (which includes the leeway).
    fn check_times(
        &self,
        (expires_at, not_before, issued_at): (i64, Option<i64>, i64),
        longest_lifetime: Option<i64>,
        now: i64,
    ) -> Result<(), VerifyError> {
        let leeway = self.inner.leeway_seconds;
        if now >= expires_at.saturating_add(leeway) {
            return Err(VerifyError::Expired);
        }
        if not_before.is_some_and(|not_before| now < not_before.saturating_sub(leeway)) {
            return Err(VerifyError::NotYetValid);
        }
        if issued_at > now.saturating_add(leeway) {
            return Err(VerifyError::IssuedInFuture);
        }
        if longest_lifetime.is_some_and(|longest| expires_at.saturating_sub(issued_at) > longest) {
            return Err(VerifyError::LifetimeTooLong);
        }
        Ok(())
    }
}

fn decode_segment(segment: &str, part: TokenPart) -> Result<Vec<u8>, VerifyError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|source| VerifyError::Encoding { part, source })
}

fn parse_claims<T: DeserializeOwned>(payload: &[u8]) -> Result<T, VerifyError> {
    strict_json::check_object_with_unique_members(payload).map_err(VerifyError::BadClaims)?;
    serde_json::from_slice(payload).map_err(VerifyError::BadClaims)
}

/// The protected header, as far as this verifier reads it. Other members are ignored,
/// except the refused ones, which are recorded by presence whatever their value.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Present,
    #[serde(default)]
    jwk: Present,
    #[serde(default)]
    jku: Present,
    #[serde(default)]
    x5u: Present,
    #[serde(default)]
    x5c: Present,
    #[serde(default)]
    x5t: Present,
    #[serde(default, rename = "x5t#S256")]
    x5t_sha256: Present,
    #[serde(default)]
    enc: Present,
    #[serde(default)]
    zip: Present,
    #[serde(default)]
    b64: Present,
    #[serde(default)]
    cty: Present,
}

impl<'a> Header<'a> {
    fn parse(json: &'a [u8]) -> Result<Header<'a>, VerifyError> {
        strict_json::check_object_with_unique_members(json).map_err(VerifyError::BadHeader)?;
        let header: Header<'a> = serde_json::from_slice(json).map_err(VerifyError::BadHeader)?;
        let refused = [
            ("crit", header.crit),
            ("jwk", header.jwk),
            ("jku", header.jku),
            ("x5u", header.x5u),
            ("x5c", header.x5c),
            ("x5t", header.x5t),
            ("x5t#S256", header.x5t_sha256),
            ("enc", header.enc),
            ("zip", header.zip),
            ("b64", header.b64),
            ("cty", header.cty),
        ];
        if let Some((member, _)) = refused.into_iter().find(|(_, present)| present.0) {
            return Err(VerifyError::RefusedHeader { member });
        }
        Ok(header)
    }

    /// RFC 9068 §4: `at+jwt`, or its full media type; likewise `txntoken+jwt`. Compared
    /// case-insensitively.
    fn token_type(&self) -> TokenType {
        let Some(typ) = self.typ.as_deref() else {
            return TokenType::Other;
        };
        let short = typ
            .get(..12)
            .filter(|prefix| prefix.eq_ignore_ascii_case("application/"))
            .map_or(typ, |_| &typ[12..]);
        if short.eq_ignore_ascii_case("at+jwt") {
            TokenType::Access
        } else if short.eq_ignore_ascii_case("txntoken+jwt") {
            TokenType::Transaction
        } else {
            TokenType::Other
        }
    }
}

/// A member that counts by being there, whatever its value (even `null`).
#[derive(Debug, Default, Clone, Copy)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Present(true))
    }
}
