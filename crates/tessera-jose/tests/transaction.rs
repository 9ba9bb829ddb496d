//! One-time operation tokens (`typ` `txntoken+jwt`): they round-trip, they are never taken
//! for access tokens nor access tokens for them, and every claim check refuses what it must.
//! Refused tokens are forged with the real private key, so each differs from an honest one
//! only where it is attacked.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests may unwrap: a panic there is a failed test, which is the point.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tessera_jose::{
    Actor, Algorithm, RequestContext, SignError, TRANSACTION_TOKEN_TYPE, TransactionClaims,
    VerifiedToken, VerifierSettings, VerifyError,
};

fn transaction_claims() -> TransactionClaims {
    TransactionClaims {
        iss: ISSUER.to_owned(),
        sub: "user-1".to_owned(),
        aud: AUDIENCE.to_owned(),
        exp: NOW + 30,
        iat: NOW,
        nbf: None,
        jti: "txn-1".to_owned(),
        txn: Some("txn-1".to_owned()),
        sid: "session-1".to_owned(),
        scope: "refund".to_owned(),
        auth_time: Some(NOW - 60),
        roles: vec![],
        act: Some(Actor::new("cart").after(Actor::new("web"))),
        rctx: Some(RequestContext {
            req_ip: Some("192.0.2.7".to_owned()),
            extra: Default::default(),
        }),
        extra: Default::default(),
    }
}

fn sign_transaction(algorithm: Algorithm, claims: &TransactionClaims) -> String {
    keyring(algorithm)
        .signer(NOW)
        .unwrap()
        .sign_transaction(claims)
        .unwrap()
}

fn transaction_header(algorithm: Algorithm) -> String {
    let key = stored_key(algorithm);
    format!(
        r#"{{"typ":"txntoken+jwt","alg":"{}","kid":"{}"}}"#,
        key.algorithm, key.kid
    )
}

/// An honest transaction token's claims after `edit`, signed with the real key.
fn forged(edit: impl FnOnce(&mut Value)) -> String {
    let mut value = serde_json::to_value(transaction_claims()).unwrap();
    edit(&mut value);
    forge_with_real_key(
        Algorithm::EdDSA,
        &transaction_header(Algorithm::EdDSA),
        &value.to_string(),
    )
}

fn verify_forged(edit: impl FnOnce(&mut Value)) -> Result<TransactionClaims, VerifyError> {
    verifier(Algorithm::EdDSA).verify_transaction(&forged(edit), NOW)
}

#[test]
fn every_algorithm_round_trips_with_the_transaction_type() {
    for algorithm in Algorithm::ALL {
        let token = sign_transaction(algorithm, &transaction_claims());
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some(TRANSACTION_TOKEN_TYPE));
        assert_eq!(
            header.kid.as_deref(),
            Some(stored_key(algorithm).kid.as_str())
        );
        let verifier = verifier(algorithm);
        assert_eq!(
            verifier.verify_transaction(&token, NOW).unwrap(),
            transaction_claims(),
            "{algorithm}"
        );
        assert_eq!(
            verifier.verify_any(&token, NOW).unwrap(),
            VerifiedToken::Transaction(transaction_claims())
        );
    }
}

#[test]
fn access_verification_refuses_a_transaction_token_and_the_reverse() {
    let verifier = verifier(Algorithm::EdDSA);
    let transaction = sign_transaction(Algorithm::EdDSA, &transaction_claims());
    assert!(matches!(
        verifier.verify(&transaction, NOW),
        Err(VerifyError::WrongType)
    ));
    let access = sign(Algorithm::EdDSA, &claims());
    assert!(matches!(
        verifier.verify_transaction(&access, NOW),
        Err(VerifyError::WrongType)
    ));
    assert_eq!(
        verifier.verify_any(&access, NOW).unwrap(),
        VerifiedToken::Access(claims())
    );
    // The type is the header's: an access claim set signed under a transaction header is
    // not a transaction token (its scope names two operations).
    let access_claims_as_transaction = forge_with_real_key(
        Algorithm::EdDSA,
        &transaction_header(Algorithm::EdDSA),
        &payload(),
    );
    assert!(matches!(
        verifier.verify_transaction(&access_claims_as_transaction, NOW),
        Err(VerifyError::NotOneOperation)
    ));
}

