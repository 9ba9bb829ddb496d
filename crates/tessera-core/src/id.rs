//! Identifiers and secrets, parsed once at the edge so the rest of the code can trust them.
//!
//! Public identifiers ([`UserId`], [`SessionId`]) are 128 random bits; the secret
//! [`SessionToken`] is 256 random bits from the operating system's CSPRNG and is never stored:
//! stores keep only its [`TokenHash`]. All three travel as unpadded base64url.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The operating system could not supply random bytes.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomnessError(#[source] getrandom::Error);

impl From<getrandom::Error> for RandomnessError {
    fn from(error: getrandom::Error) -> Self {
        RandomnessError(error)
    }
}

/// A string that is not a well-formed identifier or token of the expected kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed {kind}")]
pub struct MalformedId {
    kind: &'static str,
}

fn random<const N: usize>() -> Result<[u8; N], RandomnessError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(RandomnessError)?;
    Ok(bytes)
}

/// Decodes exactly `N` bytes of canonical unpadded base64url, without allocating.
fn decode_exact<const N: usize>(text: &str, kind: &'static str) -> Result<[u8; N], MalformedId> {
    let malformed = MalformedId { kind };
    // Reject early on length so oversized input costs nothing; the decoder itself rejects
    // padding, foreign characters and non-canonical trailing bits.
    if text.len() != base64::encoded_len(N, false).unwrap_or(0) {
        return Err(malformed);
    }
    let mut out = [0u8; N];
    match URL_SAFE_NO_PAD.decode_slice(text.as_bytes(), &mut out) {
        Ok(written) if written == N => Ok(out),
        _ => Err(malformed),
    }
}

macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// A fresh identifier of 128 random bits.
            pub fn generate() -> Result<Self, RandomnessError> {
                Ok($name(URL_SAFE_NO_PAD.encode(random::<16>()?)))
            }

            /// Parses the 22-character base64url form.
            pub fn parse(text: &str) -> Result<Self, MalformedId> {
                decode_exact::<16>(text, $kind)?;
                Ok($name(text.to_owned()))
            }

            /// The base64url form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

public_id!(
    /// A user's public identifier.
    UserId,
    "user id"
);

public_id!(
    /// A session's public identifier: safe to show, log, list and put in a JWT's `sid`.
    /// Knowing it grants nothing; the [`SessionToken`] is the credential.
    SessionId,
    "session id"
);

public_id!(
    /// An access token's `jti`: unique per token, safe to log.
    TokenId,
    "token id"
);

public_id!(
    /// A registered API client's public id.
    ClientId,
    "client id"
);

/// The secret a client presents to prove it holds a session: 256 bits from the OS CSPRNG.
///
/// Its `Debug` output is redacted. Only [`TokenHash`] of it is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken([u8; 32]);

impl SessionToken {
    /// Length of the encoded form, in bytes.
    pub const ENCODED_LEN: usize = 43;

    /// A fresh token.
    pub fn generate() -> Result<Self, RandomnessError> {
        Ok(SessionToken(random::<32>()?))
    }

    /// Parses the 43-character base64url form; anything else is malformed and never reaches a
    /// store.
    pub fn parse(text: &str) -> Result<Self, MalformedId> {
        decode_exact::<32>(text, "session token").map(SessionToken)
    }

    /// The encoded form, for the cookie or the response that hands it to the client.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The SHA-256 of the token, under which stores keep the session.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }

    /// The CSRF token bound to this session: HMAC-SHA256 keyed by the session secret.
    ///
    /// Deriving it means nothing extra is stored, it changes whenever the session does, and
    /// knowing it reveals nothing about the session token.
    pub fn csrf_token(&self) -> CsrfToken {
        CsrfToken(self.csrf_mac())
    }

    /// Whether `presented` is this session's CSRF token, compared in constant time.
    pub fn verify_csrf(&self, presented: &str) -> bool {
        match decode_exact::<32>(presented, "csrf token") {
            Ok(bytes) => bool::from(bytes.ct_eq(&self.csrf_mac())),
            Err(_) => false,
        }
    }

    fn csrf_mac(&self) -> [u8; 32] {
        // HMAC accepts keys of any length, so construction cannot fail for a 32-byte key;
        // the fallback keeps this panic-free and still yields a value no client can present.
        match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mut mac) => {
                mac.update(b"tessera/csrf/v1");
                mac.finalize().into_bytes().into()
            }
            Err(_) => random::<32>().unwrap_or([0xff; 32]),
        }
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// The opaque refresh token of a token-transport session: 256 bits, stored only hashed,
/// spent on use. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken([u8; 32]);

impl RefreshToken {
    /// A fresh token from the OS CSPRNG.
    pub fn generate() -> Result<Self, RandomnessError> {
        Ok(RefreshToken(random::<32>()?))
    }

    /// Parses the 43-character base64url form.
    pub fn parse(text: &str) -> Result<Self, MalformedId> {
        decode_exact::<32>(text, "refresh token").map(RefreshToken)
    }

    /// The encoded form handed to the client.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The SHA-256 under which the store keeps it.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }

