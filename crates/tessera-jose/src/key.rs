//! Signing keys as a store persists them, and their one-time parsing.

use std::fmt;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};

use crate::algorithm::Algorithm;
use crate::jwk::Jwk;

/// HMAC secrets shorter than the SHA-256 output are refused (RFC 7518 §3.2).
pub const MINIMUM_HMAC_SECRET_BYTES: usize = 32;

/// RSA keys shorter than this are refused at import (RFC 7518 §3.3); generated keys are 3072.
pub const MINIMUM_RSA_BITS: usize = 2048;

/// A signing key as a store persists it.
///
/// The lifecycle is four instants: published (`created_at`), signing (`activates_at`),
/// no longer signing (`retired_at`), and unpublished once `retired_at` plus the keyring's
/// `publish_after_retirement` has passed — by then every token it signed has expired.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Random, URL-safe, unique key id; tokens name their key with it.
    pub kid: String,
    /// The one algorithm this key signs and verifies with.
    pub algorithm: Algorithm,
    /// PKCS#8 DER private key, or the raw HMAC secret for [`Algorithm::HS256`].
    pub secret: Vec<u8>,
    /// Unix seconds: published in the JWKS from here on.
    pub created_at: i64,
    /// Unix seconds: may sign from here on; `>= created_at`, so verifiers learn the key
    /// before the first token signed with it reaches them.
    pub activates_at: i64,
    /// Unix seconds: stops signing from here on (set when a successor activates).
    pub retired_at: Option<i64>,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

impl StoredKey {
    /// Generates a fresh key from the operating system's CSPRNG: an Ed25519, P-256 or
    /// RSA-3072 key pair, or a 256-bit secret for [`Algorithm::HS256`].
    pub fn generate(
        algorithm: Algorithm,
        created_at: i64,
        activates_at: i64,
    ) -> Result<StoredKey, KeyError> {
        let random = SystemRandom::new();
        let generation_failed = |_| KeyError::Generation { algorithm };
        let secret = match algorithm {
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&random)
                .map_err(generation_failed)?
                .as_ref()
                .to_vec(),
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random)
                    .map_err(generation_failed)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::RS256 => aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa3072)
                .and_then(|key_pair| key_pair.as_der())
                .map_err(generation_failed)?
                .as_ref()
                .to_vec(),
            Algorithm::HS256 => random_bytes::<MINIMUM_HMAC_SECRET_BYTES>()?.to_vec(),
        };
        Ok(StoredKey {
            kid: new_kid()?,
            algorithm,
            secret,
            created_at,
            activates_at,
            retired_at: None,
        })
    }

    /// Wraps an existing HMAC secret, active from `created_at`. Refuses secrets shorter than
    /// 32 bytes ([`KeyError::WeakSecret`]); the secret must come from a CSPRNG, never a password.
    pub fn hmac(secret: Vec<u8>, created_at: i64) -> Result<StoredKey, KeyError> {
        if secret.len() < MINIMUM_HMAC_SECRET_BYTES {
            return Err(KeyError::WeakSecret {
                length: secret.len(),
            });
        }
        Ok(StoredKey {
            kid: new_kid()?,
            algorithm: Algorithm::HS256,
            secret,
            created_at,
            activates_at: created_at,
            retired_at: None,
        })
    }
}

/// 128 random bits as 22 base64url characters.
fn new_kid() -> Result<String, KeyError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<16>()?))
}

fn random_bytes<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KeyError::Randomness)?;
    Ok(bytes)
}

