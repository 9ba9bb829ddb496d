//! The keys the JWT targets attack, and what an accepted token must satisfy.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use serde_json::Value;
use tessera_jose::{
    AccessClaims, Algorithm, Audience, Keyring, StoredKey, Verifier, VerifierSettings,
};

/// The issuer every token must name.
pub const ISSUER: &str = "https://auth.example";
/// The audience the verifier accepts.
pub const AUDIENCE: &str = "api";
/// The verification time (unix seconds); fixed, so a crash reproduces.
pub const NOW: i64 = 1_700_000_000;
/// The verifier's leeway, seconds (the default).
pub const LEEWAY: i64 = 30;
/// The longest lifetime the verifier accepts, seconds (plus the leeway).
pub const MAX_LIFETIME: i64 = 600;
/// The HS256 secret: fixed, so HS256 seeds stay validly signed across runs. The asymmetric
/// keys are generated per process; their `kid`s are fixed so seeds still reach the `alg`
/// and signature checks.
pub const HMAC_SECRET: &[u8; 32] = b"tessera fuzz hs256 secret 32 byt";

/// The algorithms, in selector order.
pub const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::EdDSA,
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::HS256,
];

/// The verifier's keys, another key of each algorithm that it does not know, and the
/// verifier.
pub struct Keys {
    /// One key per algorithm, in [`ALGORITHMS`] order, with `kid` [`kid`]`(algorithm)`.
    pub trusted: Vec<StoredKey>,
    /// One more key per algorithm, same `kid`s, unknown to the verifier.
    pub impostors: Vec<StoredKey>,
    /// The trusted keys' keyring.
    pub keyring: Keyring,
    /// Verifies against the trusted keys.
    pub verifier: Verifier,
}

/// The fixed `kid` of `algorithm`'s key.
pub fn kid(algorithm: Algorithm) -> String {
    format!("fuzz-{}", algorithm.as_str().to_ascii_lowercase())
}

/// The keys, made once per process.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let make = |algorithm: Algorithm, fixed_hmac: bool| {
            let mut key = if algorithm == Algorithm::HS256 && fixed_hmac {
                StoredKey::hmac(HMAC_SECRET.to_vec(), NOW - 1000).expect("a 32-byte secret")
            } else {
                StoredKey::generate(algorithm, NOW - 1000, NOW - 1000).expect("key generation")
            };
            key.kid = kid(algorithm);
            key
        };
        let trusted: Vec<StoredKey> = ALGORITHMS.iter().map(|a| make(*a, true)).collect();
        let impostors = ALGORITHMS.iter().map(|a| make(*a, false)).collect();
        let keyring =
            Keyring::new(trusted.clone(), Duration::from_secs(3600)).expect("the keyring");
        let verifier = keyring.verifier(settings());
        Keys {
            trusted,
            impostors,
            keyring,
            verifier,
        }
    })
}

/// The verifier's settings: default leeway and size limit, lifetime at most 10 minutes.
pub fn settings() -> VerifierSettings {
    let mut settings = VerifierSettings::new(ISSUER, vec![AUDIENCE.to_owned()]);
    settings.max_lifetime = Some(Duration::from_secs(MAX_LIFETIME as u64));
    settings
}

/// Honest claims, valid at [`NOW`].
pub fn claims() -> AccessClaims {
    AccessClaims {
        iss: ISSUER.to_owned(),
        sub: "user-1".to_owned(),
        aud: Audience::One(AUDIENCE.to_owned()),
        exp: NOW + 300,
        iat: NOW,
        nbf: Some(NOW),
        jti: "token-1".to_owned(),
        sid: "session-1".to_owned(),
        scope: Some("read write".to_owned()),
        roles: vec!["admin".to_owned()],
        client_id: Some("web".to_owned()),
    }
}

/// `key`'s private key as jsonwebtoken takes it.
pub fn encoding_key(key: &StoredKey) -> EncodingKey {
    match key.algorithm {
        Algorithm::EdDSA => EncodingKey::from_ed_der(&key.secret),
        Algorithm::ES256 => EncodingKey::from_ec_der(&key.secret),
        Algorithm::HS256 => EncodingKey::from_secret(&key.secret),
        _ => {
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                STANDARD.encode(&key.secret)
            );
            EncodingKey::from_rsa_pem(pem.as_bytes()).expect("the RSA key as PEM")
        }
    }
}

