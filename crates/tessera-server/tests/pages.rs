//! The server-rendered pages and the refresh cookie, through a real socket with a plain HTTP
//! client: no JavaScript, every header the test's own.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{COOKIE_NAME, Login, PASSWORD, Sent, TestServer, session_set_cookie};
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

const FORM_COOKIE: &str = "__Host-tessera_form";
const REFRESH_COOKIE: &str = "__Secure-tessera_refresh";
/// Form fields, or request headers: name and value.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                        form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The value of the `name=value` cookie set by `headers`, if any.
fn set_cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(|value| {
            value[name.len() + 1..]
                .split(';')
                .next()
                .unwrap()
                .to_owned()
        })
}

fn set_cookie_line(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// Every `value` of hidden `csrf_token` fields, in order.
fn csrf_fields(html: &str) -> Vec<String> {
    html.match_indices(r#"name="csrf_token" value=""#)
        .map(|(at, marker)| {
            let rest = &html[at + marker.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// A browser before login: the form cookie and the token of the login form.
struct Visitor {
    form_cookie: String,
    csrf: String,
}

impl Visitor {
    async fn arrive(server: &TestServer, path: &str) -> Visitor {
        let response = server.get(path).sent().await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        let form_cookie = set_cookie_value(response.headers(), FORM_COOKIE)
            .expect("the form page sets the form cookie");
        let html = response.text().await.unwrap();
        let csrf = csrf_fields(&html).pop().expect("a csrf_token field");
        Visitor { form_cookie, csrf }
    }

    fn cookie(&self) -> String {
        format!("{FORM_COOKIE}={}", self.form_cookie)
    }

    /// Posts `fields` (plus this visitor's token) from the server's own origin.
    async fn post(&self, server: &TestServer, path: &str, fields: &[(&str, &str)]) -> Response {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &self.csrf));
        post_form(server, path, &self.cookie(), &form, Some(&server.base)).await
    }
}

async fn post_form(
    server: &TestServer,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
    origin: Option<&str>,
) -> Response {
    let mut request = server.post(path).header("cookie", cookie).form(fields);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.sent().await
}

fn assert_page_headers(response: &Response, what: &str) {
    let headers = response.headers();
    assert_eq!(
        headers["content-type"], "text/html; charset=utf-8",
        "{what}"
    );
    assert_eq!(headers["content-security-policy"], PAGE_CSP, "{what}");
    assert_eq!(headers["cache-control"], "no-store", "{what}");
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    // Not `no-referrer`: under it browsers send `Origin: null` on same-origin form posts.
    assert_eq!(headers["referrer-policy"], "same-origin", "{what}");
    assert_eq!(
        headers["cross-origin-opener-policy"], "same-origin",
        "{what}"
    );
}

/// Reads a page, checking its headers; returns status and HTML.
async fn page(response: Response, what: &str) -> (StatusCode, String) {
    assert_page_headers(&response, what);
    let status = response.status();
    let html = response.text().await.unwrap();
    assert!(
        !html.contains(" style=") && !html.contains("<style") && !html.contains("<script>"),
        "{what}: no inline style or script"
    );
    (status, html)
}

async fn get_page(server: &TestServer, path: &str, cookie: &str) -> Response {
    server.get(path).header("cookie", cookie).sent().await
}

fn location(response: &Response) -> &str {
    response.headers()["location"].to_str().unwrap()
}

async fn live_sessions(server: &TestServer, username: &str) -> usize {
    let user = server.engine.user_by_username(username).await.unwrap();
    server.engine.sessions_of(&user.id).await.unwrap().len()
}

/// The text of the page's `<p class="error" …>`.
fn error_text(html: &str) -> &str {
    let start = html.find(r#"<p class="error""#).expect("an error message");
    let text = &html[start..];
    let text = &text[text.find('>').unwrap() + 1..];
    &text[..text.find("</p>").unwrap()]
}

#[tokio::test]
async fn every_page_has_the_strict_policy_and_is_never_cached() {
    let server = TestServer::start(|_| {}).await;
    let login = server.user_session("alice").await;
    for path in ["/login", "/register"] {
        let response = server.get(path).sent().await;
        let (status, _) = page(response, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let account = get_page(&server, "/account", &login.cookie()).await;
    let (status, html) = page(account, "/account").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("alice"));
    // Error pages too.
    let visitor = Visitor::arrive(&server, "/login").await;
    let wrong = visitor
        .post(
            &server,
            "/login",
            &[("username", "alice"), ("password", "wrong")],
        )
        .await;
    let (status, _) = page(wrong, "failed login").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let refused = post_form(&server, "/logout", &login.cookie(), &[], Some(&server.base)).await;
    let (status, _) = page(refused, "refused logout").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_form_carries_a_csrf_token() {
    let server = TestServer::start(|_| {}).await;
    let login = server.user_session("alice").await;
    server.login("alice", PASSWORD).await;
    for path in ["/login", "/register"] {
        let html = server.get(path).sent().await.text().await.unwrap();
        let tokens = csrf_fields(&html);
        assert_eq!(html.matches("<form").count(), 1, "{path}");
        assert_eq!(tokens.len(), 1, "{path}");
        assert_eq!(tokens[0].len(), 43, "{path}");
    }
    let html = get_page(&server, "/account", &login.cookie())
        .await
        .text()
        .await
        .unwrap();
    let forms = html.matches("<form").count();
    // Log out, revoke the other session, log out everywhere else, change the password,
    // delete the account.
    assert_eq!(forms, 5, "{html}");
    assert_eq!(csrf_fields(&html), vec![login.csrf.clone(); forms]);
    for form in html.match_indices("<form") {
        assert!(
            html[form.0..].starts_with(r#"<form method="post""#),
            "state changes are POSTs"
        );
    }
}

#[tokio::test]
async fn register_log_in_revoke_and_log_out_without_javascript() {
    let server = TestServer::start(|_| {}).await;
    let visitor = Visitor::arrive(&server, "/register").await;
    let created = visitor
        .post(
            &server,
            "/register",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("password_confirmation", PASSWORD),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&created), "/login?notice=registered");
    let (_, html) = page(
        get_page(&server, "/login?notice=registered", &visitor.cookie()).await,
        "notice",
    )
    .await;
    assert!(html.contains("Your account is ready. Log in."));

    let phone = server.login("alice", PASSWORD).await;
    let tablet = server.login("alice", PASSWORD).await;
    let logged_in = visitor
        .post(
            &server,
            "/login",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(logged_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&logged_in), "/account");
    let set_cookie = session_set_cookie(logged_in.headers()).unwrap();
    let browser = Login {
        token: set_cookie_value(logged_in.headers(), COOKIE_NAME).unwrap(),
        csrf: String::new(),
        set_cookie,
        body: json!({}),
    };
    let account = get_page(&server, "/account", &browser.cookie()).await;
    let (status, html) = page(account, "/account").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(html.matches(r#"class="card session"#).count(), 3);
    assert_eq!(html.matches("This device").count(), 1);
    let csrf = csrf_fields(&html).pop().unwrap();

    // Revoke one other session.
    let revoked = post_form(
        &server,
        &format!("/account/sessions/{}/revoke", phone.session_id()),
        &browser.cookie(),
        &[("csrf_token", &csrf)],
        Some(&server.base),
    )
    .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&revoked), "/account?notice=revoked");
    assert_eq!(live_sessions(&server, "alice").await, 2);

    // Revoking it again: the account page again, with a 404 and a message.
    let again = post_form(
        &server,
        &format!("/account/sessions/{}/revoke", phone.session_id()),
        &browser.cookie(),
        &[("csrf_token", &csrf)],
        Some(&server.base),
    )
    .await;
    let (status, html) = page(again, "revoke twice").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_text(&html), "That session has already ended.");

    // Everyone else out.
    let others = post_form(
        &server,
        "/account/revoke-others",
        &browser.cookie(),
        &[("csrf_token", &csrf)],
        Some(&server.base),
    )
    .await;
    assert_eq!(others.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&others), "/account?notice=others-revoked");
    let gone = server
        .get("/v1/session")
        .bearer_auth(&tablet.token)
        .sent()
        .await;
    assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(live_sessions(&server, "alice").await, 1);

    // Log out: the cookie is cleared and the account page sends the browser to log in.
    let out = post_form(
        &server,
        "/logout",
        &browser.cookie(),
        &[("csrf_token", &csrf)],
        Some(&server.base),
    )
    .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/login?notice=logged-out");
    assert!(
        session_set_cookie(out.headers())
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(live_sessions(&server, "alice").await, 0);
    let after = get_page(&server, "/account", &browser.cookie()).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&after), "/login?notice=signed-out");
    assert!(
        session_set_cookie(after.headers())
            .unwrap()
            .contains("Max-Age=0"),
        "a dead cookie is cleared"
    );
    let anonymous = server.get("/account").sent().await;
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&anonymous), "/login");
}

#[tokio::test]
async fn a_logged_in_browser_skips_the_login_page() {
    let server = TestServer::start(|_| {}).await;
    let login = server.user_session("alice").await;
    for path in ["/login", "/"] {
        let response = get_page(&server, path, &login.cookie()).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/account", "{path}");
    }
}

#[tokio::test]
async fn the_login_form_needs_its_cookie_its_token_and_a_same_origin_post() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let visitor = Visitor::arrive(&server, "/login").await;
    let other = Visitor::arrive(&server, "/login").await;
    assert_ne!(visitor.csrf, other.csrf, "each browser its own secret");
    let credentials = [("username", "alice"), ("password", PASSWORD)];

    let cases: Vec<(&str, String, Pairs<'_>, Option<&str>)> = vec![
        (
            "no token",
            visitor.cookie(),
            credentials.to_vec(),
            Some(&server.base),
        ),
        (
            "another browser's token",
            visitor.cookie(),
            [&credentials[..], &[("csrf_token", other.csrf.as_str())]].concat(),
            Some(&server.base),
        ),
        (
            "no form cookie",
            String::new(),
            [&credentials[..], &[("csrf_token", visitor.csrf.as_str())]].concat(),
            Some(&server.base),
        ),
        (
            "another origin",
            visitor.cookie(),
            [&credentials[..], &[("csrf_token", visitor.csrf.as_str())]].concat(),
            Some("http://127.0.0.1:1"),
        ),
        (
            "Origin: null",
            visitor.cookie(),
            [&credentials[..], &[("csrf_token", visitor.csrf.as_str())]].concat(),
            Some("null"),
        ),
    ];
    for (what, cookie, fields, origin) in cases {
        let response = post_form(&server, "/login", &cookie, &fields, origin).await;
        assert!(
            session_set_cookie(response.headers()).is_none(),
            "{what}: no session cookie"
        );
        let (status, html) = page(response, what).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
        assert!(error_text(&html).contains("another site"), "{what}");
        // The form comes back usable: it carries a token again.
        assert_eq!(csrf_fields(&html).len(), 1, "{what}");
    }
    let cross_site = server
        .post("/login")
        .header("cookie", visitor.cookie())
        .header("sec-fetch-site", "cross-site")
        .form(&[&credentials[..], &[("csrf_token", visitor.csrf.as_str())]].concat())
        .sent()
        .await;
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        live_sessions(&server, "alice").await,
        0,
        "nothing logged in"
    );

    let ok = visitor.post(&server, "/login", &credentials).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(live_sessions(&server, "alice").await, 1);
}

