//! Opaque credentials and the headers that carry them: every identifier parser of
//! `tessera-core` (`SessionToken`, `SessionId`, `UserId`, `TokenId`, `ClientId`, `Secret`,
//! CSRF tokens) held to an independent statement of the format, then the server's cookie
//! and bearer reading (`cookies::single`, `auth::presented_credential`) over `Cookie` and
//! `Authorization` headers built from the input.
//!
//! Input: a selector byte, then parts separated by `0xFF`. Bit 0 of the selector sends the
//! parts as `Cookie` header lines, bit 1 sends the first part as `Authorization`.

#![no_main]

use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tessera_core::{ClientId, Secret, SessionId, SessionToken, TokenId, UserId};
use tessera_fuzz::seeds;
use tessera_server::auth::{Carrier, Credential, presented_credential};
use tessera_server::cookies;

const NAME: &str = "__Host-tessera_session";
/// A fixed, well-formed session token whose CSRF token the input is checked against.
const KNOWN: &str = "c2Vzc2lvbi1pZC0xNmJ5dHNlY3JldC0zMi1ieXRlcy1vZi1mdXp6LWtleS0hISEh";

fuzz_target!(
    init: { seeds::write_if_asked(make_seeds); },
    |data: &[u8]| {
        let Some((&selector, rest)) = data.split_first() else { return };
        if let Ok(text) = std::str::from_utf8(rest) {
            identifiers(text);
        }
        let parts: Vec<&[u8]> = rest.split(|byte| *byte == 0xFF).collect();
        let mut headers = HeaderMap::new();
        if selector & 1 != 0 {
            for part in &parts {
                if let Ok(value) = HeaderValue::from_bytes(part) {
                    headers.append(COOKIE, value);
                }
            }
        }
        if selector & 2 != 0 {
            if let Ok(value) = HeaderValue::from_bytes(parts[0]) {
                headers.insert(AUTHORIZATION, value);
            }
        }
        credentials(&headers);
    }
);

/// Whether `text` is exactly `bytes` bytes of canonical unpadded base64url, decided without
/// the base64 crate: the right length, the alphabet, and zero bits past the data.
fn is_canonical(text: &str, bytes: usize) -> bool {
    let length = (bytes * 8).div_ceil(6);
    let spare_bits = length * 6 - bytes * 8;
    let value = |byte: u8| match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    };
    text.len() == length
        && text.bytes().all(|byte| value(byte).is_some())
        && text
            .bytes()
            .last()
            .and_then(value)
            .is_some_and(|last| last & ((1 << spare_bits) - 1) == 0)
}

fn identifiers(text: &str) {
    let token = SessionToken::parse(text);
    assert_eq!(
        token.is_ok(),
        is_canonical(text, 48),
        "SessionToken::parse({text:?})"
    );
    if let Ok(token) = token {
        assert_eq!(token.encode(), text, "a session token does not round-trip");
        let id = token.session_id();
        assert_eq!(SessionId::parse(id.as_str()), Ok(id));
        assert!(token.verify_csrf(&token.csrf_token().encode()));
        assert!(!token.verify_csrf(text));
    }
    let ids = [
        SessionId::parse(text).map(|id| id.to_string()),
        UserId::parse(text).map(|id| id.to_string()),
        TokenId::parse(text).map(|id| id.to_string()),
        ClientId::parse(text).map(|id| id.to_string()),
    ];
    for id in ids {
        assert_eq!(
            id.is_ok(),
            is_canonical(text, 16),
            "an id parser on {text:?}"
        );
        if let Ok(id) = id {
            assert_eq!(id, text, "an id does not round-trip");
        }
    }
    let secret = Secret::parse(text);
    assert_eq!(
        secret.is_ok(),
        is_canonical(text, 32),
        "Secret::parse({text:?})"
    );
    if let Ok(secret) = secret {
        assert_eq!(secret.encode(), text);
    }
    let known = SessionToken::parse(KNOWN).expect("the known token is well-formed");
    if known.verify_csrf(text) {
        assert_eq!(
            text,
            known.csrf_token().encode(),
            "a wrong CSRF token passed"
        );
    }
}

fn credentials(headers: &HeaderMap) {
    let cookie_texts: Vec<&str> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    if let Ok(Some(value)) = cookies::single(headers, NAME) {
        assert!(
            cookie_texts.iter().any(|text| text.contains(value)),
            "a cookie value that no Cookie header carries"
        );
    }
    match presented_credential(headers, NAME) {
        Ok(Some(Credential::Session(token, Carrier::Cookie))) => {
            assert!(
                !headers.contains_key(AUTHORIZATION),
                "the cookie won over Authorization"
            );
            assert_eq!(
                cookies::single(headers, NAME),
                Ok(Some(token.encode().as_str()))
            );
        }
        Ok(Some(Credential::Session(token, _))) => {
            let header = headers
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok());
            assert!(header.is_some_and(|text| text.contains(&token.encode())));
        }
        Ok(Some(Credential::AccessToken(jwt))) => {
            assert!(jwt.contains('.'));
            assert!(headers.contains_key(AUTHORIZATION));
        }
        Ok(None) => assert!(!headers.contains_key(AUTHORIZATION)),
        Err(_) => {}
    }
}

/// Tokens and cookie headers from the server's and the core's tests.
fn make_seeds() -> Vec<Vec<u8>> {
    let known = SessionToken::parse(KNOWN).expect("the known token is well-formed");
    let csrf = known.csrf_token().encode();
    let id = known.session_id().to_string();
    let mut seeds = Vec::new();
    let mut push = |selector: u8, parts: &[&str]| {
        let mut seed = vec![selector];
        for (index, part) in parts.iter().enumerate() {
            if index > 0 {
                seed.push(0xFF);
            }
            seed.extend_from_slice(part.as_bytes());
        }
        seeds.push(seed);
    };
    for text in [
        KNOWN,
        &csrf,
        &id,
        &KNOWN[..63],
        &format!("{KNOWN}="),
        "AAAAAAAAAAAAAAAAAAAAAB",
        "AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        push(0, &[text]);
    }
    push(1, &[&format!("{NAME}={KNOWN}")]);
    push(1, &["theme=dark", &format!("other=1; {NAME}={KNOWN}")]);
    push(1, &[&format!("{NAME}={KNOWN}; {NAME}=other")]);
    push(1, &[&format!("{NAME}={KNOWN}"), &format!("{NAME}=other")]);
    push(1, &[&format!("__host-tessera_session={KNOWN}")]);
    push(1, &[&format!("{NAME}=\"{KNOWN}\"")]);
    push(1, &[&format!(" {NAME} = {KNOWN} ;;")]);
    push(2, &[&format!("Bearer {KNOWN}")]);
    push(2, &[&format!("bearer   {KNOWN}  ")]);
    push(2, &["Bearer eyJhbGciOiJFZERTQSJ9.e30.sig"]);
    push(2, &["Basic dXNlcjpwYXNz"]);
    push(2, &["Bearer"]);
    push(3, &[&format!("Bearer {KNOWN}"), &format!("{NAME}={KNOWN}")]);
    seeds
}
