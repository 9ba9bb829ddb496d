//! What an operator can set about access tokens and their keys.

use std::fmt;
use std::time::Duration;

use tessera_jose::{Algorithm, VerifierSettings};

/// Settings of the token machinery. Lifetimes of the credentials themselves live in the
/// engine's [`TokenPolicy`](tessera_core::TokenPolicy); these are about signing and checking.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss` of every token, and the only issuer accepted. No default: every deployment
    /// names its own.
    pub issuer: String,
    /// `aud` of every token, and what this server accepts. Defaults to `["tessera"]`.
    pub audience: Vec<String>,
    /// The signing algorithm. Defaults to `EdDSA`.
    pub algorithm: Algorithm,
    /// The HS256 key, required with [`Algorithm::HS256`] and ignored otherwise. Defaults to
    /// unset.
    pub hs256_secret: Option<Hs256Secret>,
    /// Clock-skew allowance when checking `exp`, `nbf` and `iat`. Defaults to `30s`.
    pub leeway: Duration,
    /// A rotated-in key is published this long before it signs, so verifiers that cache the
    /// JWKS learn it first. Defaults to `5m`.
    pub key_publish_lead: Duration,
    /// A signing key older than this is rotated out by [`Tokens::rotate_if_due`]; zero turns
    /// the schedule off. Defaults to `30d`.
    ///
    /// [`Tokens::rotate_if_due`]: crate::Tokens::rotate_if_due
    pub key_rotation: Duration,
}

impl TokenSettings {
    /// The defaults, for tokens issued as `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        TokenSettings {
            issuer: issuer.into(),
            audience: vec![DEFAULT_AUDIENCE.to_owned()],
            algorithm: DEFAULT_ALGORITHM,
            hs256_secret: None,
            leeway: DEFAULT_LEEWAY,
            key_publish_lead: DEFAULT_KEY_PUBLISH_LEAD,
            key_rotation: DEFAULT_KEY_ROTATION,
        }
    }
}

/// The default `aud`.
pub const DEFAULT_AUDIENCE: &str = "tessera";
/// The default signing algorithm.
pub const DEFAULT_ALGORITHM: Algorithm = Algorithm::EdDSA;
/// The default clock-skew allowance (the verifier's own default).
pub const DEFAULT_LEEWAY: Duration = VerifierSettings::DEFAULT_LEEWAY;
/// The default time a new key is published before it signs.
pub const DEFAULT_KEY_PUBLISH_LEAD: Duration = Duration::from_secs(5 * 60);
/// The default age at which a signing key is rotated out.
pub const DEFAULT_KEY_ROTATION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// An HS256 key; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Hs256Secret(Vec<u8>);

impl Hs256Secret {
    /// Wraps the key bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Hs256Secret(secret.into())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Hs256Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hs256Secret(<redacted>)")
    }
}
