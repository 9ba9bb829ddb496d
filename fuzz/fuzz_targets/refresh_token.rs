//! The refresh token: `RefreshToken::parse` held to an independent statement of its format
//! (43 characters of canonical unpadded base64url), then the same text presented as the
//! server takes it — the `refresh_token` form and JSON parameters of `POST /v1/token`, the
//! refresh cookie, and `POST /v1/revoke` — through the whole application. `$REFRESH` in the
//! input becomes a live refresh token of the fuzz user. Every answer must pass
//! `Server::check`.

#![no_main]

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use tessera_core::RefreshToken;
use tessera_fuzz::{http, seeds};

fuzz_target!(
    init: {
        seeds::write_if_asked(make_seeds);
        http::server();
    },
    |data: &[u8]| {
        let server = http::server();
        let live = server.live();
        let input = server.substitute(data, &live);
        let Ok(text) = std::str::from_utf8(&input) else { return };
        parse(text);

        let form = serde_urlencoded::to_string([("grant_type", "refresh_token"), ("refresh_token", text)])
            .expect("a form");
        let json = serde_json::json!({"grant_type": "refresh_token", "refresh_token": text}).to_string();
        let revoke = serde_urlencoded::to_string([("token", text), ("token_type_hint", "refresh_token")])
            .expect("a form");
        let mut requests = vec![
            post("/v1/token", "application/x-www-form-urlencoded", form),
            post("/v1/token", "application/json", json),
            post("/v1/revoke", "application/x-www-form-urlencoded", revoke),
        ];
        let cookie = format!("{}={text}", http::REFRESH_COOKIE);
        if let Ok(request) = Request::post("/v1/token")
            .header("content-type", "application/json")
            .header("origin", http::PUBLIC_URL)
            .header("cookie", cookie)
            .body(Body::from(r#"{"grant_type":"refresh_token"}"#))
        {
            requests.push(request);
        }
        for request in requests {
            let answer = server.send(request);
            server.check(&answer, &live);
        }
    }
);

fn post(path: &str, content_type: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("a request")
}

/// Whether `text` is 32 bytes of canonical unpadded base64url, decided without the base64
/// crate: 43 characters of the alphabet, the last one's two spare bits zero.
fn is_canonical(text: &str) -> bool {
    let value = |byte: u8| match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    };
    text.len() == 43
        && text.bytes().all(|byte| value(byte).is_some())
        && text
            .bytes()
            .last()
            .and_then(value)
            .is_some_and(|last| last & 0b11 == 0)
}

fn parse(text: &str) {
    let token = RefreshToken::parse(text);
    assert_eq!(
        token.is_ok(),
        is_canonical(text),
        "RefreshToken::parse({text:?})"
    );
    if let Ok(token) = token {
        assert_eq!(token.encode(), text, "a refresh token does not round-trip");
        let successor = token.successor(b"rotation key");
        assert_eq!(
            successor,
            token.successor(b"rotation key"),
            "the successor is not derived"
        );
        assert_ne!(successor, token, "a token is its own successor");
        assert_ne!(successor, token.successor(b"another key"));
    }
}

fn make_seeds() -> Vec<Vec<u8>> {
    seeds::texts([
        "$REFRESH",
        "$REFRESH ",
        "$REFRESH=",
        "$REFRESH$REFRESH",
        "$ACCESS",
        "$SESSION",
        "c2VjcmV0LXJlZnJlc2gtdG9rZW4tZm9yLXRlc3Rpbmc",
        "bmV4dC1yZWZyZXNoLXRva2VuLWZvci10ZXN0aW5nISE",
        "bmV4dC1yZWZyZXNoLXRva2VuLWZvci10ZXN0aW5nISF",
        "bmV4dC1yZWZyZXNoLXRva2VuLWZvci10ZXN0aW5nISE=",
        "bmV4dC1yZWZyZXNoLXRva2VuLWZvci10ZXN0aW5nIS+",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "",
        "%00",
        "a;b=c",
    ])
}
