//! The claim set of an access token (RFC 9068 §2.2 plus Tessera's `sid`, and RFC 8693's
//! `act` for a delegated one).

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::actor::Actor;

/// The claims of a Tessera access token.
///
/// Parsing is type-strict: `exp`, `iat`, `nbf` and `auth_time` must be JSON integers (a string, float,
/// boolean or `null` is rejected, unlike libraries that skip such claims — CVE-2026-25537);
/// `aud` is one string or a non-empty array of strings. Other claims are kept in
/// [`AccessClaims::extra`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: the verifier requires it to equal its configured issuer.
    pub iss: String,
    /// Subject: the user's public id.
    pub sub: String,
    /// Audience: the services this token is meant for.
    pub aud: Audience,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Not before, unix seconds. Omitted when `None`.
    #[serde(
        default,
        deserialize_with = "present_integer",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    /// Token id: unique per token; denylists key on (`iss`, `jti`), never on token bytes.
    pub jti: String,
    /// When the user last proved their password for the session, unix seconds (OpenID
    /// Connect Core §2 `auth_time`). Like `nbf`, an integer when present. Omitted when `None`.
    #[serde(
        default,
        deserialize_with = "present_integer",
        skip_serializing_if = "Option::is_none"
    )]
    pub auth_time: Option<i64>,
    /// The public id of the session this token belongs to; revocation is checked against it.
    pub sid: String,
    /// OAuth scope, space-separated. Omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Role names. Defaults to empty; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The OAuth client the token was issued to. Omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Every other top-level claim: the user's custom claims in a token Tessera issues
    /// (never a name above), whatever else the issuer added in one being verified — and
    /// `act`, the delegation chain, read and written through [`AccessClaims::actor`] and
    /// [`AccessClaims::set_actor`].
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl AccessClaims {
    /// The delegation chain (RFC 8693 §4.1 `act`): `Ok(None)` without one, an error when
    /// `act` is present but not a valid chain. Claims returned by
    /// [`Verifier::verify`](crate::Verifier::verify) were checked, so this never fails
    /// for them.
    ///
    /// `act` lives in [`extra`](Self::extra) rather than a field of its own so that adding
    /// it left this struct's fields, and every literal that builds it, unchanged.
    pub fn actor(&self) -> Result<Option<Actor>, serde_json::Error> {
        self.extra.get("act").map(Actor::from_value).transpose()
    }

    /// Sets (or, with `None`, removes) the `act` claim.
    pub fn set_actor(&mut self, actor: Option<&Actor>) {
        match actor {
            Some(actor) => {
                self.extra.insert("act".to_owned(), actor.to_value());
            }
            None => {
                self.extra.remove("act");
            }
        }
    }
}

/// The `aud` claim: one audience (serialized as a string) or several (an array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// A single audience, serialized as a JSON string.
    One(String),
    /// Several audiences, serialized as a JSON array. Parsing refuses an empty array.
    Many(Vec<String>),
}

impl Audience {
    /// Every audience named.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Self::One(audience) => (Some(audience.as_str()), &[][..]),
            Self::Many(audiences) => (None, audiences.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }

