#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests may unwrap: a panic there is a failed test, which is the point.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use tessera_jose::{
    Algorithm, Audience, JwkProblem, Jwks, KeyError, Keyring, SignError, StoredKey, Verifier,
    VerifyError,
};

#[test]
fn every_algorithm_round_trips() {
    for algorithm in Algorithm::ALL {
        let signer = keyring(algorithm).signer(NOW).unwrap();
        assert_eq!(signer.algorithm(), algorithm);
        assert_eq!(signer.kid(), stored_key(algorithm).kid);
        let token = signer.sign(&claims()).unwrap();
        assert_eq!(
            verifier(algorithm).verify(&token, NOW).unwrap(),
            claims(),
            "{algorithm}"
        );
    }
}

#[test]
fn issued_header_is_typed_and_names_its_key() {
    for algorithm in Algorithm::ALL {
        let token = sign(algorithm, &claims());
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(
            header.kid.as_deref(),
            Some(stored_key(algorithm).kid.as_str())
        );
        assert_eq!(header.alg, jose(algorithm));
    }
}

#[test]
fn forger_with_honest_header_makes_valid_tokens() {
    // Control for the attack corpus: the forger itself is sound.
    for algorithm in Algorithm::ALL {
        let token = forge_with_real_key(algorithm, &header(stored_key(algorithm), ""), &payload());
        assert_eq!(
            verifier(algorithm).verify(&token, NOW).unwrap(),
            claims(),
            "{algorithm}"
        );
    }
}

#[test]
fn signing_refuses_an_empty_audience() {
    let mut claims = claims();
    claims.aud = Audience::Many(vec![]);
    let signer = keyring(Algorithm::EdDSA).signer(NOW).unwrap();
    assert!(matches!(
        signer.sign(&claims),
        Err(SignError::EmptyAudience)
    ));
}