#[test]
fn only_the_transaction_types_are_accepted_by_the_transaction_verifier() {
    let key = stored_key(Algorithm::EdDSA);
    let payload = serde_json::to_string(&transaction_claims()).unwrap();
    let with_type = |typ: Option<&str>| {
        let typ = typ
            .map(|typ| format!(r#""typ":"{typ}","#))
            .unwrap_or_default();
        let header = format!(r#"{{{typ}"alg":"EdDSA","kid":"{}"}}"#, key.kid);
        let token = forge_with_real_key(Algorithm::EdDSA, &header, &payload);
        (
            verifier(Algorithm::EdDSA).verify_transaction(&token, NOW),
            verifier(Algorithm::EdDSA).verify_any(&token, NOW),
        )
    };
    for accepted in [
        "txntoken+jwt",
        "TxnToken+JWT",
        "application/txntoken+jwt",
        "APPLICATION/txntoken+jwt",
    ] {
        let (transaction, any) = with_type(Some(accepted));
        assert!(transaction.is_ok(), "{accepted}");
        assert!(
            matches!(any, Ok(VerifiedToken::Transaction(_))),
            "{accepted}"
        );
    }
    for refused in [
        Some("at+jwt"),
        Some("application/at+jwt"),
        Some("JWT"),
        Some("txn+jwt"),
        Some("txntoken+jwt "),
        Some("application/"),
        Some("applicationtxntoken+jwt"),
        Some(""),
        None,
    ] {
        assert!(
            matches!(with_type(refused).0, Err(VerifyError::WrongType)),
            "{refused:?}"
        );
    }
}

#[test]
fn the_header_is_held_to_the_access_token_rules() {
    let key = stored_key(Algorithm::EdDSA);
    let payload = serde_json::to_string(&transaction_claims()).unwrap();
    let verifier = verifier(Algorithm::EdDSA);
    let unsigned = format!(
        "{}.{}.",
        b64(format!(
            r#"{{"typ":"txntoken+jwt","alg":"none","kid":"{}"}}"#,
            key.kid
        )
        .as_bytes()),
        b64(payload.as_bytes())
    );
    assert!(matches!(
        verifier.verify_transaction(&unsigned, NOW),
        Err(VerifyError::AlgorithmMismatch { .. })
    ));
    for member in [r#""jku":"https://evil.example/jwks""#, r#""crit":["exp"]"#] {
        let header = format!(
            r#"{{"typ":"txntoken+jwt","alg":"EdDSA","kid":"{}",{member}}}"#,
            key.kid
        );
        let token = forge_with_real_key(Algorithm::EdDSA, &header, &payload);
        assert!(
            matches!(
                verifier.verify_transaction(&token, NOW),
                Err(VerifyError::RefusedHeader { .. })
            ),
            "{member}"
        );
    }
    let honest = sign_transaction(Algorithm::EdDSA, &transaction_claims());
    let mut flipped = honest.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    assert!(matches!(
        verifier.verify_transaction(std::str::from_utf8(&flipped).unwrap(), NOW),
        Err(VerifyError::BadSignature | VerifyError::Encoding { .. })
    ));
    let duplicate = forge_with_real_key(
        Algorithm::EdDSA,
        &transaction_header(Algorithm::EdDSA),
        &payload.replacen('{', r#"{"scope":"export","#, 1),
    );
    assert!(matches!(
        verifier.verify_transaction(&duplicate, NOW),
        Err(VerifyError::BadClaims(_))
    ));
}

#[test]
fn the_audience_is_exactly_one_configured_audience() {
    assert!(verify_forged(|_| {}).is_ok());
    assert!(matches!(
        verify_forged(|claims| claims["aud"] = "other".into()),
        Err(VerifyError::WrongAudience)
    ));
    assert!(matches!(
        verify_forged(|claims| claims["aud"] = "".into()),
        Err(VerifyError::WrongAudience)
    ));
    for several in [json!([AUDIENCE]), json!([AUDIENCE, "other"]), json!([])] {
        assert!(
            matches!(
                verify_forged(|claims| claims["aud"] = several.clone()),
                Err(VerifyError::BadClaims(_))
            ),
            "{several}"
        );
    }
    assert!(matches!(
        verify_forged(|claims| claims["iss"] = "https://evil.example".into()),
        Err(VerifyError::WrongIssuer)
    ));
}

#[test]
fn the_scope_is_exactly_one_operation() {
    for bad in ["", "refund export", " refund", "refund\u{7f}", "ré"] {
        assert!(
            matches!(
                verify_forged(|claims| claims["scope"] = bad.into()),
                Err(VerifyError::NotOneOperation)
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        verify_forged(|claims| claims["scope"] = json!(["refund"])),
        Err(VerifyError::BadClaims(_))
    ));
    assert!(matches!(
        verify_forged(|claims| {
            claims.as_object_mut().unwrap().remove("scope");
        }),
        Err(VerifyError::BadClaims(_))
    ));
}

#[test]
fn required_claims_must_be_present_and_not_empty() {
    for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "sid", "scope"] {
        assert!(
            matches!(
                verify_forged(|claims| {
                    claims.as_object_mut().unwrap().remove(claim);
                }),
                Err(VerifyError::BadClaims(_))
            ),
            "{claim}"
        );
    }
    for claim in ["sub", "jti", "sid", "txn"] {
        assert!(
            matches!(
                verify_forged(|claims| claims[claim] = "".into()),
                Err(VerifyError::EmptyClaim { claim: named }) if named == claim
            ),
            "{claim}"
        );
    }
    for bad in [json!(7), json!(null), json!(["t"])] {
        assert!(
            matches!(
                verify_forged(|claims| claims["txn"] = bad.clone()),
                Err(VerifyError::BadClaims(_))
            ),
            "txn {bad}"
        );
    }
    let without_txn = verify_forged(|claims| {
        claims.as_object_mut().unwrap().remove("txn");
    })
    .unwrap();
    assert_eq!(without_txn.transaction_id(), "txn-1", "falls back to jti");
}

#[test]
fn time_claims_and_the_lifetime_bound_are_checked() {
    // Leeway 30 s: expired once now >= exp + 30.
    let verifier = verifier(Algorithm::EdDSA);
    let token = sign_transaction(Algorithm::EdDSA, &transaction_claims());
    assert!(verifier.verify_transaction(&token, NOW + 59).is_ok());
    assert!(matches!(
        verifier.verify_transaction(&token, NOW + 60),
        Err(VerifyError::Expired)
    ));
    assert!(matches!(
        verify_forged(|claims| claims["nbf"] = (NOW + 31).into()),
        Err(VerifyError::NotYetValid)
    ));
    assert!(matches!(
        verify_forged(|claims| claims["iat"] = (NOW + 31).into()),
        Err(VerifyError::IssuedInFuture)
    ));
    for bad in [json!("1700000030"), json!(1.5), json!(null)] {
        assert!(
            matches!(
                verify_forged(|claims| claims["exp"] = bad.clone()),
                Err(VerifyError::BadClaims(_))
            ),
            "exp {bad}"
        );
    }
    // Default bound 5 min + leeway; a signing key cannot mint hour-long one-time tokens.
    assert!(verify_forged(|claims| claims["exp"] = (NOW + 330).into()).is_ok());
    assert!(matches!(
        verify_forged(|claims| claims["exp"] = (NOW + 331).into()),
        Err(VerifyError::LifetimeTooLong)
    ));
    let mut settings = settings();
    settings.max_transaction_lifetime = Duration::from_secs(30);
    let strict = keyring(Algorithm::EdDSA).verifier(settings);
    assert!(strict.verify_transaction(&token, NOW).is_ok());
    let longer = forged(|claims| claims["exp"] = (NOW + 61).into());
    assert!(matches!(
        strict.verify_transaction(&longer, NOW),
        Err(VerifyError::LifetimeTooLong)
    ));
    assert_eq!(
        VerifierSettings::new(ISSUER, vec![]).max_transaction_lifetime,
        Duration::from_secs(300)
    );
}

#[test]
fn the_actor_chain_is_typed_and_bounded() {
    let nested = |depth: usize| {
        let mut actor = json!({"sub": "client-0"});
        for level in 1..depth {
            actor = json!({"sub": format!("client-{level}"), "act": actor});
        }
        actor
    };
    let deepest = verify_forged(|claims| claims["act"] = nested(Actor::MAX_DEPTH)).unwrap();
    assert_eq!(deepest.act.unwrap().depth(), Actor::MAX_DEPTH);
    for bad in [
        nested(Actor::MAX_DEPTH + 1),
        json!(null),
        json!("cart"),
        json!({}),
        json!({"sub": ""}),
        json!({"sub": "cart", "act": null}),
        json!({"sub": "cart", "act": ["web"]}),
    ] {
        assert!(
            matches!(
                verify_forged(|claims| claims["act"] = bad.clone()),
                Err(VerifyError::BadClaims(_))
            ),
            "act {bad}"
        );
    }
}

#[test]
fn an_access_token_carries_a_checked_actor_chain() {
    let mut claims = claims();
    let chain = Actor::new("gateway").after(Actor::new("cart"));
    claims.set_actor(Some(&chain));
    let token = sign(Algorithm::EdDSA, &claims);
    let verified = verifier(Algorithm::EdDSA).verify(&token, NOW).unwrap();
    assert_eq!(verified.actor().unwrap(), Some(chain));
    assert_eq!(
        verified.extra["act"],
        json!({"sub": "gateway", "act": {"sub": "cart"}})
    );
    claims.set_actor(None);
    assert_eq!(claims.actor().unwrap(), None);

    let mut too_deep = Actor::new("client-0");
    for level in 1..=Actor::MAX_DEPTH {
        too_deep = Actor::new(format!("client-{level}")).after(too_deep);
    }
    for bad in [too_deep.to_value(), json!(null), json!({"sub": 1})] {
        let mut value = serde_json::to_value(common::claims()).unwrap();
        value["act"] = bad.clone();
        let token = forge_with_real_key(
            Algorithm::EdDSA,
            &header(stored_key(Algorithm::EdDSA), ""),
            &value.to_string(),
        );
        assert!(
            matches!(
                verifier(Algorithm::EdDSA).verify(&token, NOW),
                Err(VerifyError::BadClaims(_))
            ),
            "act {bad}"
        );
    }
}

#[test]
fn signing_refuses_what_every_verifier_would_refuse() {
    let signer = keyring(Algorithm::EdDSA).signer(NOW).unwrap();
    let mut no_audience = transaction_claims();
    no_audience.aud = String::new();
    assert!(matches!(
        signer.sign_transaction(&no_audience),
        Err(SignError::EmptyAudience)
    ));
    for scope in ["", "refund export"] {
        let mut claims = transaction_claims();
        claims.scope = scope.to_owned();
        assert!(
            matches!(
                signer.sign_transaction(&claims),
                Err(SignError::NotOneOperation)
            ),
            "{scope:?}"
        );
    }
}
