//! Signing keys, key rotation, JWKS publication and strict verification of Tessera's JWT
//! access tokens.
//!
//! The issuer keeps a [`Keyring`] of [`StoredKey`]s: a key is published in the JWKS from
//! `created_at`, signs from `activates_at`, stops signing at `retired_at`, and stays
//! published (and verifying) for `publish_after_retirement` longer, so rotation never
//! strands a valid token. Other services build a [`Verifier`] from the issuer's [`Jwks`]
//! and never fetch anything themselves.
//!
//! Verification follows RFC 8725 and RFC 9068 with its own checks around the JOSE library
//! (`jsonwebtoken` on `aws-lc-rs`), which is only asked to check signatures: library
//! defaults are not the specification. See [`Verifier::verify`] and [`VerifyError`].
//!
//! Layout:
//! - [`Algorithm`]: EdDSA, ES256, RS256, HS256 — one per key, never taken from a token.
//! - [`StoredKey`]: what a store persists; generation from the OS CSPRNG.
//! - [`Keyring`], [`Signer`]: the schedule — who signs now, what is published.
//! - [`Jwks`], [`Jwk`]: RFC 7517 documents, public members only.
//! - [`Verifier`], [`VerifierSettings`], [`VerifyError`]: strict verification.
//! - [`AccessClaims`], [`Audience`]: the claim set, typed strictly.
//! - [`danger`]: signature-only verification, for conformance vectors.
//!
//! # Quick start
//!
//! ```
//! use std::time::Duration;
//! use tessera_jose::{AccessClaims, Algorithm, Audience, Keyring, StoredKey, VerifierSettings};
//!
//! let now = 1_700_000_000;
//! let key = StoredKey::generate(Algorithm::EdDSA, now, now)?;
//! let keyring = Keyring::new(vec![key], Duration::from_secs(3600))?;
//! let signer = keyring.signer(now).ok_or("no active signing key")?;
//!
//! let claims = AccessClaims {
//!     iss: "https://auth.example".into(),
//!     sub: "user-1".into(),
//!     aud: Audience::One("api".into()),
//!     exp: now + 600,
//!     iat: now,
//!     nbf: None,
//!     auth_time: None,
//!     jti: "token-1".into(),
//!     sid: "session-1".into(),
//!     scope: None,
//!     roles: vec!["admin".into()],
//!     client_id: None,
//!     extra: Default::default(),
//! };
//! let token = signer.sign(&claims)?;
//!
//! // Another service needs only the published JWKS.
//! let settings = VerifierSettings::new("https://auth.example", vec!["api".into()]);
//! let verifier = tessera_jose::Verifier::from_jwks(&keyring.jwks(now), settings)?;
//! assert_eq!(verifier.verify(&token, now + 5)?, claims);
//! assert!(verifier.verify(&token, now + 601 + 30).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod algorithm;
mod claims;
pub mod danger;
mod jwk;
mod key;
mod keyring;
mod strict_json;
mod verifier;

pub use algorithm::{Algorithm, UnsupportedAlgorithm};
pub use claims::{AccessClaims, Audience};
pub use jwk::{Jwk, Jwks};
pub use key::{JwkProblem, KeyError, MINIMUM_HMAC_SECRET_BYTES, MINIMUM_RSA_BITS, StoredKey};
pub use keyring::{ACCESS_TOKEN_TYPE, Keyring, SignError, Signer, TRANSACTION_TOKEN_TYPE};
pub use verifier::{TokenPart, Verifier, VerifierSettings, VerifyError};
