//! The `act` claim (RFC 8693 §4.1): who is acting on the subject's behalf, as a chain.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// The actor of a delegated token (RFC 8693 §4.1 `act`): the party acting for the token's
/// subject — `sub` is its client id — and, nested in `act`, whoever acted before it. The
/// outermost actor is the current one.
///
/// Parsing refuses a chain deeper than [`Actor::MAX_DEPTH`], an empty `sub`, and a nested
/// `act` that is `null` or not an object. Members other than `sub` and `act` are ignored
/// (RFC 8693 gives them no meaning for access control).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The acting party: for Tessera, a client id.
    pub sub: String,
    /// The actor before this one, if the token was delegated more than once. Omitted when
    /// `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// The longest chain accepted: eight actors, far more than any real delegation path, and
    /// a bound on the work a hostile token can ask for.
    pub const MAX_DEPTH: usize = 8;

    /// An actor with no prior actor.
    pub fn new(sub: impl Into<String>) -> Actor {
        Actor {
            sub: sub.into(),
            act: None,
        }
    }

    /// This actor, acting after `prior` (which becomes the nested `act`).
    #[must_use]
    pub fn after(mut self, prior: Actor) -> Actor {
        self.act = Some(Box::new(prior));
        self
    }

    /// Every actor's `sub`, outermost (current) first.
    pub fn chain(&self) -> impl Iterator<Item = &str> {
        std::iter::successors(Some(self), |actor| actor.act.as_deref())
            .map(|actor| actor.sub.as_str())
    }

    /// How many actors the chain holds (1 without a nested `act`).
    pub fn depth(&self) -> usize {
        self.chain().count()
    }

    /// Parses an `act` value kept as JSON (an access token keeps it in
    /// [`AccessClaims::extra`](crate::AccessClaims::extra)), with the same checks as a typed
    /// claim.
    pub fn from_value(value: &serde_json::Value) -> Result<Actor, serde_json::Error> {
        Actor::deserialize(value)
    }

    /// The actor as a JSON value, to put in
    /// [`AccessClaims::extra`](crate::AccessClaims::extra) under `act`.
    pub fn to_value(&self) -> serde_json::Value {
        // Two strings and an optional nested object always serialize.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read as JSON first (serde_json's recursion limit, 128, bounds the nesting while it
        // parses), then walked by hand: a derived struct would also take an array for an
        // object.
        let value = serde_json::Value::deserialize(deserializer)?;
        let mut subjects = Vec::new();
        let mut link = &value;
        loop {
            let serde_json::Value::Object(members) = link else {
                return Err(de::Error::custom("an actor is not a JSON object"));
            };
            if subjects.len() == Actor::MAX_DEPTH {
                return Err(de::Error::custom(format_args!(
                    "the act chain is deeper than {}",
                    Actor::MAX_DEPTH
                )));
            }
            match members.get("sub") {
                Some(serde_json::Value::String(sub)) if !sub.is_empty() => subjects.push(sub),
                _ => {
                    return Err(de::Error::custom(
                        "an actor's sub is not a non-empty string",
                    ));
                }
            }
            match members.get("act") {
                None => break,
                Some(prior) => link = prior,
            }
        }
        let mut chain: Option<Box<Actor>> = None;
        for sub in subjects.into_iter().rev() {
            chain = Some(Box::new(Actor {
                sub: sub.clone(),
                act: chain,
            }));
        }
        // The loop pushed at least one subject before it could break.
        chain
            .map(|actor| *actor)
            .ok_or_else(|| de::Error::custom("an actor is empty"))
    }
}

/// For claim sets: an optional `act` that, when present, is a valid actor (not `null`).
pub(crate) fn present_actor<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Actor>, D::Error> {
    Actor::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn nested(depth: usize) -> String {
        let mut json = String::from(r#"{"sub":"c0"}"#);
        for level in 1..depth {
            json = format!(r#"{{"sub":"c{level}","act":{json}}}"#);
        }
        json
    }

    #[test]
    fn a_chain_round_trips_and_lists_the_current_actor_first() {
        let actor = Actor::new("gateway").after(Actor::new("cart").after(Actor::new("web")));
        let json = serde_json::to_string(&actor).unwrap();
        assert_eq!(
            json,
            r#"{"sub":"gateway","act":{"sub":"cart","act":{"sub":"web"}}}"#
        );
        let parsed: Actor = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, actor);
        assert_eq!(
            parsed.chain().collect::<Vec<_>>(),
            ["gateway", "cart", "web"]
        );
        assert_eq!(Actor::from_value(&actor.to_value()).unwrap(), actor);
    }

    #[test]
    fn chains_up_to_the_bound_parse_and_deeper_ones_are_refused() {
        let deepest: Actor = serde_json::from_str(&nested(Actor::MAX_DEPTH)).unwrap();
        assert_eq!(deepest.depth(), Actor::MAX_DEPTH);
        assert!(serde_json::from_str::<Actor>(&nested(Actor::MAX_DEPTH + 1)).is_err());
        assert!(serde_json::from_str::<Actor>(&nested(1000)).is_err());
    }

    #[test]
    fn malformed_actors_are_refused() {
        for bad in [
            r#"{}"#,
            r#"{"sub":""}"#,
            r#"{"sub":1}"#,
            r#"{"sub":"a","act":null}"#,
            r#"{"sub":"a","act":"b"}"#,
            r#"{"sub":"a","act":{"sub":""}}"#,
            r#"{"sub":"a","act":{}}"#,
            r#""a""#,
            r#"null"#,
            r#"["a"]"#,
        ] {
            assert!(serde_json::from_str::<Actor>(bad).is_err(), "{bad}");
        }
        let with_other_member: Actor =
            serde_json::from_str(r#"{"sub":"a","iss":"https://x"}"#).unwrap();
        assert_eq!(with_other_member, Actor::new("a"));
    }
}
