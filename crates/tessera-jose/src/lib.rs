//! Signing keys, key rotation, JWKS publication and strict verification of Tessera's JWT
//! access tokens and one-time operation tokens.
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
//! - [`TransactionClaims`], [`RequestContext`]: one-time operation tokens (`typ`
//!   `txntoken+jwt`, after the IETF Transaction Tokens draft), signed by
//!   [`Signer::sign_transaction`] and accepted only by [`Verifier::verify_transaction`] or
//!   [`Verifier::verify_any`] — never by [`Verifier::verify`].
//! - [`Actor`]: the RFC 8693 `act` delegation chain, depth-bounded.
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
//!
//! # One-time operation tokens
//!
//! A token for one operation at one service, seconds long, carries `typ` `txntoken+jwt`, so
//! a verifier that only calls [`Verifier::verify`] refuses it; the service that accepts it
//! must record its `jti` until it expires and refuse it the second time.
//!
//! ```
//! # use std::time::Duration;
//! # use tessera_jose::{Algorithm, Keyring, StoredKey, VerifierSettings, VerifyError};
//! use tessera_jose::{Actor, TransactionClaims};
//! # let now = 1_700_000_000;
//! # let keyring = Keyring::new(vec![StoredKey::generate(Algorithm::EdDSA, now, now)?], Duration::from_secs(3600))?;
//! # let signer = keyring.signer(now).ok_or("no active signing key")?;
//! let claims = TransactionClaims {
//!     iss: "https://auth.example".into(),
//!     sub: "user-1".into(),
//!     aud: "billing".into(),
//!     exp: now + 30,
//!     iat: now,
//!     nbf: None,
//!     jti: "txn-1".into(),
//!     txn: Some("txn-1".into()),
//!     sid: "session-1".into(),
//!     scope: "refund".into(),
//!     auth_time: None,
//!     roles: vec![],
//!     act: Some(Actor::new("cart")),
//!     rctx: None,
//!     extra: Default::default(),
//! };
//! let token = signer.sign_transaction(&claims)?;
//!
//! let settings = VerifierSettings::new("https://auth.example", vec!["billing".into()]);
//! let verifier = tessera_jose::Verifier::from_jwks(&keyring.jwks(now), settings)?;
//! assert_eq!(verifier.verify_transaction(&token, now)?, claims);
//! assert!(matches!(verifier.verify(&token, now), Err(VerifyError::WrongType)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod actor;
mod algorithm;
mod claims;
pub mod danger;
mod jwk;
mod key;
mod keyring;
mod strict_json;
mod transaction;
mod verifier;

pub use actor::Actor;
pub use algorithm::{Algorithm, UnsupportedAlgorithm};
pub use claims::{AccessClaims, Audience};
pub use jwk::{Jwk, Jwks};
pub use key::{JwkProblem, KeyError, MINIMUM_HMAC_SECRET_BYTES, MINIMUM_RSA_BITS, StoredKey};
pub use keyring::{ACCESS_TOKEN_TYPE, Keyring, SignError, Signer};
pub use transaction::{RequestContext, TRANSACTION_TOKEN_TYPE, TransactionClaims};
pub use verifier::{TokenPart, VerifiedToken, Verifier, VerifierSettings, VerifyError};