/// A key that cannot be generated, imported or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The HMAC secret is shorter than [`MINIMUM_HMAC_SECRET_BYTES`].
    #[error("HMAC secret of {length} bytes is too short; at least 32 random bytes are required")]
    WeakSecret {
        /// The length given.
        length: usize,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Randomness,
    /// Key generation failed inside the crypto library.
    #[error("generating an {algorithm} key failed")]
    Generation {
        /// The algorithm asked for.
        algorithm: Algorithm,
    },
    /// A stored private key does not parse as PKCS#8 for its algorithm.
    #[error("stored key {kid} is not a valid {algorithm} private key")]
    InvalidPrivateKey {
        /// The key's id.
        kid: String,
        /// Its declared algorithm.
        algorithm: Algorithm,
        /// What the crypto library rejected.
        #[source]
        source: aws_lc_rs::error::KeyRejected,
    },
    /// A stored RSA key is shorter than [`MINIMUM_RSA_BITS`].
    #[error("stored RSA key {kid} has {bits} bits; at least 2048 are required")]
    RsaKeyTooSmall {
        /// The key's id.
        kid: String,
        /// Its modulus size.
        bits: usize,
    },
    /// The key could not be handed to the JOSE library.
    #[error("stored key {kid} could not be loaded for signing")]
    Unloadable {
        /// The key's id.
        kid: String,
        /// The JOSE library's error.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// A `kid` is empty, longer than 128 bytes, or not URL-safe (`[A-Za-z0-9_-]`).
    #[error("key id is empty, too long or not URL-safe")]
    InvalidKid,
    /// A JWK has no `kid`, so no token could name it.
    #[error("a JWK has no kid")]
    MissingKid,
    /// Two keys share a `kid`.
    #[error("key id {kid} is used twice")]
    DuplicateKid {
        /// The repeated id.
        kid: String,
    },
    /// A key would sign before it is published.
    #[error("key {kid} activates before it is published (activates_at < created_at)")]
    ActivatesBeforeCreated {
        /// The key's id.
        kid: String,
    },
    /// A JWKS document is not strict JSON of the right shape.
    #[error("JWKS document is not valid JSON with unique member names")]
    JwksJson(#[source] serde_json::Error),
    /// A JWK cannot be imported as a verification key.
    #[error("JWK {kid} cannot be used: {problem}")]
    InvalidJwk {
        /// The key's id.
        kid: String,
        /// What is wrong with it.
        #[source]
        problem: JwkProblem,
    },
}

/// Why an imported JWK is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwkProblem {
    /// It carries private or symmetric key material (`d`, `p`, `q`, `k`, …).
    #[error("it carries the private member `{member}`")]
    PrivateMember {
        /// The member found.
        member: &'static str,
    },
    /// `use` is not `sig`, or `key_ops` lacks `verify`.
    #[error("it is not meant for verifying signatures")]
    NotForSignatures,
    /// `alg` is absent; a key must be bound to exactly one algorithm.
    #[error("it has no alg")]
    MissingAlgorithm,
    /// `alg` is not EdDSA, ES256 or RS256.
    #[error("its alg is not supported")]
    UnsupportedAlgorithm,
    /// `alg` does not match `kty`/`crv` (for example ES256 on a P-384 or RSA key).
    #[error("its alg does not fit its key type or curve")]
    AlgorithmDoesNotFitKey,
    /// A required member is missing.
    #[error("member `{member}` is missing")]
    MissingMember {
        /// The member's name.
        member: &'static str,
    },
    /// A member is not canonical unpadded base64url.
    #[error("member `{member}` is not canonical base64url")]
    Encoding {
        /// The member's name.
        member: &'static str,
        /// The decoder's error.
        #[source]
        source: base64::DecodeError,
    },
    /// The RSA modulus is outside 2048–8192 bits.
    #[error("RSA modulus of {bits} bits is outside 2048..=8192")]
    RsaModulusSize {
        /// The modulus size.
        bits: usize,
    },
    /// The key bytes are not a valid public key (wrong length, point off the curve, bad
    /// exponent).
    #[error("it is not a valid public key")]
    InvalidPublicKey,
}

/// A stored key parsed once: what signing and verifying need, and its public JWK.
pub(crate) struct ParsedKey {
    pub(crate) encoding_key: EncodingKey,
    pub(crate) decoding_key: DecodingKey,
    /// `None` for HMAC: a shared secret is never published.
    pub(crate) public_jwk: Option<Jwk>,
}

impl StoredKey {
    pub(crate) fn parse(&self) -> Result<ParsedKey, KeyError> {
        let kid = &self.kid;
        let valid_kid = !kid.is_empty()
            && kid.len() <= 128
            && kid
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if !valid_kid {
            return Err(KeyError::InvalidKid);
        }
        if self.activates_at < self.created_at {
            return Err(KeyError::ActivatesBeforeCreated { kid: kid.clone() });
        }
        let rejected = |source| KeyError::InvalidPrivateKey {
            kid: kid.clone(),
            algorithm: self.algorithm,
            source,
        };
        let (encoding_key, public_jwk) = match self.algorithm {
            Algorithm::EdDSA => {
                let key_pair = Ed25519KeyPair::from_pkcs8(&self.secret).map_err(rejected)?;
                let jwk = Jwk::okp(kid, key_pair.public_key().as_ref());
                (EncodingKey::from_ed_der(&self.secret), jwk)
            }
            Algorithm::ES256 => {
                let key_pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.secret)
                        .map_err(rejected)?;
                let jwk = Jwk::ec(kid, key_pair.public_key().as_ref()).ok_or_else(|| {
                    KeyError::InvalidJwk {
                        kid: kid.clone(),
                        problem: JwkProblem::InvalidPublicKey,
                    }
                })?;
                (EncodingKey::from_ec_der(&self.secret), jwk)
            }
            Algorithm::RS256 => {
                let key_pair = RsaKeyPair::from_pkcs8(&self.secret).map_err(rejected)?;
                let bits = key_pair.public_modulus_len() * 8;
                if bits < MINIMUM_RSA_BITS {
                    return Err(KeyError::RsaKeyTooSmall {
                        kid: kid.clone(),
                        bits,
                    });
                }
                let public_key = key_pair.public_key();
                let jwk = Jwk::rsa(
                    kid,
                    public_key.modulus().big_endian_without_leading_zero(),
                    public_key.exponent().big_endian_without_leading_zero(),
                );
                // jsonwebtoken's RSA signer wants PKCS#1; its PEM reader unwraps PKCS#8.
                let pem = pkcs8_pem(&self.secret);
                let encoding_key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|source| {
                    KeyError::Unloadable {
                        kid: kid.clone(),
                        source,
                    }
                })?;
                (encoding_key, jwk)
            }
            Algorithm::HS256 => {
                if self.secret.len() < MINIMUM_HMAC_SECRET_BYTES {
                    return Err(KeyError::WeakSecret {
                        length: self.secret.len(),
                    });
                }
                return Ok(ParsedKey {
                    encoding_key: EncodingKey::from_secret(&self.secret),
                    decoding_key: DecodingKey::from_secret(&self.secret),
                    public_jwk: None,
                });
            }
        };
        let (_, decoding_key) =
            public_jwk
                .to_decoding_key()
                .map_err(|problem| KeyError::InvalidJwk {
                    kid: kid.clone(),
                    problem,
                })?;
        Ok(ParsedKey {
            encoding_key,
            decoding_key,
            public_jwk: Some(public_jwk),
        })
    }
}

