//! Identifiers and secrets, parsed once at the edge so the rest of the code can trust them.
//!
//! Public identifiers ([`UserId`], [`SessionId`]) are 128 random bits. A [`SessionToken`] is
//! a session's id followed by 256 secret bits from the operating system's CSPRNG; stores keep
//! only a [`SessionVerifier`] of the secret. Other secrets ([`Secret`], [`RefreshToken`]) are
//! stored as their [`TokenHash`]. All travel as unpadded base64url.

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

/// Length of a public identifier's text: 16 bytes in unpadded base64url.
const ID_TEXT_LEN: usize = 22;

macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        ///
        /// Held as its 22 ASCII characters inline, so creating and cloning one never
        /// allocates: ids are built and copied on every request (a session check alone reads
        /// a session id and a user id out of the store).
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; ID_TEXT_LEN]);

        impl $name {
            /// A fresh identifier of 128 random bits.
            pub fn generate() -> Result<Self, RandomnessError> {
                Ok($name::from_bytes(&random::<16>()?))
            }

            /// Parses the 22-character base64url form.
            pub fn parse(text: &str) -> Result<Self, MalformedId> {
                decode_exact::<16>(text, $kind)?;
                let mut inline = [0; ID_TEXT_LEN];
                inline.copy_from_slice(text.as_bytes());
                Ok($name(inline))
            }

            /// The base64url form.
            pub fn as_str(&self) -> &str {
                // Always base64url, so always ASCII: the fallback is never taken.
                std::str::from_utf8(&self.0).unwrap_or_default()
            }

            /// The identifier with these 16 bytes.
            pub fn from_bytes(bytes: &[u8; 16]) -> Self {
                let mut inline = [0; ID_TEXT_LEN];
                // 16 bytes encode to exactly 22 characters, so this always fills `inline`.
                let _ = URL_SAFE_NO_PAD.encode_slice(bytes, &mut inline);
                $name(inline)
            }

            /// The 16 bytes it encodes (for stores that keep binary keys).
            pub fn to_bytes(&self) -> [u8; 16] {
                // Every value was parsed or generated as exactly 16 bytes, so this decodes.
                decode_exact::<16>(self.as_str(), $kind).unwrap_or_default()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.as_str())
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

/// A 256-bit secret from the OS CSPRNG, stored only as its [`TokenHash`]: API client
/// secrets and the pre-session secret of the login forms. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl Secret {
    /// Length of the encoded form, in bytes.
    pub const ENCODED_LEN: usize = 43;

    /// A fresh secret.
    pub fn generate() -> Result<Self, RandomnessError> {
        Ok(Secret(random::<32>()?))
    }

    /// Parses the 43-character base64url form.
    pub fn parse(text: &str) -> Result<Self, MalformedId> {
        decode_exact::<32>(text, "secret").map(Secret)
    }

    /// The encoded form handed to the client.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The SHA-256 under which it is stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }

    /// The CSRF token bound to this secret (see [`SessionToken::csrf_token`]).
    pub fn csrf_token(&self) -> CsrfToken {
        CsrfToken(csrf_mac(&self.0))
    }

    /// Whether `presented` is this secret's CSRF token, compared in constant time.
    pub fn verify_csrf(&self, presented: &str) -> bool {
        verify_csrf(&self.0, presented)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The credential a client presents to prove it holds a session: a split token, the
/// session's public id (its selector, 128 bits) followed by a secret of 256 bits from the
/// OS CSPRNG (its verifier).
///
/// A store finds the session by the id and keeps only a [`SessionVerifier`] of the secret;
/// the engine compares verifiers in constant time. Carrying the id means a store needs one
/// key per session (the id), not a second index by hash. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken {
    id: [u8; 16],
    secret: [u8; 32],
}

impl SessionToken {
    /// Length of the encoded form, in bytes: 48 bytes in base64url.
    pub const ENCODED_LEN: usize = 64;

    /// A fresh token for a new session with a fresh id.
    pub fn generate() -> Result<Self, RandomnessError> {
        Ok(SessionToken {
            id: random::<16>()?,
            secret: random::<32>()?,
        })
    }

    /// Parses the 64-character base64url form; anything else is malformed and never reaches a
    /// store.
    pub fn parse(text: &str) -> Result<Self, MalformedId> {
        let bytes = decode_exact::<48>(text, "session token")?;
        let (id, secret) = bytes.split_at(16);
        Ok(SessionToken {
            id: id.try_into().map_err(|_| MalformedId {
                kind: "session token",
            })?,
            secret: secret.try_into().map_err(|_| MalformedId {
                kind: "session token",
            })?,
        })
    }

    /// The encoded form, for the cookie or the response that hands it to the client.
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; 48];
        bytes[..16].copy_from_slice(&self.id);
        bytes[16..].copy_from_slice(&self.secret);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The public id of the session this token opens.
    pub fn session_id(&self) -> SessionId {
        SessionId::from_bytes(&self.id)
    }

    /// What the store keeps to check the secret: the first 128 bits of its SHA-256.
    ///
    /// 128 bits are as hard to invert as a 128-bit key: someone who reads the store still
    /// cannot make a token that passes. Half the bytes of a full digest matter when every
    /// session is one Redis value (`docs/operations.md`, sizing).
    pub fn verifier(&self) -> SessionVerifier {
        let digest: [u8; 32] = Sha256::digest(self.secret).into();
        let mut verifier = [0u8; 16];
        verifier.copy_from_slice(&digest[..16]);
        SessionVerifier(verifier)
    }

    /// The CSRF token bound to this session: HMAC-SHA256 keyed by the session secret.
    ///
    /// Deriving it means nothing extra is stored, it changes whenever the session does, and
    /// knowing it reveals nothing about the session token.
    pub fn csrf_token(&self) -> CsrfToken {
        CsrfToken(csrf_mac(&self.secret))
    }

    /// Whether `presented` is this session's CSRF token, compared in constant time.
    pub fn verify_csrf(&self, presented: &str) -> bool {
        verify_csrf(&self.secret, presented)
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

fn csrf_mac(key: &[u8; 32]) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail for a 32-byte key; the
    // fallback keeps this panic-free and still yields a value no client can present.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(b"tessera/csrf/v1");
            mac.finalize().into_bytes().into()
        }
        Err(_) => random::<32>().unwrap_or([0xff; 32]),
    }
}