    /// True when `audience` is one of the audiences named.
    pub fn contains(&self, audience: &str) -> bool {
        self.iter().any(|named| named == audience)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl From<&str> for Audience {
    fn from(audience: &str) -> Self {
        Self::One(audience.to_owned())
    }
}

impl From<String> for Audience {
    fn from(audience: String) -> Self {
        Self::One(audience)
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::One(audience) => serializer.serialize_str(audience),
            Self::Many(audiences) => {
                let mut sequence = serializer.serialize_seq(Some(audiences.len()))?;
                for audience in audiences {
                    sequence.serialize_element(audience)?;
                }
                sequence.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AudienceVisitor;
        impl<'de> Visitor<'de> for AudienceVisitor {
            type Value = Audience;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string or a non-empty array of strings")
            }
            fn visit_str<E: de::Error>(self, audience: &str) -> Result<Audience, E> {
                Ok(Audience::One(audience.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut elements: A) -> Result<Audience, A::Error> {
                let mut audiences = Vec::with_capacity(elements.size_hint().unwrap_or(1).min(16));
                while let Some(audience) = elements.next_element::<String>()? {
                    audiences.push(audience);
                }
                if audiences.is_empty() {
                    return Err(de::Error::invalid_length(0, &self));
                }
                Ok(Audience::Many(audiences))
            }
        }
        deserializer.deserialize_any(AudienceVisitor)
    }
}

/// An optional claim that, when present, must be an integer: `"nbf": null` is an error, not
/// an absent claim.
pub(crate) fn present_integer<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    i64::deserialize(deserializer).map(Some)
}

/// An optional claim that, when present, must be a `T`: `null` is an error, not an absent
/// claim.
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        r#"{"iss":"i","sub":"s","aud":"a","exp":20,"iat":10,"jti":"j","sid":"d"}"#;

    fn with(member: &str) -> String {
        MINIMAL.replacen('{', &format!("{{{member},"), 1)
    }

    #[test]
    fn minimal_claims_parse_with_defaults() {
        let claims: AccessClaims = serde_json::from_str(MINIMAL).unwrap();
        assert_eq!(claims.aud, Audience::One("a".to_owned()));
        assert_eq!(
            (claims.nbf, claims.auth_time, claims.scope, claims.client_id),
            (None, None, None, None)
        );
        assert!(claims.roles.is_empty());
    }

    #[test]
    fn serialization_omits_empty_optional_claims() {
        let claims: AccessClaims = serde_json::from_str(MINIMAL).unwrap();
        let json = serde_json::to_string(&claims).unwrap();
        for absent in ["nbf", "auth_time", "scope", "roles", "client_id"] {
            assert!(!json.contains(absent), "{json}");
        }
    }

    #[test]
    fn other_claims_are_kept_and_written_at_the_top_level() {
        let claims: AccessClaims =
            serde_json::from_str(&with(r#""tenant":"acme","limits":{"seats":5}"#)).unwrap();
        assert_eq!(claims.extra["tenant"], "acme");
        assert_eq!(claims.extra["limits"]["seats"], 5);
        assert!(
            !claims.extra.contains_key("sub"),
            "known claims are not repeated"
        );
        let json: serde_json::Value = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["tenant"], "acme");
        assert_eq!(json["sub"], "s");
        let minimal: AccessClaims = serde_json::from_str(MINIMAL).unwrap();
        assert!(minimal.extra.is_empty());
    }

    #[test]
    fn audience_is_a_string_or_a_non_empty_array_of_strings() {
        let many: AccessClaims =
            serde_json::from_str(&MINIMAL.replace(r#""aud":"a""#, r#""aud":["a","b"]"#)).unwrap();
        assert!(many.aud.contains("b") && !many.aud.contains("c"));
        for bad in [
            r#""aud":[]"#,
            r#""aud":123"#,
            r#""aud":[1]"#,
            r#""aud":null"#,
            r#""aud":{}"#,
        ] {
            let json = MINIMAL.replace(r#""aud":"a""#, bad);
            assert!(
                serde_json::from_str::<AccessClaims>(&json).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn time_claims_must_be_integers() {
        for bad in [
            r#""9999999999""#,
            "1.5",
            "1e10",
            "true",
            "null",
            "{}",
            "18446744073709551615",
        ] {
            let json = MINIMAL.replace(r#""exp":20"#, &format!(r#""exp":{bad}"#));
            assert!(
                serde_json::from_str::<AccessClaims>(&json).is_err(),
                "exp {bad}"
            );
            assert!(
                serde_json::from_str::<AccessClaims>(&with(&format!(r#""nbf":{bad}"#))).is_err(),
                "nbf {bad}"
            );
            assert!(
                serde_json::from_str::<AccessClaims>(&with(&format!(r#""auth_time":{bad}"#)))
                    .is_err(),
                "auth_time {bad}"
            );
        }
        let claims: AccessClaims = serde_json::from_str(&with(r#""auth_time":15"#)).unwrap();
        assert_eq!(claims.auth_time, Some(15));
        assert!(
            serde_json::to_string(&claims)
                .unwrap()
                .contains(r#""auth_time":15"#)
        );
    }

    #[test]
    fn required_claims_are_required() {
        for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "sid"] {
            let mut value: serde_json::Value = serde_json::from_str(MINIMAL).unwrap();
            value.as_object_mut().unwrap().remove(claim);
            assert!(
                serde_json::from_value::<AccessClaims>(value).is_err(),
                "{claim}"
            );
        }
    }
}