#[tokio::test]
async fn login_errors_never_reveal_whether_the_account_exists() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let visitor = Visitor::arrive(&server, "/login").await;
    let wrong_password = visitor
        .post(
            &server,
            "/login",
            &[("username", "alice"), ("password", "wrong password")],
        )
        .await;
    let unknown_user = visitor
        .post(
            &server,
            "/login",
            &[("username", "bobby"), ("password", "wrong password")],
        )
        .await;
    let (status_wrong, html_wrong) = page(wrong_password, "wrong password").await;
    let (status_unknown, html_unknown) = page(unknown_user, "unknown user").await;
    assert_eq!(status_wrong, StatusCode::UNAUTHORIZED);
    assert_eq!(status_unknown, StatusCode::UNAUTHORIZED);
    assert_eq!(error_text(&html_wrong), "Wrong username or password.");
    // Byte for byte the same page, but for the username typed.
    assert_eq!(
        html_wrong,
        html_unknown.replace(r#"value="bobby""#, r#"value="alice""#)
    );
    assert!(
        !html_wrong.contains("wrong password"),
        "the password is never echoed"
    );
}

#[tokio::test]
async fn throttled_logins_say_how_long_to_wait() {
    let server = TestServer::start(|config| {
        config.ratelimit.account_failures = 2;
        config.ratelimit.window = Duration::from_secs(15 * 60);
    })
    .await;
    server.register("alice", PASSWORD).await;
    let visitor = Visitor::arrive(&server, "/login").await;
    for _ in 0..2 {
        let failed = visitor
            .post(
                &server,
                "/login",
                &[("username", "alice"), ("password", "wrong")],
            )
            .await;
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password now waits.
    let throttled = visitor
        .post(
            &server,
            "/login",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((14 * 60..=15 * 60).contains(&retry_after), "{retry_after}");
    let (status, html) = page(throttled, "throttled").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        error_text(&html),
        "Too many failed attempts. Try again in 15 minutes."
    );
    assert_eq!(live_sessions(&server, "alice").await, 0);
}

#[tokio::test]
async fn account_actions_need_the_session_token_and_a_same_origin_post() {
    let server = TestServer::start(|_| {}).await;
    let browser = server.user_session("alice").await;
    let phone = server.login("alice", PASSWORD).await;
    let forged = "A".repeat(43);
    let cases: Vec<(&str, Pairs<'_>, Pairs<'_>)> = vec![
        ("no token", vec![], vec![("origin", &server.base)]),
        (
            "a forged token",
            vec![("csrf_token", &forged)],
            vec![("origin", &server.base)],
        ),
        (
            "another session's token",
            vec![("csrf_token", &phone.csrf)],
            vec![("origin", &server.base)],
        ),
        (
            "another origin",
            vec![("csrf_token", &browser.csrf)],
            vec![("origin", "http://127.0.0.1:1")],
        ),
        (
            "a cross-site fetch",
            vec![("csrf_token", &browser.csrf)],
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            "a sibling site",
            vec![("csrf_token", &browser.csrf)],
            vec![
                ("sec-fetch-site", "same-site"),
                ("origin", "http://127.0.0.1:1"),
            ],
        ),
    ];
    for path in ["/account/revoke-others", "/logout"] {
        for (what, fields, headers) in &cases {
            let mut request = server
                .post(path)
                .header("cookie", browser.cookie())
                .form(fields);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.sent().await;
            let (status, html) = page(response, what).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {what}");
            assert!(html.contains("<h1>Request refused</h1>"), "{path}: {what}");
            assert_eq!(live_sessions(&server, "alice").await, 2, "{path}: {what}");
        }
    }
    // JSON is not a form.
    let json_body = server
        .post("/logout")
        .header("cookie", browser.cookie())
        .header("origin", &server.base)
        .json(&json!({"csrf_token": browser.csrf}))
        .sent()
        .await;
    let (status, _) = page(json_body, "json").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Without a session there is nothing to refuse: off to the login page.
    let anonymous = post_form(&server, "/logout", "", &[], Some(&server.base)).await;
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&anonymous), "/login");

    let accepted = post_form(
        &server,
        "/account/revoke-others",
        &browser.cookie(),
        &[("csrf_token", &browser.csrf)],
        Some(&server.base),
    )
    .await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert_eq!(live_sessions(&server, "alice").await, 1);
}

