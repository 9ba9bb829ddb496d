//! A validating pass that rejects duplicate member names anywhere in a JSON document.
//!
//! RFC 7515 §4 and RFC 7519 §4 let a parser either reject duplicates or take the last one;
//! serde's derived structs reject duplicates of the fields they know but silently ignore
//! repeated unknown members, and a map-typed parse keeps the last value. Rejecting every
//! duplicate closes parser-differential attacks (`{"alg":"ES256","alg":"none"}`).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// Checks that `json` is one JSON object whose members, at every depth, have unique names
/// (compared after unescaping, so `"sub"` and `"\u0073ub"` collide).
pub(crate) fn check_object_with_unique_members(json: &[u8]) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    deserializer.deserialize_map(UniqueMembersVisitor)?;
    deserializer.end()
}

struct UniqueMembers;

impl<'de> Deserialize<'de> for UniqueMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueMembersVisitor)
    }
}

/// A member name, borrowed from the input unless it contains escapes.
struct MemberName<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = MemberName<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Borrowed(name)))
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

struct UniqueMembersVisitor;

impl<'de> Visitor<'de> for UniqueMembersVisitor {
    type Value = UniqueMembers;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object with unique member names")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(UniqueMembers)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(UniqueMembers)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(UniqueMembers)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(UniqueMembers)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(UniqueMembers)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(UniqueMembers)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut elements: A) -> Result<Self::Value, A::Error> {
        while elements.next_element::<UniqueMembers>()?.is_some() {}
        Ok(UniqueMembers)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Self::Value, A::Error> {
        // Headers and claim sets have a handful of members: a linear scan beats hashing.
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        while let Some(MemberName(name)) = members.next_key()? {
            if seen.contains(&name) {
                return Err(de::Error::custom("duplicate member name"));
            }
            members.next_value::<UniqueMembers>()?;
            seen.push(name);
        }
        Ok(UniqueMembers)
    }
}

#[cfg(test)]
mod tests {
    use super::check_object_with_unique_members as check;

    #[test]
    fn accepts_objects_with_unique_members() {
        assert!(check(br#"{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}],"d":null,"e":1.5}"#).is_ok());
    }

    #[test]
    fn rejects_duplicates_at_every_depth_and_after_unescaping() {
        assert!(check(br#"{"alg":"ES256","alg":"none"}"#).is_err());
        assert!(check(br#"{"sub":"a","\u0073ub":"b"}"#).is_err());
        assert!(check(br#"{"x":{"k":1,"k":2}}"#).is_err());
        assert!(check(br#"{"x":[{"k":1,"k":2}]}"#).is_err());
    }

    #[test]
    fn rejects_anything_but_one_object() {
        let inputs: [&[u8]; 6] = [b"[]", b"\"text\"", b"1", b"{} {}", b"\xEF\xBB\xBF{}", b""];
        for input in inputs {
            assert!(check(input).is_err(), "{input:?}");
        }
    }
}
