//! Token exchange (RFC 8693) through a real socket: audience-bound access tokens, one-time
//! operation tokens and child sessions, and every refusal the RFC names.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{PASSWORD, Sent, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::{AuditFilter, AuditKind, NewService, Role, UserId};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const TXN: &str = "urn:ietf:params:oauth:token-type:txn_token";
const SESSION: &str = "urn:tessera:params:oauth:token-type:session";
const COOKIE: &str = "urn:tessera:params:oauth:token-type:session_cookie";
const CLIENT: &str = "urn:tessera:params:oauth:token-type:client_credentials";
const BILLING: &str = "https://billing.example";
const CART: &str = "https://cart.example";

async fn server() -> TestServer {
    let server = TestServer::start(|_| {}).await;
    register_services(&server).await;
    server
}

async fn register_services(server: &TestServer) {
    server
        .engine
        .register_service(NewService {
            name: "billing".to_owned(),
            audience: BILLING.to_owned(),
            scopes: vec![
                "invoices:read".to_owned(),
                "refund=support|admin".to_owned(),
            ],
            max_ttl: Duration::from_secs(120),
            sessions: false,
        })
        .await
        .unwrap();
    server
        .engine
        .register_service(NewService {
            name: "cart".to_owned(),
            audience: CART.to_owned(),
            scopes: vec!["cart".to_owned()],
            max_ttl: Duration::from_secs(300),
            sessions: true,
        })
        .await
        .unwrap();
}

/// A request's form, and the status and OAuth error it must get.
type Refusal<'a> = (Vec<(&'a str, &'a str)>, StatusCode, &'a str);

async fn token_login(server: &TestServer, username: &str) -> Value {
    server
        .post("/v1/login")
        .json(&json!({"username": username, "password": PASSWORD, "transport": "token"}))
        .sent()
        .await
        .json()
        .await
        .unwrap()
}

async fn grant_role(server: &TestServer, username: &str, role: &str) {
    let user = server.engine.user_by_username(username).await.unwrap();
    server
        .engine
        .add_role(&user.id, Role::parse(role).unwrap())
        .await
        .unwrap();
}

async fn exchange(server: &TestServer, form: &[(&str, &str)]) -> reqwest::Response {
    let mut parameters = vec![("grant_type", EXCHANGE)];
    parameters.extend_from_slice(form);
    server.post("/v1/token").form(&parameters).sent().await
}

async fn oauth_error(response: reqwest::Response, status: StatusCode, error: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
}

