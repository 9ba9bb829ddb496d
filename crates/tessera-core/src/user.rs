//! Users: the account a session belongs to.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

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
    /// Roles, custom claims and whether the account is disabled.
    pub standing: Standing,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("user", &self.user)
            .field("password_hash", &"<redacted>")
            .field("standing", &self.standing)
            .finish()
    }
}

/// What an account may do and what its access tokens say about it: roles, custom claims, and
/// whether it is disabled. Any change to it makes the user's access tokens stale (see
/// [`crate::Engine::mark_user_stale`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// Role names, carried in the `roles` claim.
    pub roles: Roles,
    /// Extra top-level claims of the user's access tokens.
    pub claims: CustomClaims,
    /// A disabled account cannot log in or refresh, and has no live sessions.
    pub disabled: bool,
}

/// Why a role or a custom claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StandingRejection {
    /// A role name outside the rules of [`Role::parse`].
    #[error("a role name has 1 to 64 characters from A-Z a-z 0-9 . _ : -")]
    RoleName,
    /// More than [`Roles::MAX`] roles.
    #[error("a user has at most 32 roles")]
    TooManyRoles,
    /// A claim name outside the rules of [`CustomClaims`].
    #[error("a claim name has 1 to 64 characters from A-Z a-z 0-9 . _ : / -")]
    ClaimName,
    /// A claim name Tessera sets itself (see [`CustomClaims::RESERVED`]).
    #[error("`{0}` is a reserved claim name")]
    ReservedClaim(String),
    /// The claims, encoded as a JSON object, exceed [`CustomClaims::MAX_BYTES`].
    #[error("custom claims are limited to 1024 bytes of JSON")]
    ClaimsTooLarge,
    /// Not valid JSON, or (for the whole set) not a JSON object.
    #[error("custom claims must be a JSON object of valid JSON values")]
    NotJson,
}

/// A role name, checked once: 1 to 64 characters from `A–Z a–z 0–9 . _ : -`. Roles compare
/// exactly (case matters), as verifiers compare the `roles` claim.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Role(String);

impl Role {
    /// Longest role name accepted, in characters (all ASCII).
    pub const MAX_LEN: usize = 64;

    /// Checks `text` against the role-name rules.
    pub fn parse(text: &str) -> Result<Role, StandingRejection> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
        if text.is_empty() || text.len() > Self::MAX_LEN || !text.bytes().all(allowed) {
            return Err(StandingRejection::RoleName);
        }
        Ok(Role(text.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's roles: a set of at most [`Roles::MAX`] names, kept in sorted order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles(BTreeSet<Role>);

impl Roles {
    /// Most roles one user may have.
    pub const MAX: usize = 32;

    /// The set of `roles` (duplicates fold), if there are at most [`Roles::MAX`].
    pub fn new(roles: impl IntoIterator<Item = Role>) -> Result<Roles, StandingRejection> {
        let set: BTreeSet<Role> = roles.into_iter().collect();
        if set.len() > Self::MAX {
            return Err(StandingRejection::TooManyRoles);
        }
        Ok(Roles(set))
    }

    /// Parses every name and builds the set.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Roles, StandingRejection> {
        Roles::new(
            names
                .into_iter()
                .map(Role::parse)
                .collect::<Result<Vec<_>, _>>()?,
        )
    }

    /// The set with `role` added. `false` if it was there already.
    pub fn insert(&mut self, role: Role) -> Result<bool, StandingRejection> {
        if self.0.contains(&role) {
            return Ok(false);
        }
        if self.0.len() >= Self::MAX {
            return Err(StandingRejection::TooManyRoles);
        }
        Ok(self.0.insert(role))
    }

    /// Removes `role`. `false` if it was not there.
    pub fn remove(&mut self, role: &Role) -> bool {
        self.0.remove(role)
    }

    /// Whether the user has `role`.
    pub fn contains(&self, role: &str) -> bool {
        self.0.iter().any(|held| held.as_str() == role)
    }

    /// The names, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(Role::as_str)
    }

    /// How many roles.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No roles at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names as a JSON array (how SQL stores keep them).
    pub fn to_json(&self) -> String {
        Value::Array(
            self.iter()
                .map(|name| Value::String(name.to_owned()))
                .collect(),
        )
        .to_string()
    }

    /// Reads what [`Roles::to_json`] wrote, checking every name again.
    pub fn from_json(text: &str) -> Result<Roles, StandingRejection> {
        let names: Vec<String> =
            serde_json::from_str(text).map_err(|_| StandingRejection::NotJson)?;
        Roles::parse(names.iter().map(String::as_str))
    }
}

/// Extra top-level claims of a user's access tokens: a JSON object of at most
/// [`CustomClaims::MAX_BYTES`] when encoded, whose names are 1 to 64 characters from
/// `A–Z a–z 0–9 . _ : / -` (so collision-resistant URI names fit) and none of
/// [`CustomClaims::RESERVED`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomClaims(Map<String, Value>);

impl CustomClaims {
    /// Largest encoded size of the whole object, in bytes: access tokens stay small.
    pub const MAX_BYTES: usize = 1024;
    /// Longest claim name, in characters.
    pub const MAX_NAME_LEN: usize = 64;
    /// Claims Tessera sets itself (RFC 7519, RFC 9068, RFC 8693, OpenID Connect's
    /// `auth_time`), which a custom claim could otherwise shadow.
    pub const RESERVED: &[&str] = &[
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "sid",
        "typ",
        "scope",
        "roles",
        "auth_time",
        "act",
        "client_id",
        "cnf",
        "azp",
    ];

