//! The four JWS algorithms Tessera signs with.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A JWS signature algorithm, named exactly as in RFC 7518 / RFC 8037.
///
/// Each key is bound to exactly one algorithm (RFC 8725 §3.1): a verifier never takes the
/// algorithm from the token, it only checks that the token's `alg` matches its key's.
// The variant names are the registered JOSE names, spelled the way every reader knows them.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519 signatures (RFC 8037). The default.
    EdDSA,
    /// ECDSA on P-256 with SHA-256; signatures are the 64-byte `r || s`.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// HMAC with SHA-256: one shared secret, for a single-service setup only.
    HS256,
}

impl Algorithm {
    /// Every algorithm, in the order of preference.
    pub const ALL: [Algorithm; 4] = [Self::EdDSA, Self::ES256, Self::RS256, Self::HS256];

    /// The registered JOSE name: `"EdDSA"`, `"ES256"`, `"RS256"` or `"HS256"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::HS256 => "HS256",
        }
    }

    /// True for HMAC: the key is a shared secret and is never published.
    pub const fn is_symmetric(self) -> bool {
        matches!(self, Self::HS256)
    }

    pub(crate) const fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::HS256 => jsonwebtoken::Algorithm::HS256,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A string that is not exactly one of the four supported JOSE algorithm names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unsupported JWS algorithm")]
pub struct UnsupportedAlgorithm;

impl FromStr for Algorithm {
    type Err = UnsupportedAlgorithm;

    /// Exact, case-sensitive match (RFC 8725 §3.1): `"none"`, `"hs256"` and `"EdDSA "` are errors.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str() == name)
            .ok_or(UnsupportedAlgorithm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_case_sensitively() {
        for algorithm in Algorithm::ALL {
            assert_eq!(algorithm.as_str().parse::<Algorithm>(), Ok(algorithm));
        }
        for name in ["none", "eddsa", "es256", "HS256 ", "Ed25519", "RS384", ""] {
            assert_eq!(
                name.parse::<Algorithm>(),
                Err(UnsupportedAlgorithm),
                "{name}"
            );
        }
        assert!(Algorithm::HS256.is_symmetric());
        assert!(!Algorithm::EdDSA.is_symmetric());
    }
}