#[tokio::test]
async fn registration_errors_come_back_on_the_form() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let visitor = Visitor::arrive(&server, "/register").await;
    let cases = [
        (
            "taken",
            "ALICE",
            PASSWORD,
            PASSWORD,
            StatusCode::CONFLICT,
            "That username is taken; choose another.",
        ),
        (
            "common",
            "bob",
            "password",
            "password",
            StatusCode::UNPROCESSABLE_ENTITY,
            "The password is too common; choose one that is harder to guess.",
        ),
        (
            "short",
            "bob",
            "short",
            "short",
            StatusCode::UNPROCESSABLE_ENTITY,
            "The password must have at least 8 characters.",
        ),
        (
            "differ",
            "bob",
            PASSWORD,
            "correct horse battery stapler",
            StatusCode::UNPROCESSABLE_ENTITY,
            "The two passwords differ.",
        ),
        (
            "markup",
            "<script>alert(1)</script>",
            PASSWORD,
            PASSWORD,
            StatusCode::UNPROCESSABLE_ENTITY,
            "A username may contain only letters, digits and . _ @ + -.",
        ),
    ];
    for (what, username, password, confirmation, status, message) in cases {
        let response = visitor
            .post(
                &server,
                "/register",
                &[
                    ("username", username),
                    ("password", password),
                    ("password_confirmation", confirmation),
                ],
            )
            .await;
        let (got, html) = page(response, what).await;
        assert_eq!(got, status, "{what}");
        assert_eq!(error_text(&html), message, "{what}");
        assert!(!html.contains(r#"type="password" value"#), "{what}");
        if what == "markup" {
            assert!(!html.contains("<script>alert"), "escaped: {html}");
            assert!(
                html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                    || html.contains("&lt;script&gt;"),
                "{html}"
            );
        }
    }
    assert!(server.engine.user_by_username("bob").await.is_err());
}

#[tokio::test]
async fn closed_registration_has_no_page_and_no_link() {
    let server = TestServer::start(|config| config.auth.registration = false).await;
    let (status, html) = page(server.get("/register").sent().await, "closed").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Registration is closed"));
    let login = Visitor::arrive(&server, "/login").await;
    let posted = login
        .post(
            &server,
            "/register",
            &[
                ("username", "bob"),
                ("password", PASSWORD),
                ("password_confirmation", PASSWORD),
            ],
        )
        .await;
    assert_eq!(posted.status(), StatusCode::NOT_FOUND);
    assert!(server.engine.user_by_username("bob").await.is_err());
    let html = server.get("/login").sent().await.text().await.unwrap();
    assert!(!html.contains("/register"), "{html}");
}

#[tokio::test]
async fn assets_are_compiled_in_and_revalidated_with_a_strong_etag() {
    let server = TestServer::start(|_| {}).await;
    for (name, content_type) in [
        ("tessera.js", "text/javascript; charset=utf-8"),
        ("tessera.css", "text/css; charset=utf-8"),
        ("example.js", "text/javascript; charset=utf-8"),
        ("example.html", "text/html; charset=utf-8"),
    ] {
        let response = server.get(&format!("/assets/{name}")).sent().await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], content_type, "{name}");
        assert_eq!(headers["cache-control"], "public, max-age=300", "{name}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{name}");
        let etag = headers["etag"].to_str().unwrap().to_owned();
        assert!(
            etag.starts_with('"') && !etag.starts_with("W/") && etag.len() == 26,
            "{name}: {etag}"
        );
        assert!(!response.bytes().await.unwrap().is_empty());
        let again = server
            .get(&format!("/assets/{name}"))
            .header("if-none-match", &etag)
            .sent()
            .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{name}");
        assert!(again.bytes().await.unwrap().is_empty());
    }
    // The example app needs to call the API, and nothing else.
    let example = server.get("/assets/example.html").sent().await;
    let csp = example.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("connect-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    // The client stores nothing where a script could read it later.
    let script = server
        .get("/assets/tessera.js")
        .sent()
        .await
        .text()
        .await
        .unwrap();
    for forbidden in [
        "localStorage.",
        "sessionStorage.",
        "indexedDB.",
        "document.cookie =",
    ] {
        assert!(!script.contains(forbidden), "tessera.js uses {forbidden}");
    }
    let missing = server.get("/assets/nothing.js").sent().await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// A token-transport login that asks for the refresh cookie.
async fn cookie_token_login(server: &TestServer) -> (Value, String) {
    let response = server
        .post("/v1/login")
        .json(&json!({
            "username": "alice", "password": PASSWORD,
            "transport": "token", "refresh_cookie": true,
        }))
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let line = set_cookie_line(response.headers(), REFRESH_COOKIE).expect("a refresh cookie");
    let value = set_cookie_value(response.headers(), REFRESH_COOKIE).unwrap();
    let attributes: Vec<&str> = line.split(';').map(str::trim).collect();
    for required in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/v1/token"] {
        assert!(attributes.contains(&required), "{line} lacks {required}");
    }
    assert!(!line.to_ascii_lowercase().contains("domain"), "{line}");
    assert!(line.contains("Max-Age="), "{line}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body["access_token"].is_string(), "{body}");
    (body, value)
}

async fn refresh_with_cookie(
    server: &TestServer,
    cookie: &str,
    headers: &[(&str, &str)],
    json_body: bool,
) -> Response {
    let mut request = server
        .post("/v1/token")
        .header("cookie", format!("{REFRESH_COOKIE}={cookie}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request = if json_body {
        request.json(&json!({"grant_type": "refresh_token"}))
    } else {
        request.form(&[("grant_type", "refresh_token")])
    };
    request.sent().await
}

#[tokio::test]
async fn the_refresh_cookie_rotates_from_same_origin_json_requests_only() {
    let server = TestServer::start_with_clock(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let (login, cookie) = cookie_token_login(&server).await;
    let origin = server.base.clone();

    // Refused, and nothing spent: what a cross-site page or a plain form could send.
    let refusals: [(&str, Pairs<'_>, bool); 5] = [
        ("no Origin", vec![], true),
        (
            "another origin",
            vec![("origin", "http://127.0.0.1:1")],
            true,
        ),
        ("Origin: null", vec![("origin", "null")], true),
        (
            "a cross-site fetch",
            vec![("origin", &origin), ("sec-fetch-site", "cross-site")],
            true,
        ),
        ("a form", vec![("origin", &origin)], false),
    ];
    for (what, headers, json_body) in refusals {
        let response = refresh_with_cookie(&server, &cookie, &headers, json_body).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{what}");
    }

    let rotated = refresh_with_cookie(&server, &cookie, &[("origin", &origin)], true).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let next = set_cookie_value(rotated.headers(), REFRESH_COOKIE).expect("a new cookie");
    assert_ne!(next, cookie);
    let body: Value = rotated.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["session"]["id"], login["session"]["id"]);
    assert_ne!(body["access_token"], login["access_token"]);
    // Browsers' same-origin fetch metadata is enough without Origin.
    let by_metadata =
        refresh_with_cookie(&server, &next, &[("sec-fetch-site", "same-origin")], true).await;
    assert_eq!(by_metadata.status(), StatusCode::OK);
    let latest = set_cookie_value(by_metadata.headers(), REFRESH_COOKIE).unwrap();

    // No cookie and no parameter.
    let none = server
        .post("/v1/token")
        .header("origin", &origin)
        .json(&json!({"grant_type": "refresh_token"}))
        .sent()
        .await;
    assert_eq!(none.status(), StatusCode::BAD_REQUEST);
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");

    // The spent cookie after the grace window: theft; the cookie is cleared and the session
    // ends.
    server.advance(Duration::from_secs(30));
    let replayed = refresh_with_cookie(&server, &cookie, &[("origin", &origin)], true).await;
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
    let clear = set_cookie_line(replayed.headers(), REFRESH_COOKIE).expect("cleared");
    assert!(
        clear.contains("Max-Age=0") && clear.contains("Path=/v1/token"),
        "{clear}"
    );
    let body: Value = replayed.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    let after = refresh_with_cookie(&server, &latest, &[("origin", &origin)], true).await;
    assert_eq!(
        after.status(),
        StatusCode::BAD_REQUEST,
        "the session was revoked"
    );
}

#[tokio::test]
async fn the_refresh_cookie_is_for_the_token_transport_and_logout_clears_it() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let refused = server
        .post("/v1/login")
        .json(&json!({"username": "alice", "password": PASSWORD, "refresh_cookie": true}))
        .sent()
        .await;
    common::problem(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;

    // Without the flag, the token transport is unchanged: refresh token in the body.
    let plain: Value = server
        .post("/v1/login")
        .json(&json!({"username": "alice", "password": PASSWORD, "transport": "token"}))
        .sent()
        .await
        .json()
        .await
        .unwrap();
    assert!(plain["refresh_token"].is_string(), "{plain}");

    let (login, cookie) = cookie_token_login(&server).await;
    let out = server
        .post("/v1/logout")
        .bearer_auth(login["access_token"].as_str().unwrap())
        .sent()
        .await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let clear = set_cookie_line(out.headers(), REFRESH_COOKIE).expect("cleared");
    assert!(
        clear.contains("Max-Age=0") && clear.contains("Path=/v1/token"),
        "{clear}"
    );
    let spent = refresh_with_cookie(&server, &cookie, &[("origin", &server.base)], true).await;
    assert_eq!(spent.status(), StatusCode::BAD_REQUEST);
}

/// The account's sensitive forms without JavaScript: a stale session is asked for its
/// password; wrong and refused passwords come back on the page and change nothing; a
/// change hands the browser a new cookie; deletion ends the account.
#[tokio::test]
async fn the_password_and_deletion_forms_work_without_javascript() {
    const NEW_PASSWORD: &str = "a brand new passphrase";
    let server = TestServer::start_with_clock(|config| {
        config.session.reauthentication_window = Duration::from_secs(60);
    })
    .await;
    let browser = server.user_session("alice").await;
    let tablet = server.login("alice", PASSWORD).await;
    let post = |path: &'static str, cookie: String, fields: Vec<(&'static str, String)>| {
        let server = &server;
        async move {
            server
                .post(path)
                .header("cookie", cookie)
                .header("origin", &server.base)
                .form(&fields)
                .sent()
                .await
        }
    };
    let csrf = || ("csrf_token", browser.csrf.clone());
    let change = |current: &str, new: &str| {
        vec![
            csrf(),
            ("current_password", current.to_owned()),
            ("new_password", new.to_owned()),
        ]
    };

    server.advance(Duration::from_secs(61));
    let stale = post(
        "/account/password",
        browser.cookie(),
        change(PASSWORD, NEW_PASSWORD),
    )
    .await;
    let (status, html) = page(stale, "stale change").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        html.contains(r#"action="/account/reauthenticate""#),
        "{html}"
    );
    let stale = post("/account/revoke-others", browser.cookie(), vec![csrf()]).await;
    let (status, html) = page(stale, "stale revoke-others").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains(r#"action="/account/reauthenticate""#));
    assert_eq!(live_sessions(&server, "alice").await, 2);

    let wrong = post(
        "/account/reauthenticate",
        browser.cookie(),
        vec![csrf(), ("password", "not the password".to_owned())],
    )
    .await;
    let (status, html) = page(wrong, "wrong reauthentication").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_text(&html), "That password is wrong.");
    assert!(
        !html.contains("not the password"),
        "passwords are never echoed"
    );
    let no_csrf = post(
        "/account/reauthenticate",
        browser.cookie(),
        vec![("password", PASSWORD.to_owned())],
    )
    .await;
    let (status, _) = page(no_csrf, "no csrf").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let proven = post(
        "/account/reauthenticate",
        browser.cookie(),
        vec![csrf(), ("password", PASSWORD.to_owned())],
    )
    .await;
    assert_eq!(proven.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&proven), "/account?notice=reauthenticated");

    let weak = post(
        "/account/password",
        browser.cookie(),
        change(PASSWORD, "password"),
    )
    .await;
    let (status, html) = page(weak, "weak password").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error_text(&html),
        "The password is too common; choose one that is harder to guess."
    );
    let wrong = post(
        "/account/password",
        browser.cookie(),
        change("not the password", NEW_PASSWORD),
    )
    .await;
    let (status, _) = page(wrong, "wrong current password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(live_sessions(&server, "alice").await, 2);

    let changed = post(
        "/account/password",
        browser.cookie(),
        change(PASSWORD, NEW_PASSWORD),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&changed), "/account?notice=password-changed");
    let new_token = set_cookie_value(changed.headers(), COOKIE_NAME).unwrap();
    assert_ne!(new_token, browser.token);
    let new_cookie = format!("{COOKIE_NAME}={new_token}");
    let old = get_page(&server, "/account", &browser.cookie()).await;
    assert_eq!(old.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        server
            .get("/v1/session")
            .bearer_auth(&tablet.token)
            .sent()
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, html) = page(
        get_page(&server, "/account?notice=password-changed", &new_cookie).await,
        "account after change",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let new_csrf = csrf_fields(&html).pop().unwrap();

    let deleted = post(
        "/account/delete",
        new_cookie.clone(),
        vec![
            ("csrf_token", new_csrf),
            ("password", NEW_PASSWORD.to_owned()),
        ],
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&deleted), "/login?notice=account-deleted");
    assert!(
        session_set_cookie(deleted.headers())
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(server.engine.user_by_username("alice").await.is_err());
}