/// jsonwebtoken's name for `algorithm`.
pub fn jsonwebtoken_algorithm(algorithm: Algorithm) -> jsonwebtoken::Algorithm {
    algorithm.as_str().parse().expect("a supported algorithm")
}

/// `base64url(header).base64url(payload).signature`, signed by `key` with `algorithm`.
pub fn forge(
    header: &[u8],
    payload: &[u8],
    key: &EncodingKey,
    algorithm: jsonwebtoken::Algorithm,
) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, algorithm).expect("signing");
    format!("{signing_input}.{signature}")
}

/// The honest header of `algorithm`'s key, with `extra` members appended.
pub fn header(algorithm: Algorithm, extra: &str) -> String {
    let separator = if extra.is_empty() { "" } else { "," };
    format!(
        r#"{{"typ":"at+jwt","alg":"{}","kid":"{}"{separator}{extra}}}"#,
        algorithm.as_str(),
        kid(algorithm)
    )
}

/// The honest claims as JSON.
pub fn payload() -> String {
    serde_json::to_string(&claims()).expect("claims serialize")
}

/// The public key of `algorithm`'s trusted key as JWK JSON: what an attacker would HMAC with.
pub fn public_jwk_json(algorithm: Algorithm) -> Vec<u8> {
    let jwks = keys().keyring.jwks(NOW);
    let wanted = kid(algorithm);
    let jwk = jwks
        .keys
        .iter()
        .find(|jwk| jwk.kid.as_deref() == Some(wanted.as_str()));
    serde_json::to_vec(&jwk).expect("a JWK serializes")
}

/// Members a verified header may not carry.
const REFUSED_HEADER_MEMBERS: [&str; 11] = [
    "crit", "jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "enc", "zip", "b64", "cty",
];

/// Checks, independently of the verifier, what a token it accepted must be: three
/// canonical segments, a header object whose `kid` names a trusted key and whose `alg` is
/// that key's, `typ` `at+jwt`, no refused member, and claims within every rule. Panics (a
/// fuzzing finding) otherwise.
pub fn assert_acceptable(token: &str, claims: &AccessClaims) {
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "accepted a token without three segments");
    let header = URL_SAFE_NO_PAD
        .decode(segments[0])
        .expect("accepted a header that is not base64url");
    let header: Value = serde_json::from_slice(&header).expect("accepted a non-JSON header");
    let header = header.as_object().expect("accepted a non-object header");
    let kid = header.get("kid").and_then(Value::as_str).expect("no kid");
    let key = keys()
        .trusted
        .iter()
        .find(|key| key.kid == kid)
        .expect("accepted a token naming no trusted key");
    assert_eq!(
        header.get("alg").and_then(Value::as_str),
        Some(key.algorithm.as_str()),
        "accepted a token whose alg is not its key's"
    );
    let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
    assert!(
        typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt"),
        "accepted typ {typ:?}"
    );
    for member in REFUSED_HEADER_MEMBERS {
        assert!(
            !header.contains_key(member),
            "accepted a header with {member}"
        );
    }
    let payload = URL_SAFE_NO_PAD
        .decode(segments[1])
        .expect("accepted a payload that is not base64url");
    let payload: Value = serde_json::from_slice(&payload).expect("accepted non-JSON claims");
    assert_eq!(
        payload.get("exp").and_then(Value::as_i64),
        Some(claims.exp),
        "exp read differently from the JSON"
    );
    assert_eq!(claims.iss, ISSUER);
    assert!(claims.aud.contains(AUDIENCE), "accepted a foreign audience");
    assert!(!claims.sub.is_empty() && !claims.jti.is_empty() && !claims.sid.is_empty());
    assert!(
        NOW < claims.exp.saturating_add(LEEWAY),
        "accepted an expired token"
    );
    assert!(
        claims.iat <= NOW + LEEWAY,
        "accepted a token issued in the future"
    );
    if let Some(nbf) = claims.nbf {
        assert!(
            NOW >= nbf.saturating_sub(LEEWAY),
            "accepted a token not valid yet"
        );
    }
    assert!(
        claims.exp.saturating_sub(claims.iat) <= MAX_LIFETIME + LEEWAY,
        "accepted a token longer-lived than the issuer grants"
    );
}