fn verify_csrf(key: &[u8; 32], presented: &str) -> bool {
    match decode_exact::<32>(presented, "csrf token") {
        Ok(bytes) => bool::from(bytes.ct_eq(&csrf_mac(key))),
        Err(_) => false,
    }
}

/// What a store keeps of a [`SessionToken`]'s secret: the first 128 bits of its SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionVerifier([u8; 16]);

impl SessionVerifier {
    /// Wraps 16 bytes read back from a store.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        SessionVerifier(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Whether `presented` equals this verifier, compared in constant time.
    pub fn matches(&self, presented: &SessionVerifier) -> bool {
        bool::from(self.0.ct_eq(&presented.0))
    }
}

impl fmt::Debug for SessionVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SessionVerifier({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
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

/// SHA-256 of a [`Secret`] or [`RefreshToken`]: what stores keep instead of the secret.
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
        let mut text = [0u8; Secret::ENCODED_LEN];
        // 32 bytes always encode to exactly 43 characters, which is the buffer's size.
        let written = URL_SAFE_NO_PAD.encode_slice(self.0, &mut text).unwrap_or(0);
        debug_assert_eq!(written, Secret::ENCODED_LEN);
        EncodedToken(text)
    }
}

/// A 256-bit token's 43-character base64url form, held on the stack. `Debug` is redacted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncodedToken([u8; Secret::ENCODED_LEN]);

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
            &good[..63],
            &padded,
            &foreign,
            &oversized,
            "ééééééééééééééééééééééééééééééééééééééééééé",
        ] {
            assert!(SessionToken::parse(bad).is_err(), "accepted {bad:?}");
        }
        // 64 characters carry exactly 384 bits, so every spelling of the right length is
        // canonical; a 43-character token of the old format is refused.
        assert!(SessionToken::parse(&"A".repeat(64)).is_ok());
        assert!(SessionToken::parse(&"A".repeat(43)).is_err());
        // Secrets: 43 characters carry 258 bits for 256: the spare low bits of the last one
        // must be clear, or two spellings would name one secret.
        assert!(Secret::parse(&"A".repeat(43)).is_ok());
        assert!(Secret::parse(&format!("{}B", "A".repeat(42))).is_err());
    }

    #[test]
    fn tokens_carry_their_session_id_and_a_verifier_of_the_secret_only() {
        let token = SessionToken::generate().unwrap();
        let id = token.session_id();
        assert_eq!(SessionId::from_bytes(&id.to_bytes()), id);
        // The id is the token's first 16 bytes: its text is the token's first 21 characters
        // (126 bits), so a token never hides which session it opens.
        assert_eq!(token.encode()[..21], id.as_str()[..21]);
        // Same id, other secret: another verifier, which the constant-time check refuses.
        let mut bytes = URL_SAFE_NO_PAD.decode(token.encode()).unwrap();
        bytes[47] ^= 1;
        let forged = SessionToken::parse(&URL_SAFE_NO_PAD.encode(&bytes)).unwrap();
        assert_eq!(forged.session_id(), id);
        assert!(!token.verifier().matches(&forged.verifier()));
        assert!(token.verifier().matches(&token.verifier()));
        let digest = Sha256::digest(&bytes[16..]);
        assert_eq!(forged.verifier().as_bytes()[..], digest[..16]);
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
        let secret = Secret::generate().unwrap();
        let debug = format!("{token:?} {:?} {secret:?}", token.csrf_token());
        assert!(!debug.contains(&token.encode()[21..]));
        assert!(!debug.contains(&token.csrf_token().encode()));
        assert!(!debug.contains(&secret.encode()));
        assert!(secret.verify_csrf(&secret.csrf_token().encode()));
        assert!(!secret.verify_csrf(&token.csrf_token().encode()));
    }
}
