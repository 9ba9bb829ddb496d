//! Users: the account a session belongs to.

use std::fmt;

use crate::id::UserId;
use crate::time::Timestamp;

/// A username as the user typed it, checked once.
///
/// 1 to 64 characters from `A–Z a–z 0–9 . _ @ + -` (so e-mail addresses fit), but not `.` or
/// `..`, which read as path segments wherever a name lands in a URL or a path. Usernames are
/// unique without regard to ASCII case: `Alice` and `alice` are the same account, shown as
/// first registered.
#[derive(Clone, PartialEq, Eq)]
pub struct Username {
    display: String,
    key: String,
}

/// Why a username was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsernameRejection {
    /// Empty or longer than [`Username::MAX_LEN`].
    #[error("a username has 1 to 64 characters")]
    Length,
    /// A character outside the allowed set.
    #[error("a username may contain only letters, digits and . _ @ + -")]
    Characters,
    /// `.` or `..`.
    #[error("a username cannot be `.` or `..`")]
    Dots,
}

impl Username {
    /// Longest username accepted, in characters (all ASCII).
    pub const MAX_LEN: usize = 64;

    /// Checks `text` against the username rules.
    pub fn parse(text: &str) -> Result<Self, UsernameRejection> {
        if text.is_empty() || text.len() > Self::MAX_LEN {
            return Err(UsernameRejection::Length);
        }
        let allowed =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'+' | b'-');
        if !text.bytes().all(allowed) {
            return Err(UsernameRejection::Characters);
        }
        if matches!(text, "." | "..") {
            return Err(UsernameRejection::Dots);
        }
        Ok(Username {
            display: text.to_owned(),
            key: text.to_ascii_lowercase(),
        })
    }

    /// The name as registered.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The case-folded form under which uniqueness and look-ups work.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", self.display)
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Public identifier.
    pub id: UserId,
    /// The username as registered.
    pub username: String,
    /// When the account was created.
    pub created_at: Timestamp,
}

/// A user as the store keeps it: with the password hash, which never leaves the engine.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The public part.
    pub user: User,
    /// PHC-format Argon2id hash of the password.
    pub password_hash: String,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("user", &self.user)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_fold_case_for_uniqueness_but_keep_their_spelling() {
        let name = Username::parse("Alice.Smith+dev@example.com").unwrap();
        assert_eq!(name.as_str(), "Alice.Smith+dev@example.com");
        assert_eq!(name.key(), "alice.smith+dev@example.com");
    }

    #[test]
    fn usernames_outside_the_rules_are_refused() {
        assert_eq!(Username::parse(""), Err(UsernameRejection::Length));
        assert_eq!(
            Username::parse(&"a".repeat(65)),
            Err(UsernameRejection::Length)
        );
        assert!(Username::parse(&"a".repeat(64)).is_ok());
        for bad in ["al ice", "alice\n", "ålice", "a/b", "a'--", "<script>"] {
            assert_eq!(
                Username::parse(bad),
                Err(UsernameRejection::Characters),
                "{bad:?}"
            );
        }
        for dots in [".", ".."] {
            assert_eq!(Username::parse(dots), Err(UsernameRejection::Dots));
        }
        assert!(Username::parse("...").is_ok());
        assert!(Username::parse(".alice").is_ok());
    }
}
