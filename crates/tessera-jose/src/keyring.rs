//! The keyring: every stored key parsed once, which one signs now, what the JWKS publishes.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};

use crate::algorithm::Algorithm;
use crate::claims::AccessClaims;
use crate::jwk::Jwks;
use crate::key::{KeyError, StoredKey};
use crate::transaction::{TRANSACTION_TOKEN_TYPE, TransactionClaims, is_one_operation};
use crate::verifier::{VerificationKey, Verifier, VerifierSettings};

/// The `typ` header of every token signed here (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Parsed signing keys and their schedule. Cheap to clone: the keys sit behind an `Arc`.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<KeyringInner>,
}

struct KeyringInner {
    keys: Vec<RingKey>,
    publish_after_retirement: i64,
}

struct RingKey {
    created_at: i64,
    activates_at: i64,
    retired_at: Option<i64>,
    signer: Signer,
    verification_key: VerificationKey,
    public_jwk: Option<crate::jwk::Jwk>,
}

impl RingKey {
    fn signs_at(&self, now: i64) -> bool {
        self.activates_at <= now && self.retired_at.is_none_or(|retired_at| now < retired_at)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Keyring")
            .field(
                "kids",
                &self
                    .inner
                    .keys
                    .iter()
                    .map(|key| key.signer.kid())
                    .collect::<Vec<_>>(),
            )
            .field(
                "publish_after_retirement",
                &self.inner.publish_after_retirement,
            )
            .finish()
    }
}

impl Keyring {
    /// Parses every key once. `publish_after_retirement` is how long a retired key stays
    /// published and verifying: at least the longest access-token lifetime plus leeway.
    ///
    /// Refuses duplicate or malformed `kid`s, keys that activate before they are created,
    /// unparsable or weak keys.
    pub fn new(
        keys: Vec<StoredKey>,
        publish_after_retirement: Duration,
    ) -> Result<Keyring, KeyError> {
        let publish_after_retirement =
            i64::try_from(publish_after_retirement.as_secs()).unwrap_or(i64::MAX);
        let mut kids = HashSet::with_capacity(keys.len());
        let mut ring_keys = Vec::with_capacity(keys.len());
        for key in keys {
            if !kids.insert(key.kid.clone()) {
                return Err(KeyError::DuplicateKid { kid: key.kid });
            }
            let parsed = key.parse()?;
            let published_until = key
                .retired_at
                .map(|retired_at| retired_at.saturating_add(publish_after_retirement));
            let mut header = Header::new(key.algorithm.to_jsonwebtoken());
            header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
            header.kid = Some(key.kid.clone());
            let mut transaction_header = header.clone();
            transaction_header.typ = Some(TRANSACTION_TOKEN_TYPE.to_owned());
            ring_keys.push(RingKey {
                created_at: key.created_at,
                activates_at: key.activates_at,
                retired_at: key.retired_at,
                verification_key: VerificationKey {
                    algorithm: key.algorithm,
                    decoding_key: parsed.decoding_key,
                    published_from: key.created_at,
                    published_until,
                },
                signer: Signer {
                    inner: Arc::new(SigningKey {
                        kid: key.kid,
                        algorithm: key.algorithm,
                        header,
                        transaction_header,
                        encoding_key: parsed.encoding_key,
                    }),
                },
                public_jwk: parsed.public_jwk,
            });
        }
        Ok(Keyring {
            inner: Arc::new(KeyringInner {
                keys: ring_keys,
                publish_after_retirement,
            }),
        })
    }

    /// The key that signs at `now`: the newest (latest `activates_at`, then latest
    /// `created_at`) with `activates_at <= now` and not yet retired. `None` when no key is
    /// active — the caller must not issue tokens then.
    pub fn signer(&self, now: i64) -> Option<Signer> {
        self.inner
            .keys
            .iter()
            .filter(|key| key.signs_at(now))
            .max_by_key(|key| (key.activates_at, key.created_at))
            .map(|key| key.signer.clone())
    }

    /// The public keys to publish at `now`: every asymmetric key with `created_at <= now`
    /// and `now < retired_at + publish_after_retirement`. Never private parts, never HMAC.
    pub fn jwks(&self, now: i64) -> Jwks {
        Jwks {
            keys: self
                .inner
                .keys
                .iter()
                .filter(|key| key.verification_key.is_published(now))
                .filter_map(|key| key.public_jwk.clone())
                .collect(),
        }
    }

    /// A verifier that accepts tokens from every key while it is published (HMAC keys
    /// included, over the same window). The window is checked at each `verify(token, now)`,
    /// so one verifier follows the rotation schedule of this keyring.
    pub fn verifier(&self, settings: VerifierSettings) -> Verifier {
        let keys: HashMap<String, VerificationKey> = self
            .inner
            .keys
            .iter()
            .map(|key| (key.signer.kid().to_owned(), key.verification_key.clone()))
            .collect();
        Verifier::new(keys, settings)
    }
}

/// Signs access tokens and one-time operation tokens with one key. Cheap to clone.
#[derive(Clone)]
pub struct Signer {
    inner: Arc<SigningKey>,
}

struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    /// `typ` `at+jwt`.
    header: Header,
    /// `typ` `txntoken+jwt`.
    transaction_header: Header,
    encoding_key: EncodingKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Signer")
            .field("kid", &self.inner.kid)
            .field("algorithm", &self.inner.algorithm)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The key id written into every token's header.
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.algorithm
    }

    /// Signs `claims` as a compact JWS with header `{"typ":"at+jwt","alg":…,"kid":…}`.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, SignError> {
        if claims.aud.is_empty() {
            return Err(SignError::EmptyAudience);
        }
        jsonwebtoken::encode(&self.inner.header, claims, &self.inner.encoding_key)
            .map_err(SignError::Jose)
    }

    /// Signs `claims` as a one-time operation token: a compact JWS with header
    /// `{"typ":"txntoken+jwt","alg":…,"kid":…}`, which [`Verifier::verify`] refuses and
    /// [`Verifier::verify_transaction`] requires.
    pub fn sign_transaction(&self, claims: &TransactionClaims) -> Result<String, SignError> {
        if claims.aud.is_empty() {
            return Err(SignError::EmptyAudience);
        }
        if !is_one_operation(&claims.scope) {
            return Err(SignError::NotOneOperation);
        }
        jsonwebtoken::encode(
            &self.inner.transaction_header,
            claims,
            &self.inner.encoding_key,
        )
        .map_err(SignError::Jose)
    }
}

/// Signing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// `aud` names no audience; every verifier would reject the token.
    #[error("the token names no audience")]
    EmptyAudience,
    /// A one-time operation token's `scope` is not exactly one scope token (empty, several
    /// space-separated, or characters RFC 6749 §3.3 does not allow); every verifier would
    /// reject the token.
    #[error("the token's scope is not exactly one operation")]
    NotOneOperation,
    /// The JOSE library could not serialize or sign.
    #[error("signing the token failed")]
    Jose(#[source] jsonwebtoken::errors::Error),
}
