//! The claim set of a one-time operation token, after the IETF Transaction Tokens draft
//! (`typ` `txntoken+jwt`): one audience, one operation, seconds long, single use.

use serde::{Deserialize, Serialize};

use crate::actor::{Actor, present_actor};
use crate::claims::{present, present_integer};

/// The `typ` header of a one-time operation token. A verifier that only knows access tokens
/// (`at+jwt`, RFC 9068) refuses it, which is the point: a service that does not enforce
/// single use must never accept one.
pub const TRANSACTION_TOKEN_TYPE: &str = "txntoken+jwt";

/// The claims of a one-time operation token.
///
/// Parsing is as type-strict as for [`AccessClaims`](crate::AccessClaims): time claims are
/// JSON integers, optional claims are absent rather than `null`. Unlike an access token,
/// `aud` is exactly one audience (a string) and `scope` exactly one operation; the verifier
/// refuses anything else. Other claims are kept in [`TransactionClaims::extra`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionClaims {
    /// Issuer: the verifier requires it to equal its configured issuer.
    pub iss: String,
    /// Subject: the user's public id.
    pub sub: String,
    /// The one service this token is for: a JSON string, never an array.
    pub aud: String,
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
    /// Token id: what a replay guard records, so the token is accepted once.
    pub jti: String,
    /// The transaction id (the draft's `txn`); Tessera sets it equal to `jti`. A non-empty
    /// string when present. Omitted when `None`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub txn: Option<String>,
    /// The public id of the session the token was exchanged from: revoking that session
    /// refuses this token too.
    pub sid: String,
    /// The one operation the token authorizes (the draft's purpose), e.g. `refund`: a single
    /// RFC 6749 scope token, no spaces.
    pub scope: String,
    /// When the user last proved their password for the session, unix seconds. An integer
    /// when present. Omitted when `None`.
    #[serde(
        default,
        deserialize_with = "present_integer",
        skip_serializing_if = "Option::is_none"
    )]
    pub auth_time: Option<i64>,
    /// Role names. Defaults to empty; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The delegation chain (RFC 8693 §4.1), when a service asked for the token on the
    /// user's behalf. Omitted when `None`.
    #[serde(
        default,
        deserialize_with = "present_actor",
        skip_serializing_if = "Option::is_none"
    )]
    pub act: Option<Actor>,
    /// The request context the token was issued in (the draft's `rctx`). Omitted when `None`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub rctx: Option<RequestContext>,
    /// Every other top-level claim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The `rctx` claim: where the request that obtained the token came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    /// The requester's IP address, as the issuer saw it. Omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req_ip: Option<String>,
    /// Every other member of the context.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl TransactionClaims {
    /// The transaction id: `txn`, or `jti` when the token carries none.
    pub fn transaction_id(&self) -> &str {
        self.txn.as_deref().unwrap_or(&self.jti)
    }
}

/// Whether `scope` is exactly one RFC 6749 §3.3 scope token: `1*( %x21 / %x23-5B / %x5D-7E )`.
pub(crate) fn is_one_operation(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|byte| matches!(byte, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const MINIMAL: &str = r#"{"iss":"i","sub":"s","aud":"billing","exp":20,"iat":10,"jti":"j","sid":"d","scope":"refund"}"#;

    fn with(member: &str) -> String {
        MINIMAL.replacen('{', &format!("{{{member},"), 1)
    }

    #[test]
    fn minimal_claims_parse_and_optional_claims_are_omitted() {
        let claims: TransactionClaims = serde_json::from_str(MINIMAL).unwrap();
        assert_eq!((claims.txn.as_deref(), claims.act.as_ref()), (None, None));
        assert_eq!(claims.transaction_id(), "j");
        let json = serde_json::to_string(&claims).unwrap();
        for absent in ["nbf", "txn", "auth_time", "roles", "act", "rctx"] {
            assert!(!json.contains(absent), "{json}");
        }
    }

    #[test]
    fn every_claim_round_trips() {
        let json = with(
            r#""txn":"t-1","auth_time":5,"roles":["clerk"],"act":{"sub":"cart","act":{"sub":"web"}},"rctx":{"req_ip":"192.0.2.1","device":"kiosk"},"tenant":"acme""#,
        );
        let claims: TransactionClaims = serde_json::from_str(&json).unwrap();
        assert_eq!(claims.transaction_id(), "t-1");
        assert_eq!(
            claims.act.as_ref().unwrap().chain().collect::<Vec<_>>(),
            ["cart", "web"]
        );
        let context = claims.rctx.as_ref().unwrap();
        assert_eq!(context.req_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(context.extra["device"], "kiosk");
        assert_eq!(claims.extra["tenant"], "acme");
        let again: TransactionClaims =
            serde_json::from_str(&serde_json::to_string(&claims).unwrap()).unwrap();
        assert_eq!(again, claims);
    }

    #[test]
    fn claims_of_the_wrong_shape_are_refused() {
        for bad in [
            MINIMAL.replace(r#""aud":"billing""#, r#""aud":["billing"]"#),
            MINIMAL.replace(r#""scope":"refund""#, r#""scope":["refund"]"#),
            MINIMAL.replace(r#""exp":20"#, r#""exp":"20""#),
            with(r#""txn":5"#),
            with(r#""txn":null"#),
            with(r#""act":null"#),
            with(r#""act":{"sub":""}"#),
            with(r#""act":"cart""#),
            with(r#""rctx":"192.0.2.1""#),
            with(r#""auth_time":null"#),
        ] {
            assert!(
                serde_json::from_str::<TransactionClaims>(&bad).is_err(),
                "{bad}"
            );
        }
        for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "sid", "scope"] {
            let mut value: serde_json::Value = serde_json::from_str(MINIMAL).unwrap();
            value.as_object_mut().unwrap().remove(claim);
            assert!(
                serde_json::from_value::<TransactionClaims>(value).is_err(),
                "{claim}"
            );
        }
    }

    #[test]
    fn an_operation_is_one_scope_token() {
        assert!(is_one_operation("refund"));
        assert!(is_one_operation("orders:refund"));
        for bad in ["", "refund export", "refund\t", "re\"fund", "ré", "a\\b"] {
            assert!(!is_one_operation(bad), "{bad:?}");
        }
    }
}
