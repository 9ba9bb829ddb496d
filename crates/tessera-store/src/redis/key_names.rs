//! Redis key names (not signing keys): the configured prefix, one tag byte saying what the key
//! holds, then the id.

use tessera_core::{SessionId, ThrottleKey, TokenHash, UserId};

use super::record::UserAgentDigest;

/// A session's value, by the 16 raw bytes of its id.
pub(super) const SESSION: u8 = b's';
/// A user's sessions (sorted set: raw session id scored by when it ends), by raw user id.
pub(super) const USER: u8 = b'u';
/// A user agent's text, by its digest (shared by every session that sent it).
pub(super) const USER_AGENT: u8 = b'a';
/// A revocation in progress on a session (its lease), by raw session id.
pub(super) const CLAIM: u8 = b'c';
/// A refresh record, by the 32 raw bytes of its token hash.
pub(super) const REFRESH: u8 = b'r';
/// A login-failure counter, by [`ThrottleKey::storage_key`].
pub(super) const THROTTLE: u8 = b't';
/// The highest revocation-log sequence applied to the sessions here (one key).
pub(super) const APPLIED: u8 = b'l';
/// The pub/sub channel, after the prefix (channels are not keys, so no tag is needed).
const CHANNEL: &[u8] = b"revocations";

/// Builds the names of one deployment's keys.
#[derive(Debug, Clone)]
pub(super) struct KeyNames {
    prefix: Vec<u8>,
}

impl KeyNames {
    pub(super) fn new(prefix: &str) -> Self {
        KeyNames {
            prefix: prefix.as_bytes().to_vec(),
        }
    }

    pub(super) fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn key(&self, tag: u8, id: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 1 + id.len());
        key.extend_from_slice(&self.prefix);
        key.push(tag);
        key.extend_from_slice(id);
        key
    }

    pub(super) fn session(&self, id: &SessionId) -> Vec<u8> {
        self.key(SESSION, &id.to_bytes())
    }

    pub(super) fn user(&self, user_id: &UserId) -> Vec<u8> {
        self.key(USER, &user_id.to_bytes())
    }

    pub(super) fn user_agent(&self, digest: &UserAgentDigest) -> Vec<u8> {
        self.key(USER_AGENT, digest)
    }

    pub(super) fn refresh(&self, token_hash: &TokenHash) -> Vec<u8> {
        self.key(REFRESH, token_hash.as_bytes())
    }

    pub(super) fn throttle(&self, key: &ThrottleKey) -> Vec<u8> {
        self.key(THROTTLE, key.storage_key().as_bytes())
    }

    pub(super) fn applied(&self) -> Vec<u8> {
        self.key(APPLIED, b"")
    }

    pub(super) fn channel(&self) -> Vec<u8> {
        let mut channel = self.prefix.clone();
        channel.extend_from_slice(CHANNEL);
        channel
    }

    /// A `SCAN MATCH` pattern for every key with `tag`: the prefix with glob characters
    /// escaped, the tag, `*`.
    pub(super) fn pattern(&self, tag: u8) -> Vec<u8> {
        let mut pattern = Vec::with_capacity(self.prefix.len() * 2 + 2);
        for &byte in &self.prefix {
            if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
                pattern.push(b'\\');
            }
            pattern.push(byte);
        }
        pattern.push(tag);
        pattern.push(b'*');
        pattern
    }

    /// Whether `key`, found by [`KeyNames::pattern`], has the length of a key with `tag` whose
    /// id is `id_len` bytes — so a longer prefix that happens to start with this one is
    /// never mistaken for it.
    pub(super) fn is(&self, key: &[u8], id_len: usize) -> bool {
        key.len() == self.prefix.len() + 1 + id_len
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn every_key_and_the_channel_start_with_the_prefix() {
        let names = KeyNames::new("app:");
        let id = SessionId::generate().unwrap();
        let user = UserId::generate().unwrap();
        let hash = TokenHash::from_bytes([7; 32]);
        for key in [
            names.session(&id),
            names.user(&user),
            names.user_agent(&[1; 8]),
            names.refresh(&hash),
            names.throttle(&ThrottleKey::Account("alice".into())),
            names.applied(),
            names.channel(),
        ] {
            assert!(key.starts_with(b"app:"), "{key:?}");
        }
        assert_eq!(
            names.user(&user),
            [&b"app:u"[..], &user.to_bytes()].concat()
        );
    }

    #[test]
    fn patterns_escape_glob_characters_in_the_prefix() {
        assert_eq!(
            KeyNames::new("a*b?[c]\\:").pattern(USER),
            b"a\\*b\\?\\[c\\]\\\\:u*"
        );
        assert_eq!(KeyNames::new("tessera:").pattern(REFRESH), b"tessera:r*");
    }
}