/// PEM armour (RFC 7468) around a PKCS#8 DER private key.
fn pkcs8_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::with_capacity(body.len() + body.len() / 64 + 64);
    pem.push_str("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret() {
        let key = StoredKey::hmac(vec![0xAB; 32], 0).unwrap();
        let debug = format!("{key:?}");
        assert!(
            debug.contains("<redacted>") && !debug.contains("171"),
            "{debug}"
        );
    }

    #[test]
    fn hmac_refuses_short_secrets() {
        assert!(matches!(
            StoredKey::hmac(vec![1; 31], 0),
            Err(KeyError::WeakSecret { length: 31 })
        ));
        assert!(StoredKey::hmac(vec![1; 32], 0).is_ok());
    }

    #[test]
    fn generated_keys_parse_with_unique_url_safe_kids() {
        let mut kids = std::collections::HashSet::new();
        for algorithm in Algorithm::ALL {
            let key = StoredKey::generate(algorithm, 10, 20).unwrap();
            assert_eq!(
                (key.created_at, key.activates_at, key.retired_at),
                (10, 20, None)
            );
            assert_eq!(key.kid.len(), 22);
            assert!(kids.insert(key.kid.clone()));
            let parsed = key.parse().unwrap();
            assert_eq!(parsed.public_jwk.is_some(), !algorithm.is_symmetric());
        }
    }

    #[test]
    fn parse_refuses_bad_kids_dates_and_mismatched_material() {
        let mut key = StoredKey::generate(Algorithm::EdDSA, 10, 10).unwrap();
        key.kid = "../../dev/null".to_owned();
        assert!(matches!(key.parse(), Err(KeyError::InvalidKid)));
        key.kid = "ok".to_owned();
        key.activates_at = 9;
        assert!(matches!(
            key.parse(),
            Err(KeyError::ActivatesBeforeCreated { .. })
        ));
        key.activates_at = 10;
        key.algorithm = Algorithm::ES256;
        assert!(matches!(
            key.parse(),
            Err(KeyError::InvalidPrivateKey { .. })
        ));
    }
}
