//! Why issuing or checking a token failed.

use tessera_core::{RandomnessError, StoreError};

/// Why the token machinery could not start or act.
///
/// Not `#[non_exhaustive]`, like [`tessera_core::Error`]: the server's error mapping matches
/// every variant, so a new one is a compile error there.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key store failed.
    #[error("the key store is unavailable")]
    Store(#[from] StoreError),
    /// A key could not be generated or parsed.
    #[error("invalid signing key")]
    Key(#[from] tessera_jose::KeyError),
    /// HS256 keys come from configuration: rotate by changing the configured secret.
    #[error("an HS256 key is configured, not generated; change token.hs256_secret to rotate it")]
    SymmetricRotation,
    /// No key may sign right now (only during a misconfigured rotation).
    #[error("no signing key is active")]
    NoSigningKey,
    /// Signing failed.
    #[error("signing failed")]
    Sign(#[from] tessera_jose::SignError),
    /// The operating system's random number generator failed.
    #[error("no randomness available")]
    Randomness(#[from] RandomnessError),
}

/// Why an operation that issues tokens over the engine failed: the engine refused (an
/// invalid grant, a store outage…) or the tokens could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The engine's answer.
    #[error(transparent)]
    Engine(#[from] tessera_core::Error),
    /// Signing failed.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Why a bearer access token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Signature, header or claims failed verification.
    #[error("the access token is invalid or expired")]
    Invalid(#[source] tessera_jose::VerifyError),
    /// The `sid` claim is not a session id.
    #[error("the access token names no session")]
    NoSession,
    /// The session belongs to another user than `sub`.
    #[error("the access token does not match its session")]
    SubjectMismatch,
    /// Issued before a change of its user's standing (roles, claims, disabled, password):
    /// its claims may be out of date. A refresh gets a fresh one.
    #[error("the access token is stale")]
    Stale,
    /// The session is revoked, expired, or could not be checked.
    #[error(transparent)]
    Engine(#[from] tessera_core::Error),
}