fn header(jwt: &str) -> Value {
    let segment = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

fn claims(jwt: &str) -> Value {
    let segment = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

async fn client_credentials(server: &TestServer, name: &str) -> (String, String) {
    let created = server.engine.create_client(name).await.unwrap();
    (created.record.id, created.secret.encode())
}

async fn introspect(server: &TestServer, client: &(String, String), token: &str) -> Value {
    server
        .post("/v1/introspect")
        .basic_auth(&client.0, Some(&client.1))
        .form(&[("token", token)])
        .sent()
        .await
        .json()
        .await
        .unwrap()
}

async fn exchanged_events(server: &TestServer) -> usize {
    let filter = AuditFilter {
        kind: Some(AuditKind::TokenExchanged),
        ..AuditFilter::default()
    };
    server
        .engine
        .audit_events(&filter, 0, 1000)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn discovery_lists_token_exchange() {
    let server = TestServer::start(|_| {}).await;
    let metadata: Value = server
        .get("/.well-known/oauth-authorization-server")
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let grants = metadata["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!(EXCHANGE)), "{metadata}");
    assert!(grants.contains(&json!("refresh_token")));
}

#[tokio::test]
async fn an_access_token_is_exchanged_for_one_bound_to_a_service_with_no_more_scope_than_allowed() {
    let server = server().await;
    server.register("alice", PASSWORD).await;
    let login = token_login(&server, "alice").await;
    let access = login["access_token"].as_str().unwrap();

    // No scope asked: every scope the user may have — not the role-gated refund.
    let response = exchange(
        &server,
        &[
            ("subject_token", access),
            ("subject_token_type", ACCESS),
            ("audience", BILLING),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["issued_token_type"], ACCESS);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "invoices:read");
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!(
        (110..=120).contains(&expires_in),
        "capped by max_ttl: {expires_in}"
    );
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(header(token)["typ"], "at+jwt");
    let exchanged = claims(token);
    let original = claims(access);
    assert_eq!(exchanged["aud"], BILLING);
    assert_eq!(exchanged["sid"], original["sid"], "the parent session");
    assert_eq!(exchanged["sub"], original["sub"]);
    assert_ne!(exchanged["jti"], original["jti"]);
    assert!(exchanged.get("act").is_none());

    // Down-scoping cannot widen: refund needs a role alice lacks, an unknown scope is
    // unknown; each is refused and nothing is issued or recorded.
    let before = exchanged_events(&server).await;
    for scope in ["refund", "invoices:read refund", "invoices:write"] {
        let response = exchange(
            &server,
            &[
                ("subject_token", access),
                ("subject_token_type", ACCESS),
                ("audience", BILLING),
                ("scope", scope),
            ],
        )
        .await;
        oauth_error(response, StatusCode::BAD_REQUEST, "invalid_scope").await;
    }
    assert_eq!(exchanged_events(&server).await, before);

    // With the role, refund is granted; asked for alone, it is all that is granted.
    grant_role(&server, "alice", "support").await;
    let refreshed: Value = server
        .post("/v1/token")
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", login["refresh_token"].as_str().unwrap()),
        ])
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let fresh = refreshed["access_token"].as_str().unwrap();
    let body: Value = exchange(
        &server,
        &[
            ("subject_token", fresh),
            ("subject_token_type", ACCESS),
            ("resource", BILLING),
            ("scope", "refund"),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["scope"], "refund", "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["roles"],
        json!(["support"])
    );
    assert_eq!(exchanged_events(&server).await, before + 1);
}

#[tokio::test]
async fn refusals_answer_with_the_rfc_8693_error_and_change_nothing() {
    let server = server().await;
    server.register("bob", PASSWORD).await;
    let login = token_login(&server, "bob").await;
    let access = login["access_token"].as_str().unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();
    let before = exchanged_events(&server).await;

    let cases: Vec<Refusal<'_>> = vec![
        // An unregistered audience.
        (
            vec![
                ("subject_token", access),
                ("subject_token_type", ACCESS),
                ("audience", "https://nobody.example"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_target",
        ),
        // No target at all, and two different ones.
        (
            vec![("subject_token", access), ("subject_token_type", ACCESS)],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            vec![
                ("subject_token", access),
                ("subject_token_type", ACCESS),
                ("audience", BILLING),
                ("resource", CART),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        // A refresh token as the subject, declared or disguised.
        (
            vec![
                ("subject_token", refresh),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:refresh_token",
                ),
                ("audience", BILLING),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            vec![
                ("subject_token", refresh),
                ("subject_token_type", ACCESS),
                ("audience", BILLING),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        // A forged or garbled subject.
        (
            vec![
                ("subject_token", "eyJhbGciOiJub25lIn0.e30."),
                ("subject_token_type", ACCESS),
                ("audience", BILLING),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            vec![
                ("subject_token", "not-a-session-token"),
                ("subject_token_type", SESSION),
                ("audience", BILLING),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        // No subject type; an unknown requested type.
        (
            vec![("subject_token", access), ("audience", BILLING)],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            vec![
                ("subject_token", access),
                ("subject_token_type", ACCESS),
                ("audience", BILLING),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:saml2",
                ),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        // A public client asking for delegation: an actor that is not a client's credentials.
        (
            vec![
                ("subject_token", access),
                ("subject_token_type", ACCESS),
                ("audience", BILLING),
                ("actor_token", access),
                ("actor_token_type", ACCESS),
            ],
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
        ),
        // An actor token without its type.
        (
            vec![
                ("subject_token", access),
                ("subject_token_type", ACCESS),
                ("audience", BILLING),
                ("actor_token", "id:secret"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        // Wrong client credentials as the actor.
        (
            vec![
                ("subject_token", access),
                ("subject_token_type", ACCESS),
                ("audience", BILLING),
                ("actor_token", "nobody:wrong"),
                ("actor_token_type", CLIENT),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        // A one-time token with no operation, or two.
        (
            vec![
                ("subject_token", access),
                ("subject_token_type", ACCESS),
                ("audience", BILLING),
                ("requested_token_type", TXN),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        // A child session from a service that takes none.
        (
            vec![
                ("subject_token", access),
                ("subject_token_type", ACCESS),
                ("audience", BILLING),
                ("requested_token_type", SESSION),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (form, status, error) in cases {
        let response = exchange(&server, &form).await;
        assert_eq!(response.status(), status, "{form:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{form:?}: {body}");
    }
    // JSON bodies are refused the same way; unknown parameters are invalid_request.
    let response = server
        .post("/v1/token")
        .json(&json!({"grant_type": EXCHANGE, "subject_token": access, "subject_token_type": ACCESS, "audience": BILLING, "bogus": 1}))
        .sent()
        .await;
    oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    // Exchange parameters on a refresh are refused, not ignored.
    let response = server
        .post("/v1/token")
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("audience", BILLING),
        ])
        .sent()
        .await;
    oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(exchanged_events(&server).await, before);

    // A revoked subject: logout, then the same access token is refused.
    let logout = server.post("/v1/logout").bearer_auth(access).sent().await;
    assert!(logout.status().is_success());
    let response = exchange(
        &server,
        &[
            ("subject_token", access),
            ("subject_token_type", ACCESS),
            ("audience", BILLING),
        ],
    )
    .await;
    oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(exchanged_events(&server).await, before);
}

#[tokio::test]
async fn an_expired_subject_is_refused() {
    let server = TestServer::start_with_clock(|config| {
        config.server.bind = "127.0.0.1:0".parse().unwrap();
    })
    .await;
    register_services(&server).await;
    server.register("erin", PASSWORD).await;
    let login = token_login(&server, "erin").await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    server.advance(Duration::from_secs(6 * 60));
    let response = exchange(
        &server,
        &[
            ("subject_token", &access),
            ("subject_token_type", ACCESS),
            ("audience", BILLING),
        ],
    )
    .await;
    oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn the_session_cookie_is_a_subject_only_with_its_csrf_token_from_the_same_origin() {
    let server = server().await;
    let login = server.user_session("carol").await;
    let form = [
        ("grant_type", EXCHANGE),
        ("subject_token_type", COOKIE),
        ("audience", BILLING),
    ];
    let without_csrf = server
        .post("/v1/token")
        .header("cookie", login.cookie())
        .form(&form)
        .sent()
        .await;
    oauth_error(without_csrf, StatusCode::FORBIDDEN, "invalid_request").await;
    let cross_site = server
        .post("/v1/token")
        .header("cookie", login.cookie())
        .header("x-csrf-token", &login.csrf)
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .sent()
        .await;
    oauth_error(cross_site, StatusCode::FORBIDDEN, "invalid_request").await;
    let no_cookie = server
        .post("/v1/token")
        .header("x-csrf-token", &login.csrf)
        .form(&form)
        .sent()
        .await;
    oauth_error(no_cookie, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let response = server
        .post("/v1/token")
        .header("cookie", login.cookie())
        .header("x-csrf-token", &login.csrf)
        .form(&form)
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let token = claims(body["access_token"].as_str().unwrap());
    assert_eq!(token["sid"], login.session_id());
    assert_eq!(token["aud"], BILLING);
}

#[tokio::test]
async fn one_time_tokens_carry_one_operation_and_live_seconds() {
    let server = server().await;
    server.register("dave", PASSWORD).await;
    grant_role(&server, "dave", "admin").await;
    let login = token_login(&server, "dave").await;
    let access = login["access_token"].as_str().unwrap();
    let response = exchange(
        &server,
        &[
            ("subject_token", access),
            ("subject_token_type", ACCESS),
            ("audience", BILLING),
            ("requested_token_type", TXN),
            ("scope", "refund"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["issued_token_type"], TXN);
    assert_eq!(body["token_type"], "N_A");
    assert_eq!(body["scope"], "refund");
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!((25..=30).contains(&expires_in), "{expires_in}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(header(token)["typ"], "txntoken+jwt");
    let one_time = claims(token);
    assert_eq!(one_time["aud"], BILLING);
    assert_eq!(one_time["scope"], "refund");
    assert_eq!(one_time["txn"], one_time["jti"]);
    assert_eq!(one_time["rctx"]["req_ip"], "127.0.0.1");
    assert_eq!(one_time["sid"], claims(access)["sid"]);

    // Two operations in one token are refused; so is a token for Tessera's own routes.
    let response = exchange(
        &server,
        &[
            ("subject_token", access),
            ("subject_token_type", ACCESS),
            ("audience", BILLING),
            ("requested_token_type", TXN),
            ("scope", "refund invoices:read"),
        ],
    )
    .await;
    oauth_error(response, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let own_route = server.get("/v1/session").bearer_auth(token).sent().await;
    assert_eq!(own_route.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_registered_client_acting_for_the_user_is_named_in_act_and_chains_nest() {
    let server = server().await;
    server.register("frank", PASSWORD).await;
    let login = token_login(&server, "frank").await;
    let access = login["access_token"].as_str().unwrap();
    let (orders_id, orders_secret) = client_credentials(&server, "orders").await;
    let orders_actor = format!("{orders_id}:{orders_secret}");
    let body: Value = exchange(
        &server,
        &[
            ("subject_token", access),
            ("subject_token_type", ACCESS),
            ("audience", CART),
            ("actor_token", &orders_actor),
            ("actor_token_type", CLIENT),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let for_cart = body["access_token"].as_str().unwrap();
    assert_eq!(claims(for_cart)["act"], json!({"sub": orders_id}));

    // The cart service, holding that token, calls billing for the same user: the chain
    // shows both, the current actor outermost.
    let (cart_id, cart_secret) = client_credentials(&server, "cart-service").await;
    let body: Value = exchange(
        &server,
        &[
            ("subject_token", for_cart),
            ("subject_token_type", ACCESS),
            ("audience", BILLING),
            ("actor_token", &format!("{cart_id}:{cart_secret}")),
            ("actor_token_type", CLIENT),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let for_billing = claims(body["access_token"].as_str().unwrap());
    assert_eq!(
        for_billing["act"],
        json!({"sub": cart_id, "act": {"sub": orders_id}})
    );
    assert_eq!(for_billing["sid"], claims(access)["sid"]);
}

/// Exchanges `access` for a cart access token, then that for a cart child session.
async fn child_session(server: &TestServer, access: &str) -> Value {
    let body: Value = exchange(
        server,
        &[
            ("subject_token", access),
            ("subject_token_type", ACCESS),
            ("audience", CART),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let for_cart = body["access_token"].as_str().unwrap().to_owned();
    let response = exchange(
        server,
        &[
            ("subject_token", &for_cart),
            ("subject_token_type", ACCESS),
            ("audience", CART),
            ("requested_token_type", SESSION),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn child_sessions_belong_to_their_service_and_end_with_their_parent_only() {
    let server = server().await;
    server.register("gina", PASSWORD).await;
    let login = token_login(&server, "gina").await;
    let access = login["access_token"].as_str().unwrap();
    let resource_server = client_credentials(&server, "cart-backend").await;

    // Only from a token issued for that service.
    let response = exchange(
        &server,
        &[
            ("subject_token", access),
            ("subject_token_type", ACCESS),
            ("audience", CART),
            ("requested_token_type", SESSION),
        ],
    )
    .await;
    oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;

    let child = child_session(&server, access).await;
    assert_eq!(child["issued_token_type"], SESSION);
    assert_eq!(child["token_type"], "N_A");
    assert!(child["csrf_token"].is_string());
    let child_token = child["access_token"].as_str().unwrap();
    let parent = server.get("/v1/session").bearer_auth(access).sent().await;
    let parent: Value = parent.json().await.unwrap();
    let parent_id = parent["session"]["id"].as_str().unwrap();

    // Introspection accepts it, for its service.
    let answer = introspect(&server, &resource_server, child_token).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["aud"], json!([CART]));
    assert_eq!(answer["token_type"], "session_token");
    let child_id = answer["sid"].as_str().unwrap().to_owned();
    assert_ne!(child_id, parent_id);
    // Tessera's own routes do not.
    let own = server
        .get("/v1/session")
        .bearer_auth(child_token)
        .sent()
        .await;
    assert_eq!(own.status(), StatusCode::UNAUTHORIZED);
    // The owner sees it under its parent, never beyond the parent's absolute expiry.
    let list: Value = server
        .get("/v1/sessions")
        .bearer_auth(access)
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{list}");
    let children = sessions[0]["children"].as_array().unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["id"], child_id.as_str());
    assert_eq!(children[0]["service"], CART);
    assert_eq!(children[0]["expires_at"], sessions[0]["expires_at"]);

    // Revoking the child (the cart service logging the user out there) leaves the parent.
    let revoked = server
        .post("/v1/revoke")
        .form(&[("token", child_token)])
        .sent()
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        introspect(&server, &resource_server, child_token).await["active"],
        false
    );
    let parent_still = server.get("/v1/session").bearer_auth(access).sent().await;
    assert_eq!(parent_still.status(), StatusCode::OK);

    // Revoking the parent ends a new child too, and the feed names the child.
    let second = child_session(&server, access).await;
    let second_token = second["access_token"].as_str().unwrap();
    let second_id = introspect(&server, &resource_server, second_token).await["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let logout = server.post("/v1/logout").bearer_auth(access).sent().await;
    assert!(logout.status().is_success());
    assert_eq!(
        introspect(&server, &resource_server, second_token).await["active"],
        false
    );
    let feed: Value = server
        .get("/v1/revocations")
        .basic_auth(&resource_server.0, Some(&resource_server.1))
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let revoked: Vec<&str> = feed["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["sid"].as_str())
        .collect();
    assert!(revoked.contains(&second_id.as_str()), "{feed}");
    assert!(revoked.contains(&parent_id), "{feed}");
}

#[tokio::test]
async fn a_child_never_outlives_its_parent() {
    let server = TestServer::start_with_clock(|config| {
        config.server.bind = "127.0.0.1:0".parse().unwrap();
        config.session.absolute_timeout = Duration::from_secs(3600);
        config.session.idle_timeout = Duration::from_secs(1800);
    })
    .await;
    register_services(&server).await;
    server.register("hana", PASSWORD).await;
    let login = token_login(&server, "hana").await;
    let resource_server = client_credentials(&server, "cart-backend").await;
    // Keep the parent busy (a refresh every 25 minutes) so only its absolute expiry ends it.
    let mut refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let mut access = String::new();
    for _ in 0..2 {
        server.advance(Duration::from_secs(25 * 60));
        let refreshed: Value = server
            .post("/v1/token")
            .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
            .sent()
            .await
            .json()
            .await
            .unwrap();
        refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
        access = refreshed["access_token"].as_str().unwrap().to_owned();
    }
    let child = child_session(&server, &access).await;
    let child_token = child["access_token"].as_str().unwrap();
    let expires_in = child["expires_in"].as_i64().unwrap();
    assert!(
        expires_in <= 10 * 60,
        "at most the parent's remaining life: {expires_in}"
    );
    assert_eq!(
        introspect(&server, &resource_server, child_token).await["active"],
        true
    );
    // Its idle timeout is its own (30 min) but the parent's absolute expiry comes first.
    server.advance(Duration::from_secs(10 * 60 + 1));
    assert_eq!(
        introspect(&server, &resource_server, child_token).await["active"],
        false
    );
}

#[tokio::test]
async fn concurrent_exchanges_and_logout_never_leave_a_live_child_of_a_revoked_parent() {
    let server = server().await;
    server.register("ivan", PASSWORD).await;
    let resource_server = client_credentials(&server, "cart-backend").await;
    for _round in 0..3 {
        let login = token_login(&server, "ivan").await;
        let access = login["access_token"].as_str().unwrap().to_owned();
        let body: Value = exchange(
            &server,
            &[
                ("subject_token", &access),
                ("subject_token_type", ACCESS),
                ("audience", CART),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
        let for_cart = body["access_token"].as_str().unwrap().to_owned();
        let mut exchanges = Vec::new();
        for _ in 0..12 {
            let request = server.post("/v1/token").form(&[
                ("grant_type", EXCHANGE),
                ("subject_token", for_cart.as_str()),
                ("subject_token_type", ACCESS),
                ("audience", CART),
                ("requested_token_type", SESSION),
            ]);
            exchanges.push(tokio::spawn(async move { request.sent().await }));
        }
        let logout = server.post("/v1/logout").bearer_auth(&access).sent().await;
        assert!(logout.status().is_success());
        let mut issued = Vec::new();
        for exchange in exchanges {
            let response = exchange.await.unwrap();
            if response.status() == StatusCode::OK {
                let body: Value = response.json().await.unwrap();
                issued.push(body["access_token"].as_str().unwrap().to_owned());
            } else {
                assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            }
        }
        for child in &issued {
            let answer = introspect(&server, &resource_server, child).await;
            assert_eq!(answer["active"], false, "a live child of a revoked parent");
        }
        // And none is left live in the store either.
        let user_id = UserId::parse(claims(&access)["sub"].as_str().unwrap()).unwrap();
        let live = server.engine.sessions_of(&user_id).await.unwrap();
        assert!(
            live.iter().all(|session| session.parent.is_none()),
            "{live:?}"
        );
    }
}