    /// The token that replaces this one at rotation: HMAC-SHA256 of this token under the
    /// server's rotation key. Deriving it, rather than drawing it at random, lets a retry
    /// inside the grace window receive the very same successor without the store ever
    /// holding a usable token; without the server key nobody can compute it.
    pub fn successor(&self, rotation_key: &[u8]) -> RefreshToken {
        match Hmac::<Sha256>::new_from_slice(rotation_key) {
            Ok(mut mac) => {
                mac.update(b"tessera/refresh/successor/v1");
                mac.update(&self.0);
                RefreshToken(mac.finalize().into_bytes().into())
            }
            // HMAC takes keys of any length; unreachable, and a random token (which no
            // replay can reproduce) is the safe answer if it ever were.
            Err(_) => RefreshToken(random::<32>().unwrap_or([0x5a; 32])),
        }
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// SHA-256 of a [`SessionToken`]: the key stores look sessions up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Wraps 32 bytes read back from a store.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        TokenHash(bytes)
    }

    /// The raw digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not a credential, but a short prefix is all a log reader needs.
        write!(
            f,
            "TokenHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A session-bound anti-CSRF token, sent back by the client in `X-CSRF-Token`.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfToken([u8; 32]);

impl CsrfToken {
    /// The encoded form handed to the client.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The encoded form, on the stack: for responses built on the hot path.
    pub fn encoded(&self) -> EncodedToken {
        let mut text = [0u8; SessionToken::ENCODED_LEN];
        // 32 bytes always encode to exactly 43 characters, which is the buffer's size.
        let written = URL_SAFE_NO_PAD.encode_slice(self.0, &mut text).unwrap_or(0);
        debug_assert_eq!(written, SessionToken::ENCODED_LEN);
        EncodedToken(text)
    }
}

/// A 256-bit token's 43-character base64url form, held on the stack. `Debug` is redacted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncodedToken([u8; SessionToken::ENCODED_LEN]);

impl EncodedToken {
    /// The text.
    pub fn as_str(&self) -> &str {
        // base64url output is ASCII, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for EncodedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncodedToken(<redacted>)")
    }
}

impl fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn tokens_are_unique_256_bit_base64url() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let token = SessionToken::generate().unwrap();
            let text = token.encode();
            assert_eq!(text.len(), SessionToken::ENCODED_LEN);
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(SessionToken::parse(&text).unwrap(), token);
            assert!(seen.insert(text));
        }
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = SessionToken::generate().unwrap().encode();
        let mut padded = good.clone();
        padded.push('=');
        let mut foreign = good.clone();
        foreign.replace_range(0..1, "+");
        let oversized = "A".repeat(10_000);
        for bad in [
            "",
            &good[..42],
            &padded,
            &foreign,
            &oversized,
            "ééééééééééééééééééééééééééééééééééééééééééé",
        ] {
            assert!(SessionToken::parse(bad).is_err(), "accepted {bad:?}");
        }
        // 43 characters carry 258 bits for 256: the spare low bits of the last one must be
        // clear, or two spellings would name one token.
        assert!(SessionToken::parse(&"A".repeat(43)).is_ok());
        assert!(SessionToken::parse(&format!("{}B", "A".repeat(42))).is_err());
    }

    #[test]
    fn ids_round_trip_and_refuse_junk() {
        let id = SessionId::generate().unwrap();
        assert_eq!(id.as_str().len(), 22);
        assert_eq!(SessionId::parse(id.as_str()).unwrap(), id);
        assert!(SessionId::parse("not-an-id").is_err());
        assert!(UserId::parse(&"x".repeat(23)).is_err());
        assert!(UserId::parse("../../etc/passwd/aaaaa").is_err());
    }

    #[test]
    fn csrf_token_is_bound_to_its_session() {
        let first = SessionToken::generate().unwrap();
        let second = SessionToken::generate().unwrap();
        let csrf = first.csrf_token().encode();
        assert!(first.verify_csrf(&csrf));
        assert!(!second.verify_csrf(&csrf));
        assert!(!first.verify_csrf(""));
        assert!(!first.verify_csrf(&first.encode()));
        assert_eq!(first.csrf_token(), first.csrf_token());
        assert_eq!(first.csrf_token().encoded().as_str(), csrf);
    }

    #[test]
    fn refresh_successors_are_deterministic_and_keyed() {
        let token = RefreshToken::generate().unwrap();
        let key = [7u8; 32];
        let next = token.successor(&key);
        assert_eq!(next, token.successor(&key));
        assert_ne!(next, token);
        assert_ne!(next, token.successor(&[8u8; 32]));
        assert_eq!(RefreshToken::parse(&next.encode()).unwrap(), next);
        assert_ne!(next.hash(), token.hash());
        assert!(!format!("{next:?}").contains(&next.encode()));
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let token = SessionToken::generate().unwrap();
        let debug = format!("{token:?} {:?}", token.csrf_token());
        assert!(!debug.contains(&token.encode()));
        assert!(!debug.contains(&token.csrf_token().encode()));
    }
}
