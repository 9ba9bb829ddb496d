//! The engine's errors: what went wrong, in domain terms. The server maps each to an HTTP
//! status in one place.

use std::time::Duration;

use crate::engine::{ExchangeRejection, ServiceRejection};
use crate::id::RandomnessError;
use crate::password::{HashError, PasswordRejection};
use crate::store::StoreError;
use crate::user::{StandingRejection, UsernameRejection};

/// Why an engine operation did not succeed.
///
/// Deliberately not `#[non_exhaustive]`: the server maps every variant to an HTTP answer
/// with an exhaustive `match`, so a new variant is a compile error there rather than a
/// silent `500`. The workspace's crates are versioned together, so this costs no user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unknown user or wrong password; deliberately the same.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Too many failed logins for the account or the client address.
    #[error("too many failed login attempts")]
    RateLimited {
        /// How long until an attempt is allowed again.
        retry_after: Duration,
    },
    /// The username is registered already.
    #[error("the username is taken")]
    UsernameTaken,
    /// The username breaks the username rules.
    #[error(transparent)]
    InvalidUsername(#[from] UsernameRejection),
    /// A role or custom claim breaks the rules (see [`crate::Standing`]).
    #[error(transparent)]
    InvalidStanding(#[from] StandingRejection),
    /// The password breaks the password policy.
    #[error(transparent)]
    PasswordRejected(#[from] PasswordRejection),
    /// No valid credential: unknown, malformed or revoked session token.
    #[error("not authenticated")]
    Unauthenticated,
    /// A sensitive action (password change, account deletion, logging out sessions in
    /// bulk) needs the password proven more recently than the session's `auth_time`:
    /// re-authenticate, then retry. Nothing was changed.
    #[error("this action needs a recent authentication")]
    ReauthenticationRequired,
    /// The session reached its idle or absolute expiry.
    #[error("the session has expired")]
    SessionExpired,
    /// A refresh token that is unknown, expired, spent outside the grace window (the session
    /// is then revoked as stolen), or whose session has ended.
    #[error("the refresh token is invalid")]
    InvalidGrant,
    /// Unknown client or wrong client secret.
    #[error("client authentication failed")]
    InvalidClient,
    /// A client with that name exists already.
    #[error("a client with that name exists")]
    ClientNameTaken,
    /// No client has that name.
    #[error("no such client")]
    ClientNotFound,
    /// A service with that name or audience is registered already.
    #[error("a service with that name or audience exists")]
    ServiceTaken,
    /// No service has that name.
    #[error("no such service")]
    ServiceNotFound,
    /// A service registration breaks the rules.
    #[error(transparent)]
    InvalidService(#[from] ServiceRejection),
    /// A token exchange asked for something it may not have (RFC 8693 errors other than
    /// `invalid_grant`, which is [`Error::InvalidGrant`]). Nothing was issued.
    #[error(transparent)]
    Exchange(#[from] ExchangeRejection),
    /// No such session (or not the caller's).
    #[error("no such session")]
    SessionNotFound,
    /// No such user.
    #[error("no such user")]
    UserNotFound,
    /// Too many password checks in progress, or a change of a user's roles that kept losing
    /// races with other changes of them; retry shortly. Nothing was changed.
    #[error("the server is busy; retry shortly")]
    Busy,
    /// The store failed; the operation was not done.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Password hashing failed for a reason other than load.
    #[error("password hashing failed")]
    Hashing(#[source] HashError),
    /// No randomness for a new token.
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
}

impl From<HashError> for Error {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => Error::Busy,
            other => Error::Hashing(other),
        }
    }
}
