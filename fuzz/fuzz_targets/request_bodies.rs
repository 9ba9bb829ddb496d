//! The typed request bodies of `POST /v1/login`, `/v1/users`, `/v1/token`, `/v1/introspect`
//! and `/v1/revoke`, JSON and form-encoded, sent through the whole application
//! (`tessera_server::server::app`) to an SQLite store. Every answer must pass
//! `Server::check`: no 5xx, errors as JSON, no secret echoed.
//!
//! Input: a route byte (route and content type), a flags byte (headers and live
//! credentials, see `tessera_fuzz::http::request`), then the body, in which `$REFRESH`,
//! `$ACCESS`, `$SESSION`, `$CSRF`, `$CLIENT_ID`, `$CLIENT_SECRET` and `$PASSWORD` become
//! live values.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::{http, seeds};

fuzz_target!(
    init: {
        seeds::write_if_asked(make_seeds);
        http::server();
    },
    |data: &[u8]| {
        let [route, flags, body @ ..] = data else { return };
        let server = http::server();
        let live = server.live();
        let body = server.substitute(body, &live);
        let answer = server.send(http::request(*route, *flags, body, &live));
        server.check(&answer, &live);
    }
);

/// Bodies from the API tests (`crates/tessera-server/tests/api.rs`, `tokens.rs`,
/// `oauth.rs`) for each route, in each content type the route takes.
fn make_seeds() -> Vec<Vec<u8>> {
    const JSON: u8 = 0;
    const FORM: u8 = 1;
    let route = |path: &str, content: u8| {
        let index = http::ROUTES
            .iter()
            .position(|route| *route == path)
            .unwrap_or(0) as u8;
        index + content * http::ROUTES.len() as u8
    };
    let mut seeds = Vec::new();
    let mut push = |path: &str, content: u8, flags: u8, body: &str| {
        let mut seed = vec![route(path, content), flags];
        seed.extend_from_slice(body.as_bytes());
        seeds.push(seed);
    };
    for body in [
        r#"{"username":"fuzz-user","password":"$PASSWORD"}"#,
        r#"{"username":"fuzz-user","password":"$PASSWORD","transport":"token"}"#,
        r#"{"username":"fuzz-user","password":"$PASSWORD","transport":"token","refresh_cookie":true}"#,
        r#"{"username":"fuzz-user","password":"$PASSWORD","transport":"cookie","refresh_cookie":true}"#,
        r#"{"username":"fuzz-user","password":"wrong password here"}"#,
        r#"{"username":"nobody","password":"x","transport":"carrier-pigeon"}"#,
        r#"{"username":"fuzz-user","password":"$PASSWORD","pasword":"typo"}"#,
        r#"{"username":"a","username":"b","password":"c"}"#,
        r#"["fuzz-user","$PASSWORD"]"#,
        r#"{"username":1,"password":null}"#,
        "{\"username\":\"\\u0000\",\"password\":\"\\ud800\"}",
        "{",
        "",
    ] {
        push("/v1/login", JSON, 1, body);
    }
    push("/v1/login", FORM, 1, "username=fuzz-user&password=x");
    for body in [
        r#"{"username":"new-user","password":"a long enough password 1"}"#,
        r#"{"username":"Fuzz-User","password":"a long enough password 1"}"#,
        r#"{"username":"..","password":"a long enough password 1"}"#,
        r#"{"username":".","password":"a long enough password 1"}"#,
        r#"{"username":"new-user","password":"password"}"#,
        r#"{"username":"new-user","password":"new-user"}"#,
        r#"{"username":"ユーザー","password":"a long enough password 1"}"#,
        r#"{"username":"new-user","password":"short"}"#,
        r#"{"username":"new-user"}"#,
    ] {
        push("/v1/users", JSON, 1, body);
    }
    for (content, flags, body) in [
        (FORM, 0, "grant_type=refresh_token&refresh_token=$REFRESH"),
        (
            JSON,
            0,
            r#"{"grant_type":"refresh_token","refresh_token":"$REFRESH"}"#,
        ),
        (JSON, 1 | 64, r#"{"grant_type":"refresh_token"}"#),
        (JSON, 4 | 64, r#"{"grant_type":"refresh_token"}"#),
        (FORM, 1 | 64, "grant_type=refresh_token"),
        (
            FORM,
            0,
            "grant_type=refresh_token&refresh_token=$REFRESH&refresh_token=$REFRESH",
        ),
        (
            FORM,
            0,
            "grant_type=password&username=fuzz-user&password=$PASSWORD",
        ),
        (FORM, 0, "grant_type=&refresh_token="),
        (
            FORM,
            32,
            "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=$SESSION&subject_token_type=urn:tessera:params:oauth:token-type:session&audience=https://orders.example",
        ),
        (
            FORM,
            0,
            "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=$ACCESS&subject_token_type=urn:ietf:params:oauth:token-type:access_token&requested_token_type=urn:tessera:params:oauth:token-type:session",
        ),
        (
            FORM,
            0,
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=$ACCESS&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&audience=x&scope=read",
        ),
        (FORM, 0, "a=%ZZ&b"),
    ] {
        push("/v1/token", content, flags, body);
    }
    for (flags, body) in [
        (16, "token=$ACCESS"),
        (16, "token=$REFRESH&token_type_hint=refresh_token"),
        (16, "token=$SESSION&token_type_hint=access_token"),
        (
            0,
            "token=$ACCESS&client_id=$CLIENT_ID&client_secret=$CLIENT_SECRET",
        ),
        (
            16,
            "token=$ACCESS&client_id=$CLIENT_ID&client_secret=$CLIENT_SECRET",
        ),
        (16, "token="),
        (0, "token=$ACCESS"),
    ] {
        push("/v1/introspect", FORM, flags, body);
    }
    for body in [
        "token=$REFRESH",
        "token=$REFRESH&token_type_hint=refresh_token",
        "token=$ACCESS&token_type_hint=access_token",
        "token=$SESSION",
        "token=garbage",
        "",
    ] {
        push("/v1/revoke", FORM, 0, body);
    }
    push("/v1/revoke", JSON, 0, r#"{"token":"$REFRESH"}"#);
    seeds
}