#[test]
fn jwks_has_public_members_only_and_no_hmac_key() {
    let keys: Vec<StoredKey> = Algorithm::ALL
        .into_iter()
        .map(|algorithm| stored_key(algorithm).clone())
        .collect();
    let keyring = Keyring::new(keys, Duration::from_secs(60)).unwrap();
    let json = serde_json::to_value(keyring.jwks(NOW)).unwrap();
    let published = json["keys"].as_array().unwrap();
    assert_eq!(published.len(), 3);
    let allowed: BTreeSet<&str> = ["kty", "kid", "alg", "use", "crv", "x", "y", "n", "e"].into();
    for jwk in published {
        let members: BTreeSet<&str> = jwk
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(members.is_subset(&allowed), "{members:?}");
        for private in ["d", "p", "q", "k", "dp", "dq", "qi"] {
            assert!(!members.contains(private));
        }
        assert_eq!(jwk["use"], "sig");
        assert_ne!(jwk["kid"], stored_key(Algorithm::HS256).kid.as_str());
    }
    let shapes: BTreeSet<(String, String)> = published
        .iter()
        .map(|jwk| {
            (
                jwk["kty"].as_str().unwrap().to_owned(),
                jwk["alg"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> =
        [("OKP", "EdDSA"), ("EC", "ES256"), ("RSA", "RS256")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .into();
    assert_eq!(shapes, expected);
    assert_eq!(
        published.iter().find(|jwk| jwk["kty"] == "OKP").unwrap()["crv"],
        "Ed25519"
    );
    assert_eq!(
        published.iter().find(|jwk| jwk["kty"] == "EC").unwrap()["crv"],
        "P-256"
    );
}

#[test]
fn verifier_built_from_published_jwks_verifies_keyring_tokens() {
    let keys: Vec<StoredKey> = Algorithm::ALL
        .into_iter()
        .map(|algorithm| stored_key(algorithm).clone())
        .collect();
    let keyring = Keyring::new(keys, Duration::from_secs(60)).unwrap();
    let json = serde_json::to_vec(&keyring.jwks(NOW)).unwrap();
    let verifier = Verifier::from_jwks(&Jwks::from_json(&json).unwrap(), settings()).unwrap();
    for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        assert_eq!(
            verifier.verify(&sign(algorithm, &claims()), NOW).unwrap(),
            claims()
        );
    }
    // The HMAC key is not published, so its tokens are unknown to other services.
    assert!(matches!(
        verifier.verify(&sign(Algorithm::HS256, &claims()), NOW),
        Err(VerifyError::UnknownKey)
    ));
}

#[test]
fn rotation_publishes_before_signing_and_unpublishes_after_the_grace() {
    let grace = 300;
    let old = StoredKey::generate(Algorithm::EdDSA, 0, 0).unwrap();
    let new = StoredKey::generate(Algorithm::EdDSA, 100, 200).unwrap();
    let ring = |old: &StoredKey| {
        Keyring::new(vec![old.clone(), new.clone()], Duration::from_secs(grace)).unwrap()
    };
    let kids = |keyring: &Keyring, now| {
        keyring
            .jwks(now)
            .keys
            .into_iter()
            .map(|jwk| jwk.kid.unwrap())
            .collect::<Vec<_>>()
    };

    let before_retirement = ring(&old);
    assert_eq!(kids(&before_retirement, 50), std::slice::from_ref(&old.kid));
    assert_eq!(before_retirement.signer(50).unwrap().kid(), old.kid);
    // Published at 100, not signing until 200.
    assert_eq!(
        kids(&before_retirement, 150),
        [old.kid.clone(), new.kid.clone()]
    );
    assert_eq!(before_retirement.signer(150).unwrap().kid(), old.kid);
    assert_eq!(before_retirement.signer(200).unwrap().kid(), new.kid);

    let mut retired = old.clone();
    retired.retired_at = Some(200);
    let after = ring(&retired);
    let verifier = after.verifier(settings());
    let mut claims = claims();
    (claims.iat, claims.nbf, claims.exp) = (150, None, 10_000);
    let old_token = before_retirement
        .signer(150)
        .unwrap()
        .sign(&claims)
        .unwrap();
    assert_eq!(after.signer(199).unwrap().kid(), old.kid);
    assert_eq!(after.signer(200).unwrap().kid(), new.kid);
    assert!(verifier.verify(&old_token, 200 + grace as i64 - 1).is_ok());
    assert!(kids(&after, 200 + grace as i64 - 1).contains(&old.kid));
    assert!(matches!(
        verifier.verify(&old_token, 200 + grace as i64),
        Err(VerifyError::UnknownKey)
    ));
    assert_eq!(
        kids(&after, 200 + grace as i64),
        std::slice::from_ref(&new.kid)
    );

    // A key is not trusted before it is published.
    let early = forge(
        &header(&new, ""),
        &serde_json::to_string(&claims).unwrap(),
        &encoding_key(&new),
        jose(Algorithm::EdDSA),
    );
    assert!(matches!(
        verifier.verify(&early, 99),
        Err(VerifyError::UnknownKey)
    ));
    assert!(verifier.verify(&early, 300).is_ok());
}

#[test]
fn no_signer_when_no_key_is_active() {
    let key = StoredKey::generate(Algorithm::EdDSA, 100, 200).unwrap();
    let keyring = Keyring::new(vec![key], Duration::ZERO).unwrap();
    assert!(keyring.signer(199).is_none());
    assert!(keyring.signer(200).is_some());
}

#[test]
fn keyring_refuses_duplicate_kids() {
    let key = stored_key(Algorithm::EdDSA).clone();
    let result = Keyring::new(vec![key.clone(), key], Duration::ZERO);
    assert!(matches!(result, Err(KeyError::DuplicateKid { .. })));
}

fn jwks_with(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Verifier, KeyError> {
    let mut value = serde_json::to_value(keyring(Algorithm::ES256).jwks(NOW)).unwrap();
    edit(&mut value["keys"][0]);
    Verifier::from_jwks(&serde_json::from_value(value).unwrap(), settings())
}

fn problem(result: Result<Verifier, KeyError>) -> JwkProblem {
    match result {
        Err(KeyError::InvalidJwk { problem, .. }) => problem,
        other => panic!("expected InvalidJwk, got {other:?}"),
    }
}

#[test]
fn jwks_import_refuses_unsafe_keys() {
    assert!(jwks_with(|_| {}).is_ok());
    assert!(matches!(
        problem(jwks_with(|jwk| jwk["d"] = "AAAA".into())),
        JwkProblem::PrivateMember { member: "d" }
    ));
    assert!(matches!(
        problem(jwks_with(|jwk| jwk["use"] = "enc".into())),
        JwkProblem::NotForSignatures
    ));
    assert!(matches!(
        problem(jwks_with(
            |jwk| jwk["key_ops"] = serde_json::json!(["encrypt"])
        )),
        JwkProblem::NotForSignatures
    ));
    assert!(matches!(
        problem(jwks_with(|jwk| jwk["crv"] = "P-384".into())),
        JwkProblem::AlgorithmDoesNotFitKey
    ));
    assert!(matches!(
        problem(jwks_with(|jwk| jwk["alg"] = "EdDSA".into())),
        JwkProblem::AlgorithmDoesNotFitKey
    ));
    assert!(matches!(
        problem(jwks_with(|jwk| {
            jwk.as_object_mut().unwrap().remove("alg");
        })),
        JwkProblem::MissingAlgorithm
    ));
    assert!(matches!(
        problem(jwks_with(|jwk| jwk["alg"] = "none".into())),
        JwkProblem::UnsupportedAlgorithm
    ));
    // Off the curve: y + 1.
    assert!(matches!(
        problem(jwks_with(|jwk| {
            let mut y = base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                jwk["y"].as_str().unwrap(),
            )
            .unwrap();
            y[31] ^= 1;
            jwk["y"] = b64(&y).into();
        })),
        JwkProblem::InvalidPublicKey
    ));
    assert!(matches!(
        jwks_with(|jwk| {
            jwk.as_object_mut().unwrap().remove("kid");
        }),
        Err(KeyError::MissingKid)
    ));
    let symmetric =
        serde_json::json!({"keys":[{"kty":"oct","alg":"HS256","kid":"h","k":"c2VjcmV0"}]});
    assert!(matches!(
        Verifier::from_jwks(&serde_json::from_value(symmetric).unwrap(), settings()),
        Err(KeyError::InvalidJwk {
            problem: JwkProblem::PrivateMember { member: "k" },
            ..
        })
    ));
}

#[test]
fn jwks_import_refuses_weak_rsa_and_duplicate_kids() {
    let rsa = serde_json::to_value(keyring(Algorithm::RS256).jwks(NOW)).unwrap()["keys"][0].clone();
    let mut short = rsa.clone();
    short["n"] = b64(&[0xC5; 128]).into();
    let mut exponent_one = rsa.clone();
    exponent_one["e"] = "AQ".into();
    let refuse = |jwk: serde_json::Value| {
        Verifier::from_jwks(
            &serde_json::from_value(serde_json::json!({"keys":[jwk]})).unwrap(),
            settings(),
        )
    };
    assert!(refuse(rsa.clone()).is_ok());
    assert!(matches!(
        problem(refuse(short)),
        JwkProblem::RsaModulusSize { bits: 1024 }
    ));
    assert!(matches!(
        problem(refuse(exponent_one)),
        JwkProblem::InvalidPublicKey
    ));
    let twice: Jwks =
        serde_json::from_value(serde_json::json!({"keys":[rsa.clone(), rsa]})).unwrap();
    assert!(matches!(
        Verifier::from_jwks(&twice, settings()),
        Err(KeyError::DuplicateKid { .. })
    ));
}
