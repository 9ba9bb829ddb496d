#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests may unwrap: a panic there is a failed test, which is the point.
//! The JWT/JOSE attack corpus (security checklist §2): each construction differs from an
//! honest token (which `round_trip.rs` shows verifies) in exactly the attacked place.

mod common;

use std::time::Duration;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use jsonwebtoken::EncodingKey;
use tessera_jose::{Algorithm, TokenPart, VerifierSettings, VerifyError};

const ASYMMETRIC: [Algorithm; 3] = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

fn verify(algorithm: Algorithm, token: &str) -> Result<tessera_jose::AccessClaims, VerifyError> {
    verifier(algorithm).verify(token, NOW)
}

fn segments(token: &str) -> Vec<&str> {
    token.split('.').collect()
}

#[test]
fn alg_none_in_every_spelling_is_rejected_with_and_without_signature() {
    for algorithm in Algorithm::ALL {
        let key = stored_key(algorithm);
        let honest = sign(algorithm, &claims());
        let signature = segments(&honest)[2];
        for none in ["none", "None", "NONE", "nOnE", "noNE", "none "] {
            let header = format!(r#"{{"typ":"at+jwt","alg":"{none}","kid":"{}"}}"#, key.kid);
            let unsigned = format!("{}.{}.", b64(header.as_bytes()), b64(payload().as_bytes()));
            assert!(
                matches!(verify(algorithm, &unsigned), Err(VerifyError::AlgorithmMismatch { expected }) if expected == algorithm),
                "{none}"
            );
            let kept = format!("{unsigned}{signature}");
            assert!(
                matches!(
                    verify(algorithm, &kept),
                    Err(VerifyError::AlgorithmMismatch { .. })
                ),
                "{none}"
            );
        }
    }
}

#[test]
fn malformed_alg_values_are_rejected() {
    let key = stored_key(Algorithm::EdDSA);
    for alg in [
        r#""eddsa""#,
        r#""EdDSA ""#,
        r#""Ed25519""#,
        r#"["EdDSA"]"#,
        "null",
        "1",
    ] {
        let header = format!(r#"{{"typ":"at+jwt","alg":{alg},"kid":"{}"}}"#, key.kid);
        let result = verify(
            Algorithm::EdDSA,
            &forge_with_real_key(Algorithm::EdDSA, &header, &payload()),
        );
        assert!(
            matches!(
                result,
                Err(VerifyError::AlgorithmMismatch { .. } | VerifyError::BadHeader(_))
            ),
            "{alg}"
        );
    }
    let missing = format!(r#"{{"typ":"at+jwt","kid":"{}"}}"#, key.kid);
    let result = verify(
        Algorithm::EdDSA,
        &forge_with_real_key(Algorithm::EdDSA, &missing, &payload()),
    );
    assert!(matches!(result, Err(VerifyError::BadHeader(_))));
}

/// Every serialization of the victim's public key an attacker might HMAC with.
fn public_key_encodings(algorithm: Algorithm) -> Vec<(&'static str, Vec<u8>)> {
    let key = stored_key(algorithm);
    let (raw, spki) = match algorithm {
        Algorithm::EdDSA => {
            let pair = Ed25519KeyPair::from_pkcs8(&key.secret).unwrap();
            (
                pair.public_key().as_ref().to_vec(),
                pair.public_key().as_der().unwrap().as_ref().to_vec(),
            )
        }
        Algorithm::ES256 => {
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.secret).unwrap();
            (
                pair.public_key().as_ref().to_vec(),
                pair.public_key().as_der().unwrap().as_ref().to_vec(),
            )
        }
        Algorithm::RS256 => {
            let pair = RsaKeyPair::from_pkcs8(&key.secret).unwrap();
            (
                pair.public_key().as_ref().to_vec(),
                pair.public_key().as_der().unwrap().as_ref().to_vec(),
            )
        }
        Algorithm::HS256 => unreachable!(),
    };
    let body = STANDARD.encode(&spki);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
        lines.join("\n")
    );
    let jwks = keyring(algorithm).jwks(NOW);
    let jwk = serde_json::to_vec(&jwks.keys[0]).unwrap();
    let mut encodings = vec![
        ("raw public key", raw.clone()),
        ("SPKI DER", spki),
        ("PEM", pem.clone().into_bytes()),
        ("PEM with newline", format!("{pem}\n").into_bytes()),
        ("JWK JSON", jwk),
        ("JWKS JSON", serde_json::to_vec(&jwks).unwrap()),
        ("base64url raw key", b64(&raw).into_bytes()),
    ];
    if let Some(x) = &jwks.keys[0].x {
        encodings.push(("JWK x text", x.clone().into_bytes()));
        encodings.push(("JWK x bytes", URL_SAFE_NO_PAD.decode(x).unwrap()));
    }
    encodings
}

#[test]
fn hs256_signed_with_the_public_key_in_any_encoding_is_rejected() {
    for algorithm in ASYMMETRIC {
        let key = stored_key(algorithm);
        let header = format!(r#"{{"typ":"at+jwt","alg":"HS256","kid":"{}"}}"#, key.kid);
        for (name, secret) in public_key_encodings(algorithm) {
            let token = forge(
                &header,
                &payload(),
                &EncodingKey::from_secret(&secret),
                jsonwebtoken::Algorithm::HS256,
            );
            assert!(
                matches!(verify(algorithm, &token), Err(VerifyError::AlgorithmMismatch { expected }) if expected == algorithm),
                "{algorithm} {name}"
            );
        }
    }
}

#[test]
fn header_alg_of_another_asymmetric_family_is_rejected() {
    // An EdDSA header with the ES256 key's kid, signed by the EdDSA key.
    let header = format!(
        r#"{{"typ":"at+jwt","alg":"EdDSA","kid":"{}"}}"#,
        stored_key(Algorithm::ES256).kid
    );
    let token = forge_with_real_key(Algorithm::EdDSA, &header, &payload());
    assert!(matches!(
        verify(Algorithm::ES256, &token),
        Err(VerifyError::AlgorithmMismatch {
            expected: Algorithm::ES256
        })
    ));
}

#[test]
fn kid_injection_and_missing_kid_are_rejected() {
    let hmac = |kid: &str, secret: &[u8]| {
        let header = format!(r#"{{"typ":"at+jwt","alg":"HS256","kid":{kid}}}"#);
        forge(
            &header,
            &payload(),
            &EncodingKey::from_secret(secret),
            jsonwebtoken::Algorithm::HS256,
        )
    };
    let hs = Algorithm::HS256;
    assert!(matches!(
        verify(hs, &hmac(r#""../../../../dev/null""#, b"")),
        Err(VerifyError::UnknownKey)
    ));
    assert!(matches!(
        verify(hs, &hmac(r#""x' UNION SELECT 'secret'--""#, b"secret")),
        Err(VerifyError::UnknownKey)
    ));
    assert!(matches!(
        verify(hs, &hmac(r#""|id""#, b"")),
        Err(VerifyError::UnknownKey)
    ));
    assert!(matches!(
        verify(hs, &hmac(r#""unknown-kid""#, b"")),
        Err(VerifyError::UnknownKey)
    ));
    assert!(matches!(
        verify(hs, &hmac("123", b"")),
        Err(VerifyError::BadHeader(_))
    ));
    assert!(matches!(
        verify(hs, &hmac(&format!("\"{}\"", "k".repeat(10_000)), b"")),
        Err(VerifyError::TooLarge { limit: 8192 })
    ));
    let missing = forge_with_real_key(
        Algorithm::EdDSA,
        r#"{"typ":"at+jwt","alg":"EdDSA"}"#,
        &payload(),
    );
    assert!(matches!(
        verify(Algorithm::EdDSA, &missing),
        Err(VerifyError::MissingKid)
    ));
}

#[test]
fn embedded_keys_and_key_urls_are_refused_even_when_they_carry_the_right_key() {
    for algorithm in ASYMMETRIC {
        let key = stored_key(algorithm);
        let own_jwk = serde_json::to_string(&keyring(algorithm).jwks(NOW).keys[0]).unwrap();
        for (member, value) in [
            ("jwk", own_jwk.as_str()),
            ("jku", r#""http://127.0.0.1:1/jwks.json""#),
            ("x5u", r#""http://127.0.0.1:1/cert.pem""#),
            ("x5c", r#"["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]"#),
            ("x5t", r#""AAAA""#),
            ("x5t#S256", r#""AAAA""#),
            ("cty", r#""JWT""#),
            ("zip", r#""DEF""#),
            ("enc", r#""A128GCM""#),
            ("b64", "false"),
        ] {
            let token = forge_with_real_key(
                algorithm,
                &header(key, &format!(r#""{member}":{value}"#)),
                &payload(),
            );
            assert!(
                matches!(verify(algorithm, &token), Err(VerifyError::RefusedHeader { member: refused }) if refused == member),
                "{algorithm} {member}"
            );
        }
    }
}

#[test]
fn crit_in_any_form_is_refused() {
    let key = stored_key(Algorithm::EdDSA);
    for crit in [
        r#""crit":["exp"],"exp":1"#,
        r#""crit":["b64"],"b64":false"#,
        r#""crit":[]"#,
        r#""crit":"b64""#,
        r#""crit":["alg"]"#,
        r#""crit":["missing"]"#,
    ] {
        let token = forge_with_real_key(Algorithm::EdDSA, &header(key, crit), &payload());
        assert!(
            matches!(
                verify(Algorithm::EdDSA, &token),
                Err(VerifyError::RefusedHeader { member: "crit" })
            ),
            "{crit}"
        );
    }
}

#[test]
fn structural_damage_is_rejected() {
    let token = sign(Algorithm::EdDSA, &claims());
    let [h, p, s] = segments(&token)[..] else {
        panic!()
    };
    let check = |candidate: String, expected: fn(&VerifyError) -> bool| {
        let error = verify(Algorithm::EdDSA, &candidate).unwrap_err();
        assert!(expected(&error), "{error:?} for {candidate:.40}");
    };
    check(format!("{h}.{p}."), |e| {
        matches!(e, VerifyError::MissingSignature)
    });
    check(format!("{h}.{p}"), |e| matches!(e, VerifyError::Malformed));
    check(format!("{h}.{p}.{s}.{s}"), |e| {
        matches!(e, VerifyError::Malformed)
    });
    check(format!("{h}.{p}.{s}."), |e| {
        matches!(e, VerifyError::Malformed)
    });
    check(format!("{h}..{p}.{s}"), |e| {
        matches!(e, VerifyError::Malformed)
    });
    check(format!("{h}..{s}"), |e| {
        matches!(e, VerifyError::BadClaims(_)) || matches!(e, VerifyError::BadSignature)
    });
    check(format!(".{p}.{s}"), |e| {
        matches!(e, VerifyError::BadHeader(_))
    });
    check(String::new(), |e| matches!(e, VerifyError::Malformed));
    check(format!(" {token}"), |e| {
        matches!(
            e,
            VerifyError::Encoding {
                part: TokenPart::Header,
                ..
            }
        )
    });
    check(format!("{token} "), |e| {
        matches!(
            e,
            VerifyError::Encoding {
                part: TokenPart::Signature,
                ..
            }
        )
    });
    check(format!("{h}.{p}\n.{s}"), |e| {
        matches!(
            e,
            VerifyError::Encoding {
                part: TokenPart::Payload,
                ..
            }
        )
    });
    check(format!("{h}.{p}.{s}=="), |e| {
        matches!(
            e,
            VerifyError::Encoding {
                part: TokenPart::Signature,
                ..
            }
        )
    });
    check(format!("{h}=.{p}.{s}"), |e| {
        matches!(
            e,
            VerifyError::Encoding {
                part: TokenPart::Header,
                ..
            }
        )
    });
    check(format!("{h}.{p}.{}", &s[..s.len() - 1]), |e| {
        matches!(e, VerifyError::Encoding { .. } | VerifyError::BadSignature)
    });
    // A JSON-serialized JWS is not a compact token.
    check(
        format!(r#"{{"protected":"{h}","payload":"{p}","signature":"{s}"}}"#),
        |e| matches!(e, VerifyError::Malformed),
    );
}

#[test]
fn standard_alphabet_base64_is_rejected() {
    // Find a signature that uses a URL-safe-only character, then spell it the standard way.
    let signer = keyring(Algorithm::EdDSA).signer(NOW).unwrap();
    let token = (0..200)
        .map(|index| {
            let mut claims = claims();
            claims.jti = format!("token-{index}");
            signer.sign(&claims).unwrap()
        })
        .find(|token| segments(token)[2].contains(['-', '_']))
        .unwrap();
    assert!(verify(Algorithm::EdDSA, &token).is_ok());
    let [h, p, s] = segments(&token)[..] else {
        panic!()
    };
    let standard = s.replace('-', "+").replace('_', "/");
    assert!(matches!(
        verify(Algorithm::EdDSA, &format!("{h}.{p}.{standard}")),
        Err(VerifyError::Encoding {
            part: TokenPart::Signature,
            ..
        })
    ));
}

#[test]
fn non_canonical_trailing_bits_are_rejected_although_they_decode_to_the_same_bytes() {
    // 64 signature bytes -> 86 characters; the last carries 2 bits and 4 unused zero bits.
    let token = sign(Algorithm::EdDSA, &claims());
    let [h, p, s] = segments(&token)[..] else {
        panic!()
    };
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = alphabet
        .iter()
        .position(|c| *c == *s.as_bytes().last().unwrap())
        .unwrap();
    let sibling = alphabet[last | 1] as char;
    let tampered = format!("{h}.{p}.{}{sibling}", &s[..s.len() - 1]);
    let lax = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    );
    assert_eq!(
        lax.decode(&tampered[tampered.rfind('.').unwrap() + 1..])
            .unwrap(),
        URL_SAFE_NO_PAD.decode(s).unwrap()
    );
    assert!(matches!(
        verify(Algorithm::EdDSA, &tampered),
        Err(VerifyError::Encoding {
            part: TokenPart::Signature,
            ..
        })
    ));
}

#[test]
fn duplicate_members_in_header_and_claims_are_rejected() {
    let algorithm = Algorithm::EdDSA;
    let key = stored_key(algorithm);
    for duplicate in [
        r#""alg":"none""#,
        r#""alg":"EdDSA""#,
        r#""kid":"other""#,
        r#""typ":"JWT""#,
        r#""foo":1,"foo":2"#,
        r#""\u0061lg":"EdDSA""#,
    ] {
        let token = forge_with_real_key(algorithm, &header(key, duplicate), &payload());
        assert!(
            matches!(verify(algorithm, &token), Err(VerifyError::BadHeader(_))),
            "{duplicate}"
        );
    }
    let honest = payload();
    for duplicate in [
        r#""exp":99999999999"#,
        r#""aud":"other""#,
        r#""sub":"admin""#,
        r#""\u0073ub":"admin""#,
        r#""extra":1,"extra":2"#,
    ] {
        let payload = honest.replacen('{', &format!("{{{duplicate},"), 1);
        let token = forge_with_real_key(algorithm, &header(key, ""), &payload);
        assert!(
            matches!(verify(algorithm, &token), Err(VerifyError::BadClaims(_))),
            "{duplicate}"
        );
    }
}

#[test]
fn size_limit_applies_before_parsing_at_exactly_the_limit() {
    let token = sign(Algorithm::EdDSA, &claims());
    let with_limit = |limit| {
        let mut settings = settings();
        settings.max_token_bytes = limit;
        keyring(Algorithm::EdDSA).verifier(settings)
    };
    assert!(with_limit(token.len()).verify(&token, NOW).is_ok());
    assert!(matches!(
        with_limit(token.len() - 1).verify(&token, NOW),
        Err(VerifyError::TooLarge { .. })
    ));
    let oversized = format!("{token}{}", "A".repeat(8193 - token.len()));
    assert_eq!(oversized.len(), 8193);
    assert!(matches!(
        verify(Algorithm::EdDSA, &oversized),
        Err(VerifyError::TooLarge { limit: 8192 })
    ));
}

#[test]
fn only_access_token_types_are_accepted() {
    let algorithm = Algorithm::ES256;
    let key = stored_key(algorithm);
    let with_type = |typ: Option<&str>| {
        let typ = typ
            .map(|typ| format!(r#""typ":"{typ}","#))
            .unwrap_or_default();
        let header = format!(r#"{{{typ}"alg":"ES256","kid":"{}"}}"#, key.kid);
        verify(
            algorithm,
            &forge_with_real_key(algorithm, &header, &payload()),
        )
    };
    for accepted in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+JWT",
    ] {
        assert!(with_type(Some(accepted)).is_ok(), "{accepted}");
    }
    for refused in [
        Some("JWT"),
        Some("jwt"),
        Some("refresh+jwt"),
        Some("txntoken+jwt"),
        Some("application/txntoken+jwt"),
        Some("at+jwt "),
        Some(""),
        None,
    ] {
        assert!(
            matches!(with_type(refused), Err(VerifyError::WrongType)),
            "{refused:?}"
        );
    }
}

fn with_claims(
    edit: impl FnOnce(&mut serde_json::Value),
) -> Result<tessera_jose::AccessClaims, VerifyError> {
    let mut value = serde_json::to_value(claims()).unwrap();
    edit(&mut value);
    let token = forge_with_real_key(
        Algorithm::EdDSA,
        &header(stored_key(Algorithm::EdDSA), ""),
        &value.to_string(),
    );
    verify(Algorithm::EdDSA, &token)
}

#[test]
fn audience_and_issuer_are_checked() {
    assert!(with_claims(|claims| claims["aud"] = serde_json::json!(["other", "api"])).is_ok());
    assert!(matches!(
        with_claims(|claims| claims["aud"] = "other".into()),
        Err(VerifyError::WrongAudience)
    ));
    assert!(matches!(
        with_claims(|claims| claims["aud"] = "".into()),
        Err(VerifyError::WrongAudience)
    ));
    assert!(matches!(
        with_claims(|claims| claims["aud"] = serde_json::json!(["other"])),
        Err(VerifyError::WrongAudience)
    ));
    assert!(matches!(
        with_claims(|claims| claims["aud"] = serde_json::json!([])),
        Err(VerifyError::BadClaims(_))
    ));
    assert!(matches!(
        with_claims(|claims| claims["aud"] = serde_json::json!([1])),
        Err(VerifyError::BadClaims(_))
    ));
    assert!(matches!(
        with_claims(|claims| claims["iss"] = "https://evil.example".into()),
        Err(VerifyError::WrongIssuer)
    ));
    assert!(matches!(
        with_claims(|claims| claims["iss"] = "https://auth.example/".into()),
        Err(VerifyError::WrongIssuer)
    ));
    assert!(matches!(
        with_claims(|claims| claims["sid"] = "".into()),
        Err(VerifyError::EmptyClaim { claim: "sid" })
    ));
    for required in ["iss", "sub", "aud", "exp", "iat", "jti", "sid"] {
        let result = with_claims(|claims| {
            claims.as_object_mut().unwrap().remove(required);
        });
        assert!(
            matches!(result, Err(VerifyError::BadClaims(_))),
            "{required}"
        );
    }
}

#[test]
fn time_claims_honour_the_leeway_at_its_edges() {
    let set =
        |claim: &'static str, value: i64| with_claims(move |claims| claims[claim] = value.into());
    assert!(matches!(
        set("exp", NOW - LEEWAY),
        Err(VerifyError::Expired)
    ));
    assert!(set("exp", NOW - LEEWAY + 1).is_ok());
    assert!(matches!(
        set("exp", NOW - LEEWAY - 1),
        Err(VerifyError::Expired)
    ));
    assert!(matches!(set("exp", -1), Err(VerifyError::Expired)));
    assert!(set("nbf", NOW + LEEWAY).is_ok());
    assert!(matches!(
        set("nbf", NOW + LEEWAY + 1),
        Err(VerifyError::NotYetValid)
    ));
    assert!(set("iat", NOW + LEEWAY).is_ok());
    assert!(matches!(
        set("iat", NOW + LEEWAY + 1),
        Err(VerifyError::IssuedInFuture)
    ));
    assert!(
        with_claims(|claims| {
            claims.as_object_mut().unwrap().remove("nbf");
        })
        .is_ok()
    );
}

#[test]
fn leeway_is_capped_and_zero_leeway_expires_at_exp() {
    let mut claims = claims();
    let verifier_with = |leeway: u64| {
        let mut settings: VerifierSettings = settings();
        settings.leeway = Duration::from_secs(leeway);
        keyring(Algorithm::EdDSA).verifier(settings)
    };
    (claims.exp, claims.iat, claims.nbf) = (NOW, NOW - 10, None);
    let token = sign(Algorithm::EdDSA, &claims);
    assert!(matches!(
        verifier_with(0).verify(&token, NOW),
        Err(VerifyError::Expired)
    ));
    assert!(verifier_with(0).verify(&token, NOW - 1).is_ok());
    assert!(verifier_with(3600).verify(&token, NOW + 299).is_ok());
    assert!(matches!(
        verifier_with(3600).verify(&token, NOW + 300),
        Err(VerifyError::Expired)
    ));
}

#[test]
fn a_lifetime_beyond_the_bound_is_rejected_even_when_validly_signed() {
    // A leaked key minting a year-long token: signed correctly, every other claim right.
    let verifier_with = |max_lifetime: Option<Duration>| {
        let mut settings: VerifierSettings = settings();
        settings.max_lifetime = max_lifetime;
        keyring(Algorithm::EdDSA).verifier(settings)
    };
    let lifetime = |seconds: i64| {
        let mut claims = claims();
        (claims.iat, claims.exp) = (NOW, NOW + seconds);
        sign(Algorithm::EdDSA, &claims)
    };
    let year = lifetime(365 * 24 * 3600);
    assert!(
        verifier_with(None).verify(&year, NOW).is_ok(),
        "no bound by default"
    );
    let bounded = verifier_with(Some(Duration::from_secs(600)));
    assert!(matches!(
        bounded.verify(&year, NOW),
        Err(VerifyError::LifetimeTooLong)
    ));
    // The bound is `max_lifetime + leeway`, inclusive.
    assert!(bounded.verify(&lifetime(600 + LEEWAY), NOW).is_ok());
    assert!(matches!(
        bounded.verify(&lifetime(600 + LEEWAY + 1), NOW),
        Err(VerifyError::LifetimeTooLong)
    ));
    // A fractional bound rounds up to the next whole second.
    let fractional = verifier_with(Some(Duration::from_millis(600_500)));
    assert!(fractional.verify(&lifetime(601 + LEEWAY), NOW).is_ok());
    assert!(fractional.verify(&lifetime(602 + LEEWAY), NOW).is_err());
    // An `iat` far in the past cannot buy a longer life either.
    let mut old = claims();
    (old.iat, old.exp) = (i64::MIN, NOW + 60);
    assert!(matches!(
        bounded.verify(&sign(Algorithm::EdDSA, &old), NOW),
        Err(VerifyError::LifetimeTooLong)
    ));
}

#[test]
fn time_claims_of_the_wrong_json_type_are_rejected() {
    for claim in ["exp", "iat", "nbf"] {
        for value in [
            serde_json::json!("9999999999"),
            serde_json::json!(9_999_999_999.5),
            serde_json::json!(1e10),
            serde_json::json!(true),
            serde_json::Value::Null,
            serde_json::json!({}),
        ] {
            let result = with_claims(|claims| claims[claim] = value.clone());
            assert!(
                matches!(result, Err(VerifyError::BadClaims(_))),
                "{claim}: {value}"
            );
        }
    }
}

#[test]
fn claims_that_are_not_a_utf8_json_object_are_rejected() {
    let key = stored_key(Algorithm::EdDSA);
    let header = header(key, "");
    for payload in ["[]", "\"text\"", "\u{feff}{}", "null"] {
        let token = forge_with_real_key(Algorithm::EdDSA, &header, payload);
        assert!(
            matches!(
                verify(Algorithm::EdDSA, &token),
                Err(VerifyError::BadClaims(_))
            ),
            "{payload}"
        );
    }
    let invalid_utf8 = format!("{}.{}", b64(header.as_bytes()), b64(b"{\"iss\":\"\xff\"}"));
    let signature = jsonwebtoken::crypto::sign(
        invalid_utf8.as_bytes(),
        &encoding_key(key),
        jsonwebtoken::Algorithm::EdDSA,
    )
    .unwrap();
    assert!(matches!(
        verify(Algorithm::EdDSA, &format!("{invalid_utf8}.{signature}")),
        Err(VerifyError::BadClaims(_))
    ));
}

#[test]
fn a_payload_spliced_under_another_tokens_signature_is_rejected() {
    for algorithm in Algorithm::ALL {
        let mut other = claims();
        other.sub = "admin".to_owned();
        let honest = sign(algorithm, &claims());
        let forged = sign(algorithm, &other);
        let [h, _, s] = segments(&honest)[..] else {
            panic!()
        };
        let spliced = format!("{h}.{}.{s}", segments(&forged)[1]);
        assert!(
            matches!(verify(algorithm, &spliced), Err(VerifyError::BadSignature)),
            "{algorithm}"
        );
    }
}

#[test]
fn one_flipped_bit_in_any_segment_is_rejected() {
    for algorithm in Algorithm::ALL {
        let token = sign(algorithm, &claims());
        let parts = segments(&token);
        for index in 0..3 {
            let mut bytes = URL_SAFE_NO_PAD.decode(parts[index]).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
            let mut damaged: Vec<String> = parts.iter().map(|part| (*part).to_owned()).collect();
            damaged[index] = b64(&bytes);
            assert!(
                verify(algorithm, &damaged.join(".")).is_err(),
                "{algorithm} segment {index}"
            );
        }
    }
}

/// The order of the P-256 group.
const P256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

fn order_minus(value: &[u8]) -> Vec<u8> {
    let mut result = vec![0u8; 32];
    let mut borrow = 0i16;
    for index in (0..32).rev() {
        let mut digit = P256_ORDER[index] as i16 - value[index] as i16 - borrow;
        borrow = i16::from(digit < 0);
        if digit < 0 {
            digit += 256;
        }
        result[index] = digit as u8;
    }
    result
}

#[test]
fn psychic_and_out_of_range_es256_signatures_are_rejected() {
    let algorithm = Algorithm::ES256;
    let token = sign(algorithm, &claims());
    let [h, p, s] = segments(&token)[..] else {
        panic!()
    };
    let signature = URL_SAFE_NO_PAD.decode(s).unwrap();
    assert_eq!(signature.len(), 64);
    let (r, s_value) = signature.split_at(32);
    let with_signature = |bytes: &[u8]| verify(algorithm, &format!("{h}.{p}.{}", b64(bytes)));
    let zero = [0u8; 32];
    assert!(
        matches!(with_signature(&[0u8; 64]), Err(VerifyError::BadSignature)),
        "r = s = 0"
    );
    assert!(
        matches!(
            with_signature(&[r, &P256_ORDER].concat()),
            Err(VerifyError::BadSignature)
        ),
        "s = n"
    );
    assert!(
        matches!(
            with_signature(&[&P256_ORDER, s_value].concat()),
            Err(VerifyError::BadSignature)
        ),
        "r = n"
    );
    assert!(
        matches!(
            with_signature(&[&P256_ORDER[..], &P256_ORDER[..]].concat()),
            Err(VerifyError::BadSignature)
        ),
        "r = s = n"
    );
    assert!(
        matches!(
            with_signature(&[r, &zero].concat()),
            Err(VerifyError::BadSignature)
        ),
        "s = 0"
    );
    // DER instead of r || s, and wrong lengths.
    assert!(matches!(
        with_signature(&[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]),
        Err(VerifyError::BadSignature)
    ));
    assert!(matches!(
        with_signature(&[&signature[..], &[0]].concat()),
        Err(VerifyError::BadSignature)
    ));
    assert!(matches!(
        with_signature(&signature[..63]),
        Err(VerifyError::BadSignature)
    ));
    // The (r, n - s) twin verifies: ECDSA is malleable, so revocation keys on jti, never on
    // token bytes (checklist J-16). Pinned so a change in that fact is noticed.
    let twin = [r, &order_minus(s_value)].concat();
    assert_ne!(twin, signature);
    assert!(with_signature(&twin).is_ok());
}

#[test]
fn short_hmac_tags_are_rejected() {
    let token = sign(Algorithm::HS256, &claims());
    let [h, p, s] = segments(&token)[..] else {
        panic!()
    };
    let tag = URL_SAFE_NO_PAD.decode(s).unwrap();
    for length in [1, 16, 31] {
        let truncated = format!("{h}.{p}.{}", b64(&tag[..length]));
        assert!(
            matches!(
                verify(Algorithm::HS256, &truncated),
                Err(VerifyError::BadSignature)
            ),
            "{length}"
        );
    }
}