/// The JWT/JOSE attack corpus of `crates/tessera-jose/tests/attacks.rs`, as
/// `(algorithm, header JSON, payload JSON, signed by)` shapes: each differs from an honest
/// token in one place.
pub fn attack_shapes() -> Vec<(Algorithm, String, String)> {
    let mut shapes = Vec::new();
    let honest_payload = payload();
    for algorithm in ALGORITHMS {
        shapes.push((algorithm, header(algorithm, ""), honest_payload.clone()));
        for none in ["none", "None", "NONE", "nOnE", "none "] {
            let header = format!(
                r#"{{"typ":"at+jwt","alg":"{none}","kid":"{}"}}"#,
                kid(algorithm)
            );
            shapes.push((algorithm, header, honest_payload.clone()));
        }
        for extra in [
            r#""crit":["exp"]"#,
            r#""jku":"https://evil.example/jwks.json""#,
            r#""x5u":"https://evil.example/cert""#,
            r#""jwk":{"kty":"oct","k":"AAAA"}"#,
            r#""x5c":["MIIB"]"#,
            r#""x5t":"abc""#,
            r#""x5t#S256":"abc""#,
            r#""enc":"A128GCM""#,
            r#""zip":"DEF""#,
            r#""b64":false"#,
            r#""cty":"JWT""#,
            r#""alg":"HS256""#,
            r#""kid":"other""#,
            r#""typ":"JWT""#,
            r#""crit":null"#,
        ] {
            shapes.push((algorithm, header(algorithm, extra), honest_payload.clone()));
        }
        for typ in ["JWT", "at+JWT", "application/at+jwt", "AT+JWT", ""] {
            let header = format!(
                r#"{{"typ":"{typ}","alg":"{}","kid":"{}"}}"#,
                algorithm.as_str(),
                kid(algorithm)
            );
            shapes.push((algorithm, header, honest_payload.clone()));
        }
        for kid in [
            r#""../../../../dev/null""#,
            r#""x' UNION SELECT 'secret'--""#,
            r#""|id""#,
            r#""""#,
            "null",
            "1",
        ] {
            let header = format!(
                r#"{{"typ":"at+jwt","alg":"{}","kid":{kid}}}"#,
                algorithm.as_str()
            );
            shapes.push((algorithm, header, honest_payload.clone()));
        }
        let claim = |replace: &str, with: &str| honest_payload.replace(replace, with);
        let exp = format!(r#""exp":{}"#, NOW + 300);
        let iat = format!(r#""iat":{NOW}"#);
        for payload in [
            claim(&exp, &format!(r#""exp":"{}""#, NOW + 300)),
            claim(&exp, &format!(r#""exp":{}.5"#, NOW + 300)),
            claim(&exp, r#""exp":1e300"#),
            claim(&exp, r#""exp":-9223372036854775808"#),
            claim(&exp, r#""exp":9223372036854775807"#),
            claim(&exp, &format!(r#""exp":{}"#, NOW - LEEWAY)),
            claim(&iat, &format!(r#""iat":{}"#, NOW + 3600)),
            claim(&iat, r#""iat":-9223372036854775808"#),
            claim(r#""aud":"api""#, r#""aud":[]"#),
            claim(r#""aud":"api""#, r#""aud":["other","api"]"#),
            claim(r#""aud":"api""#, r#""aud":null"#),
            claim(
                r#""iss":"https://auth.example""#,
                r#""iss":"https://evil.example""#,
            ),
            claim(r#""sub":"user-1""#, r#""sub":"""#),
            claim(r#""sid":"session-1""#, r#""sid":1"#),
            claim(r#""roles":["admin"]"#, r#""roles":"admin""#),
            format!(r#"{},"exp":1}}"#, honest_payload.trim_end_matches('}')),
            format!(
                r#"{},"unknown":{{"a":[1,2,{{}}]}}}}"#,
                honest_payload.trim_end_matches('}')
            ),
            "[]".to_owned(),
            "null".to_owned(),
            "{}".to_owned(),
            String::new(),
        ] {
            shapes.push((algorithm, header(algorithm, ""), payload));
        }
    }
    shapes
}
