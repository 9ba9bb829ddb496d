#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests may unwrap: a panic there is a failed test, which is the point.
//! An independent JOSE implementation (jwt-simple, pure Rust, no jsonwebtoken or aws-lc)
//! verifies our tokens using nothing but the published JWKS JSON.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jwt_simple::prelude::*;
use tessera_jose::Algorithm;

fn member(jwk: &serde_json::Value, name: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap()
}

fn options() -> VerificationOptions {
    VerificationOptions {
        artificial_time: Some(UnixTimeStamp::from_secs(NOW as u64)),
        allowed_issuers: Some(HashSet::from_strings(&[ISSUER])),
        allowed_audiences: Some(HashSet::from_strings(&[AUDIENCE])),
        ..Default::default()
    }
}

/// Verifies with jwt-simple, keys built only from the JWKS JSON text.
fn independent_verify(
    algorithm: Algorithm,
    token: &str,
) -> Result<JWTClaims<NoCustomClaims>, jwt_simple::Error> {
    let json = serde_json::to_string(&keyring(algorithm).jwks(NOW)).unwrap();
    let jwks: serde_json::Value = serde_json::from_str(&json).unwrap();
    let jwk = &jwks["keys"][0];
    match algorithm {
        Algorithm::EdDSA => Ed25519PublicKey::from_bytes(&member(jwk, "x"))
            .unwrap()
            .verify_token(token, Some(options())),
        Algorithm::ES256 => {
            let point = [&[4u8][..], &member(jwk, "x"), &member(jwk, "y")].concat();
            ES256PublicKey::from_bytes(&point)
                .unwrap()
                .verify_token(token, Some(options()))
        }
        Algorithm::RS256 => RS256PublicKey::from_components(&member(jwk, "n"), &member(jwk, "e"))
            .unwrap()
            .verify_token(token, Some(options())),
        Algorithm::HS256 => unreachable!("HMAC keys are never published"),
    }
}

#[test]
fn jwt_simple_verifies_our_tokens_from_the_jwks_alone() {
    for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let token = sign(algorithm, &claims());
        let verified = independent_verify(algorithm, &token).unwrap();
        assert_eq!(verified.subject.as_deref(), Some("user-1"), "{algorithm}");
        assert_eq!(verified.jwt_id.as_deref(), Some("token-1"));
    }
}

#[test]
fn jwt_simple_rejects_our_tokens_after_one_payload_byte_changes() {
    for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let token = sign(algorithm, &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
        let position = payload
            .windows(6)
            .position(|window| window == b"user-1")
            .unwrap()
            + 5;
        payload[position] = b'2';
        let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
        assert!(
            independent_verify(algorithm, &tampered).is_err(),
            "{algorithm}"
        );
        assert!(verifier(algorithm).verify(&tampered, NOW).is_err());
    }
}
