//! Shared fixtures: one key per algorithm, honest claims, and a forger that signs any
//! header/payload JSON with a chosen key, so attacks differ from honest tokens in one place.

#![allow(dead_code, unreachable_pub)] // Each test binary uses a different subset.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use tessera_jose::{
    AccessClaims, Algorithm, Audience, Keyring, StoredKey, Verifier, VerifierSettings,
};

pub const ISSUER: &str = "https://auth.example";
pub const AUDIENCE: &str = "api";
pub const NOW: i64 = 1_700_000_000;
pub const LEEWAY: i64 = 30;

/// One generated key per algorithm (RSA-3072 generation is slow: once per test binary).
pub fn stored_key(algorithm: Algorithm) -> &'static StoredKey {
    static KEYS: OnceLock<HashMap<Algorithm, StoredKey>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        Algorithm::ALL
            .into_iter()
            .map(|algorithm| {
                (
                    algorithm,
                    StoredKey::generate(algorithm, NOW - 1000, NOW - 1000).unwrap(),
                )
            })
            .collect()
    })[&algorithm]
}

pub fn keyring(algorithm: Algorithm) -> Keyring {
    Keyring::new(
        vec![stored_key(algorithm).clone()],
        Duration::from_secs(3600),
    )
    .unwrap()
}

pub fn settings() -> VerifierSettings {
    VerifierSettings::new(ISSUER, vec![AUDIENCE.to_owned()])
}

pub fn verifier(algorithm: Algorithm) -> Verifier {
    keyring(algorithm).verifier(settings())
}

pub fn claims() -> AccessClaims {
    AccessClaims {
        iss: ISSUER.to_owned(),
        sub: "user-1".to_owned(),
        aud: Audience::One(AUDIENCE.to_owned()),
        exp: NOW + 600,
        iat: NOW,
        nbf: Some(NOW),
        auth_time: None,
        jti: "token-1".to_owned(),
        sid: "session-1".to_owned(),
        scope: Some("read write".to_owned()),
        roles: vec!["admin".to_owned()],
        client_id: Some("web".to_owned()),
        extra: Default::default(),
    }
}

pub fn sign(algorithm: Algorithm, claims: &AccessClaims) -> String {
    keyring(algorithm)
        .signer(NOW)
        .unwrap()
        .sign(claims)
        .unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The private key of `key` as jsonwebtoken wants it.
pub fn encoding_key(key: &StoredKey) -> EncodingKey {
    match key.algorithm {
        Algorithm::EdDSA => EncodingKey::from_ed_der(&key.secret),
        Algorithm::ES256 => EncodingKey::from_ec_der(&key.secret),
        Algorithm::HS256 => EncodingKey::from_secret(&key.secret),
        Algorithm::RS256 => {
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                STANDARD.encode(&key.secret)
            );
            EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
        }
    }
}

pub fn jose(algorithm: Algorithm) -> jsonwebtoken::Algorithm {
    algorithm.as_str().parse().unwrap()
}

/// `base64url(header) . base64url(payload) . signature`, signed by `key` with `algorithm`.
pub fn forge(
    header: &str,
    payload: &str,
    key: &EncodingKey,
    algorithm: jsonwebtoken::Algorithm,
) -> String {
    let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let signature = jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, algorithm).unwrap();
    format!("{signing_input}.{signature}")
}

/// The honest header for `key`, as JSON text, with `extra` members appended.
pub fn header(key: &StoredKey, extra: &str) -> String {
    let separator = if extra.is_empty() { "" } else { "," };
    format!(
        r#"{{"typ":"at+jwt","alg":"{}","kid":"{}"{separator}{extra}}}"#,
        key.algorithm, key.kid
    )
}

pub fn payload() -> String {
    serde_json::to_string(&claims()).unwrap()
}

/// Signs `header`/`payload` with the real private key of `algorithm`'s key.
pub fn forge_with_real_key(algorithm: Algorithm, header: &str, payload: &str) -> String {
    let key = stored_key(algorithm);
    forge(header, payload, &encoding_key(key), jose(algorithm))
}