    /// The claims of a JSON object, checked.
    pub fn new(claims: Map<String, Value>) -> Result<CustomClaims, StandingRejection> {
        for name in claims.keys() {
            check_claim_name(name)?;
        }
        let claims = CustomClaims(claims);
        if claims.to_json().len() > Self::MAX_BYTES {
            return Err(StandingRejection::ClaimsTooLarge);
        }
        Ok(claims)
    }

    /// Parses a JSON object (how SQL stores keep the claims), checked.
    pub fn from_json(text: &str) -> Result<CustomClaims, StandingRejection> {
        match serde_json::from_str(text) {
            Ok(Value::Object(map)) => CustomClaims::new(map),
            _ => Err(StandingRejection::NotJson),
        }
    }

    /// The set with `name` set to the JSON `value`, if it stays within the rules.
    pub fn with(&self, name: &str, value: Value) -> Result<CustomClaims, StandingRejection> {
        check_claim_name(name)?;
        let mut map = self.0.clone();
        map.insert(name.to_owned(), value);
        CustomClaims::new(map)
    }

    /// The set without `name`, and whether it was there.
    pub fn without(&self, name: &str) -> (CustomClaims, bool) {
        let mut map = self.0.clone();
        let removed = map.remove(name).is_some();
        (CustomClaims(map), removed)
    }

    /// The claims as a JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// No custom claims.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The claims encoded as one JSON object.
    pub fn to_json(&self) -> String {
        // A map of JSON values always encodes.
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }
}

fn check_claim_name(name: &str) -> Result<(), StandingRejection> {
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-');
    if name.is_empty() || name.len() > CustomClaims::MAX_NAME_LEN || !name.bytes().all(allowed) {
        return Err(StandingRejection::ClaimName);
    }
    if CustomClaims::RESERVED.contains(&name) {
        return Err(StandingRejection::ReservedClaim(name.to_owned()));
    }
    Ok(())
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

    #[test]
    fn role_names_follow_the_rules_and_a_set_is_bounded() {
        assert!(Role::parse("admin").is_ok());
        assert!(Role::parse("billing:read").is_ok());
        for bad in ["", "has space", "a/b", "é", &"r".repeat(65)] {
            assert_eq!(
                Role::parse(bad),
                Err(StandingRejection::RoleName),
                "{bad:?}"
            );
        }
        let roles = Roles::parse(["b", "a", "b"]).unwrap();
        assert_eq!(roles.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(Roles::from_json(&roles.to_json()).unwrap(), roles);
        let many: Vec<String> = (0..=Roles::MAX).map(|n| format!("r{n}")).collect();
        assert_eq!(
            Roles::parse(many.iter().map(String::as_str)),
            Err(StandingRejection::TooManyRoles)
        );
        let mut full = Roles::parse(many[..Roles::MAX].iter().map(String::as_str)).unwrap();
        assert_eq!(
            full.insert(Role::parse("one-more").unwrap()),
            Err(StandingRejection::TooManyRoles)
        );
        assert_eq!(full.insert(Role::parse("r0").unwrap()), Ok(false));
        assert!(Roles::from_json("[\"bad name\"]").is_err());
        assert!(Roles::from_json("{}").is_err());
    }

    #[test]
    fn custom_claims_refuse_reserved_names_bad_names_and_oversize() {
        let claims = CustomClaims::default()
            .with("tenant", Value::from("acme"))
            .unwrap()
            .with("https://example.com/plan", Value::from(3))
            .unwrap();
        assert_eq!(CustomClaims::from_json(&claims.to_json()).unwrap(), claims);
        for reserved in CustomClaims::RESERVED {
            assert_eq!(
                claims.with(reserved, Value::Null),
                Err(StandingRejection::ReservedClaim((*reserved).to_owned()))
            );
        }
        assert_eq!(
            claims.with("", Value::Null),
            Err(StandingRejection::ClaimName)
        );
        assert_eq!(
            claims.with("a b", Value::Null),
            Err(StandingRejection::ClaimName)
        );
        let big = Value::from("x".repeat(CustomClaims::MAX_BYTES));
        assert_eq!(
            claims.with("big", big),
            Err(StandingRejection::ClaimsTooLarge)
        );
        assert_eq!(
            CustomClaims::from_json("[1]"),
            Err(StandingRejection::NotJson)
        );
        assert_eq!(
            CustomClaims::from_json("{\"sub\": 1}"),
            Err(StandingRejection::ReservedClaim("sub".to_owned()))
        );
        let (without, removed) = claims.without("tenant");
        assert!(removed);
        assert!(!without.as_map().contains_key("tenant"));
        assert!(!without.without("tenant").1);
    }
}
