//! Checks that stop short of a full access-token verification. Review every use.

use crate::verifier::{TypeCheck, Verifier, VerifyError};

/// Runs every check of [`Verifier::verify`] up to and including the signature — size,
/// segments, base64url, strict header, `kid`, `alg`, signature — but not the `typ` check and
/// none of the claim checks, and returns the payload bytes unread.
///
/// For JWS conformance vectors (whose payloads are not access tokens) and diagnostics only:
/// the payload has not been checked for expiry, issuer or audience.
pub fn verify_signature_only(
    verifier: &Verifier,
    token: &str,
    now: i64,
) -> Result<Vec<u8>, VerifyError> {
    verifier
        .verify_signature(token, now, TypeCheck::Skip)
        .map(|(payload, _)| payload)
}
