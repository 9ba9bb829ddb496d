//! The admin API through a real socket: only admin client credentials open it (no
//! credentials, a session, a wrong secret or a client without the scope change nothing),
//! every operation works with them, paging is stable while users are being added, and bad
//! input gets a problem.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{PASSWORD, Sent as _, TestServer, client, problem};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tessera_core::Standing;

/// A password the policy accepts, other than [`PASSWORD`].
const NEW_PASSWORD: &str = "a brand new passphrase";

/// An API client's id and secret.
#[derive(Debug, Clone)]
struct Credentials {
    id: String,
    secret: String,
}

async fn admin_client(server: &TestServer, name: &str) -> Credentials {
    let created = server.engine.create_admin_client(name).await.unwrap();
    assert!(created.record.admin);
    Credentials {
        id: created.record.id,
        secret: created.secret.encode(),
    }
}

async fn service_client(server: &TestServer, name: &str) -> Credentials {
    let created = server.engine.create_client(name).await.unwrap();
    assert!(!created.record.admin);
    Credentials {
        id: created.record.id,
        secret: created.secret.encode(),
    }
}

/// A request to `path` on `server` with `credentials` in HTTP Basic.
fn admin(
    server: &TestServer,
    credentials: &Credentials,
    method: Method,
    path: &str,
) -> RequestBuilder {
    client()
        .request(method, server.url(path))
        .basic_auth(&credentials.id, Some(&credentials.secret))
}

async fn ok_json(response: reqwest::Response, status: StatusCode) -> Value {
    let got = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Every admin operation, with a body where it takes one, for `user_id` and `session_id`.
fn operations(user_id: &str, session_id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/v1/admin/users".into(), None),
        (
            Method::POST,
            "/v1/admin/users".into(),
            Some(json!({"username": "mallory", "password": PASSWORD})),
        ),
        (Method::GET, format!("/v1/admin/users/{user_id}"), None),
        (
            Method::PATCH,
            format!("/v1/admin/users/{user_id}"),
            Some(json!({"roles": ["admin"], "claims": {"tenant": "evil"}, "disabled": true})),
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{user_id}/password"),
            Some(json!({"password": NEW_PASSWORD})),
        ),
        (Method::DELETE, format!("/v1/admin/users/{user_id}"), None),
        (
            Method::GET,
            format!("/v1/admin/users/{user_id}/sessions"),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/admin/users/{user_id}/sessions"),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/admin/sessions/{session_id}"),
            None,
        ),
        (Method::GET, "/v1/admin/keys".into(), None),
        (Method::POST, "/v1/admin/keys/rotate".into(), None),
        (Method::GET, "/v1/admin/clients".into(), None),
        (
            Method::POST,
            "/v1/admin/clients".into(),
            Some(json!({"name": "intruder", "admin": true})),
        ),
        (Method::DELETE, "/v1/admin/clients/billing".into(), None),
        (Method::GET, "/v1/admin/services".into(), None),
        (
            Method::POST,
            "/v1/admin/services".into(),
            Some(json!({"name": "intruder", "audience": "https://evil.example"})),
        ),
        (Method::DELETE, "/v1/admin/services/billing".into(), None),
        (Method::GET, "/v1/admin/audit".into(), None),
    ]
}

fn with_body(request: RequestBuilder, body: &Option<Value>) -> RequestBuilder {
    match body {
        Some(body) => request.json(body),
        None => request,
    }
}

/// What the refused requests could have changed, read through the engine: the users and
/// their standing, the clients, the published keys.
/// Users with their standing, clients, services (name and audience), published key ids.
type State = (
    Vec<(String, Standing)>,
    Vec<(String, bool)>,
    Vec<(String, String)>,
    Vec<String>,
);

async fn state_of(server: &TestServer) -> State {
    let mut users = Vec::new();
    for user in server.engine.users().await.unwrap() {
        let standing = server.engine.standing_of(&user.id).await.unwrap();
        users.push((user.username, standing));
    }
    let clients = server
        .engine
        .clients()
        .await
        .unwrap()
        .into_iter()
        .map(|client| (client.name, client.admin))
        .collect();
    let services = server
        .engine
        .services()
        .await
        .unwrap()
        .into_iter()
        .map(|service| (service.name, service.audience))
        .collect();
    let jwks: Value = server
        .get("/.well-known/jwks.json")
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let kids = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect();
    (users, clients, services, kids)
}

#[tokio::test]
async fn only_admin_client_credentials_open_the_admin_api_and_refusals_change_nothing() {
    let server = TestServer::start(|_| {}).await;
    let alice = server.user_session("alice").await;
    let alice_id = alice.body["session"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let session_id = alice.session_id().to_owned();
    let ops = admin_client(&server, "ops").await;
    let billing = service_client(&server, "billing").await;
    let wrong = Credentials {
        secret: service_client(&server, "other").await.secret,
        ..ops.clone()
    };
    let before = state_of(&server).await;

    for (method, path, body) in operations(&alice_id, &session_id) {
        let what = format!("{method} {path}");
        // No credentials at all.
        let response = with_body(client().request(method.clone(), server.url(&path)), &body)
            .sent()
            .await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"tessera\"",
            "{what}"
        );
        problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
        // A user's session, as the cookie (with its CSRF token) or as a bearer token.
        let response = with_body(client().request(method.clone(), server.url(&path)), &body)
            .header("cookie", alice.cookie())
            .header("x-csrf-token", &alice.csrf)
            .sent()
            .await;
        problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
        let response = with_body(client().request(method.clone(), server.url(&path)), &body)
            .bearer_auth(&alice.token)
            .sent()
            .await;
        problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
        // The admin client's id with another client's secret.
        let response = with_body(admin(&server, &wrong, method.clone(), &path), &body)
            .sent()
            .await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"tessera\"",
            "{what}"
        );
        problem(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
        // A registered client without the admin scope.
        let response = with_body(admin(&server, &billing, method.clone(), &path), &body)
            .sent()
            .await;
        problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }

    assert_eq!(
        state_of(&server).await,
        before,
        "a refused request changed something"
    );
    let session = server
        .get("/v1/session")
        .bearer_auth(&alice.token)
        .sent()
        .await;
    assert_eq!(
        session.status(),
        StatusCode::OK,
        "alice's session was revoked"
    );
    // The real credentials do open it.
    let listed = ok_json(
        admin(&server, &ops, Method::GET, "/v1/admin/users")
            .sent()
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["users"][0]["username"], "alice", "{listed}");
}

#[tokio::test]
async fn users_are_created_shown_and_deleted_and_deletion_ends_every_credential() {
    let server = TestServer::start(|config| config.auth.registration = false).await;
    let ops = admin_client(&server, "ops").await;
    let create = |body: Value| {
        admin(&server, &ops, Method::POST, "/v1/admin/users")
            .json(&body)
            .sent()
    };

    // Registration is closed; the admin API still creates accounts, by the same rules.
    let created = ok_json(
        create(json!({"username": "Alice", "password": PASSWORD})).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["username"], "Alice");
    let id = created["id"].as_str().unwrap().to_owned();
    problem(
        create(json!({"username": "alice", "password": PASSWORD})).await,
        StatusCode::CONFLICT,
        "username_taken",
    )
    .await;
    problem(
        create(json!({"username": "bob", "password": "short"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    problem(
        create(json!({"username": "bob", "password": PASSWORD, "admin": true})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(server.engine.users().await.unwrap().len(), 1);
    assert_eq!(created["roles"], json!([]));
    assert_eq!(created["claims"], json!({}));
    assert_eq!(created["disabled"], false);

    let shown = ok_json(
        admin(&server, &ops, Method::GET, &format!("/v1/admin/users/{id}"))
            .sent()
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown, created);
    assert!(shown.get("password_hash").is_none(), "{shown}");

    // Every form of credential of alice's sessions.
    let cookie = server.login("Alice", PASSWORD).await;
    let tokens = ok_json(
        server
            .post("/v1/login")
            .json(&json!({"username": "alice", "password": PASSWORD, "transport": "token"}))
            .sent()
            .await,
        StatusCode::OK,
    )
    .await;
    let jwt = tokens["access_token"].as_str().unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let session_with = |bearer: &str| server.get("/v1/session").bearer_auth(bearer).sent();
    assert_eq!(session_with(jwt).await.status(), StatusCode::OK);
    assert_eq!(session_with(&cookie.token).await.status(), StatusCode::OK);

    let deleted = admin(
        &server,
        &ops,
        Method::DELETE,
        &format!("/v1/admin/users/{id}"),
    )
    .sent()
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    for bearer in [jwt, cookie.token.as_str()] {
        problem(
            session_with(bearer).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
    }
    let cookie_check = server
        .get("/v1/session")
        .header("cookie", cookie.cookie())
        .sent()
        .await;
    assert_eq!(cookie_check.status(), StatusCode::UNAUTHORIZED);
    let refreshed = server
        .post("/v1/token")
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .sent()
        .await;
    let refusal = ok_json(refreshed, StatusCode::BAD_REQUEST).await;
    assert_eq!(refusal["error"], "invalid_grant");
    let login = server.login_response("alice", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);

    for path in [
        format!("/v1/admin/users/{id}"),
        format!("/v1/admin/users/{id}/sessions"),
        "/v1/admin/users/not-a-user-id".to_owned(),
    ] {
        let response = admin(&server, &ops, Method::GET, &path).sent().await;
        problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let again = admin(
        &server,
        &ops,
        Method::DELETE,
        &format!("/v1/admin/users/{id}"),
    )
    .sent()
    .await;
    problem(again, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn sessions_are_listed_without_secrets_and_revoked_one_or_all() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    let first = server.user_session("alice").await;
    let second = server.login("alice", PASSWORD).await;
    let bob = server.user_session("bob").await;
    let alice_id = first.body["session"]["user"]["id"].as_str().unwrap();
    let sessions_path = format!("/v1/admin/users/{alice_id}/sessions");

    let response = admin(&server, &ops, Method::GET, &sessions_path)
        .sent()
        .await;
    let text = response.text().await.unwrap();
    for secret in [&first.token, &first.csrf, &second.token, &second.csrf] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret is listed: {text}"
        );
    }
    let listed: Value = serde_json::from_str(&text).unwrap();
    let ids: Vec<&str> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|session| session["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.session_id(), first.session_id()], "{listed}");
    assert_eq!(listed["sessions"][0]["user"]["username"], "alice");

    // One, by id, whoever owns it.
    let revoke_one = |id: &str| {
        admin(
            &server,
            &ops,
            Method::DELETE,
            &format!("/v1/admin/sessions/{id}"),
        )
        .sent()
    };
    assert_eq!(
        revoke_one(first.session_id()).await.status(),
        StatusCode::NO_CONTENT
    );
    let check = |token: &str| server.get("/v1/session").bearer_auth(token).sent();
    assert_eq!(check(&first.token).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(check(&second.token).await.status(), StatusCode::OK);
    problem(
        revoke_one(first.session_id()).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        revoke_one("not-a-session").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // All of alice's, and nobody else's.
    let revoked = ok_json(
        admin(&server, &ops, Method::DELETE, &sessions_path)
            .sent()
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(revoked, json!({"revoked": 1}));
    assert_eq!(
        check(&second.token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(check(&bob.token).await.status(), StatusCode::OK);
    let listed = ok_json(
        admin(&server, &ops, Method::GET, &sessions_path)
            .sent()
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed, json!({"sessions": []}));
    // Bob's session, revoked by id.
    assert_eq!(
        revoke_one(bob.session_id()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(check(&bob.token).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn keys_are_listed_without_key_material_and_a_rotation_is_published_at_once() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    let keys_of = || async {
        ok_json(
            admin(&server, &ops, Method::GET, "/v1/admin/keys")
                .sent()
                .await,
            StatusCode::OK,
        )
        .await
    };
    let listed = keys_of().await;
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{listed}");
    let first_kid = keys[0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(keys[0]["algorithm"], "EdDSA");
    assert_eq!(keys[0]["status"], "signing");
    assert!(keys[0]["retired_at"].is_null());
    let fields: HashSet<&str> = keys[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        HashSet::from([
            "kid",
            "algorithm",
            "status",
            "created_at",
            "activates_at",
            "retired_at"
        ]),
        "only metadata: {listed}"
    );

    let rotated = ok_json(
        admin(&server, &ops, Method::POST, "/v1/admin/keys/rotate")
            .sent()
            .await,
        StatusCode::CREATED,
    )
    .await;
    let new_kid = rotated["kid"].as_str().unwrap();
    assert_ne!(new_kid, first_kid);
    let jwks: Value = server
        .get("/.well-known/jwks.json")
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap())
        .collect();
    assert!(published.contains(&new_kid), "{jwks}");
    assert!(published.contains(&first_kid.as_str()), "{jwks}");

    let listed = keys_of().await;
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{listed}");
    assert_eq!(keys[0]["kid"], first_kid.as_str());
    assert_eq!(
        keys[0]["status"], "signing",
        "signs until the new key takes over"
    );
    assert_eq!(keys[0]["retired_at"], rotated["activates_at"]);
    assert_eq!(keys[1]["kid"], new_kid);
    assert_eq!(keys[1]["status"], "pending");
    assert_eq!(keys[1]["activates_at"], rotated["activates_at"]);
}

#[tokio::test]
async fn clients_are_added_listed_and_removed_and_the_secret_is_shown_once() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    let add = |body: Value| {
        admin(&server, &ops, Method::POST, "/v1/admin/clients")
            .json(&body)
            .sent()
    };
    let billing = ok_json(add(json!({"name": "billing"})).await, StatusCode::CREATED).await;
    assert_eq!(billing["name"], "billing");
    assert_eq!(billing["admin"], false);
    let billing = Credentials {
        id: billing["client_id"].as_str().unwrap().to_owned(),
        secret: billing["client_secret"].as_str().unwrap().to_owned(),
    };
    let deputy = ok_json(
        add(json!({"name": "deputy", "admin": true})).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(deputy["admin"], true);
    let deputy = Credentials {
        id: deputy["client_id"].as_str().unwrap().to_owned(),
        secret: deputy["client_secret"].as_str().unwrap().to_owned(),
    };

    // The new service client introspects but is no admin; the new admin client is one.
    let introspect = |credentials: &Credentials| {
        server
            .post("/v1/introspect")
            .basic_auth(&credentials.id, Some(&credentials.secret))
            .form(&[("token", "whatever")])
            .sent()
    };
    assert_eq!(introspect(&billing).await.status(), StatusCode::OK);
    problem(
        admin(&server, &billing, Method::GET, "/v1/admin/clients")
            .sent()
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let response = admin(&server, &deputy, Method::GET, "/v1/admin/clients")
        .sent()
        .await;
    let text = response.text().await.unwrap();
    for secret in [&ops.secret, &billing.secret, &deputy.secret] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret is listed: {text}"
        );
    }
    let listed: Value = serde_json::from_str(&text).unwrap();
    let names: Vec<(&str, bool)> = listed["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|client| {
            (
                client["name"].as_str().unwrap(),
                client["admin"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [("ops", true), ("billing", false), ("deputy", true)]);

    problem(
        add(json!({"name": "billing"})).await,
        StatusCode::CONFLICT,
        "client_name_taken",
    )
    .await;
    for bad in [
        json!({"name": ""}),
        json!({"name": "a\nb"}),
        json!({"name": "x".repeat(65)}),
        json!({"name": "x", "scope": "admin"}),
        json!({"admin": true}),
    ] {
        problem(
            add(bad.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(server.engine.clients().await.unwrap().len(), 3);

    let remove = |name: &str| {
        admin(
            &server,
            &deputy,
            Method::DELETE,
            &format!("/v1/admin/clients/{name}"),
        )
        .sent()
    };
    assert_eq!(remove("billing").await.status(), StatusCode::NO_CONTENT);
    let refused = ok_json(introspect(&billing).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(refused["error"], "invalid_client");
    problem(remove("billing").await, StatusCode::NOT_FOUND, "not_found").await;
    // An admin client removed mid-script loses the API at once.
    assert_eq!(remove("ops").await.status(), StatusCode::NO_CONTENT);
    problem(
        admin(&server, &ops, Method::GET, "/v1/admin/clients")
            .sent()
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
}

/// Walks `GET /v1/admin/users` page by page; returns the usernames of each page.
#[tokio::test]
async fn services_are_registered_listed_and_removed_as_the_admin_client() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    let add = |body: Value| {
        admin(&server, &ops, Method::POST, "/v1/admin/services")
            .json(&body)
            .sent()
    };
    let billing = ok_json(
        add(json!({
            "name": "billing",
            "audience": "https://billing.example",
            "scopes": ["invoices:read", "refund=support|admin"],
            "max_ttl_seconds": 120,
        }))
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        billing["scopes"],
        json!(["invoices:read", "refund=support|admin"])
    );
    assert_eq!(billing["max_ttl_seconds"], 120);
    assert_eq!(billing["sessions"], false);
    let cart = ok_json(
        add(json!({"name": "cart", "audience": "https://cart.example", "sessions": true})).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(cart["max_ttl_seconds"], 300);
    assert_eq!(cart["sessions"], true);

    // Taken names and audiences, and malformed registrations: refused, nothing added.
    for (body, status, code) in [
        (
            json!({"name": "billing", "audience": "https://other.example"}),
            StatusCode::CONFLICT,
            "service_taken",
        ),
        (
            json!({"name": "other", "audience": "https://billing.example"}),
            StatusCode::CONFLICT,
            "service_taken",
        ),
        (
            json!({"name": "bad name", "audience": "https://x.example"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "x", "audience": "https://x.example", "scopes": ["a=b=c"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "x", "audience": "https://x.example", "max_ttl_seconds": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"name": "x", "audience": "https://x.example", "bogus": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ] {
        problem(add(body).await, status, code).await;
    }
    let listed = ok_json(
        admin(&server, &ops, Method::GET, "/v1/admin/services")
            .sent()
            .await,
        StatusCode::OK,
    )
    .await;
    let names: Vec<&str> = listed["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|service| service["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["billing", "cart"]);

    let remove = |name: &str| {
        admin(
            &server,
            &ops,
            Method::DELETE,
            &format!("/v1/admin/services/{name}"),
        )
        .sent()
    };
    assert_eq!(remove("billing").await.status(), StatusCode::NO_CONTENT);
    problem(remove("billing").await, StatusCode::NOT_FOUND, "not_found").await;

    // Recorded as the admin client's.
    let audit = ok_json(
        admin(
            &server,
            &ops,
            Method::GET,
            "/v1/admin/audit?kind=service_deleted",
        )
        .sent()
        .await,
        StatusCode::OK,
    )
    .await;
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["actor_type"], "client", "{audit}");
    assert_eq!(events[0]["actor_id"], ops.id.as_str(), "{audit}");
    assert_eq!(events[0]["detail"]["name"], "billing", "{audit}");
}

async fn walk(
    server: &TestServer,
    ops: &Credentials,
    limit: usize,
    q: Option<&str>,
) -> Vec<Vec<String>> {
    walk_waiting(server, ops, limit, q, None).await
}

/// [`walk`], waiting after each page for a message on `between` (until it closes), so
/// something else happens between any two pages.
async fn walk_waiting(
    server: &TestServer,
    ops: &Credentials,
    limit: usize,
    q: Option<&str>,
    mut between: Option<&mut tokio::sync::mpsc::Receiver<()>>,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(q) = q {
            query.push(("q", q.to_owned()));
        }
        if let Some(after) = &after {
            query.push(("after", after.clone()));
        }
        let page = ok_json(
            admin(server, ops, Method::GET, "/v1/admin/users")
                .query(&query)
                .sent()
                .await,
            StatusCode::OK,
        )
        .await;
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= limit, "{page}");
        pages.push(
            users
                .iter()
                .map(|user| user["username"].as_str().unwrap().to_owned())
                .collect(),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => after = Some(cursor.to_owned()),
            None => break,
        }
        if let Some(between) = between.as_deref_mut() {
            between.recv().await;
        }
        assert!(pages.len() < 1000, "the walk does not end");
    }
    pages
}

#[tokio::test]
async fn users_page_in_username_order_and_search_by_substring() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    for name in [
        "carol",
        "Bob_Smith",
        "alice",
        "bobby",
        "Dave",
        "eve",
        "mallory",
    ] {
        server.engine.create_user(name, PASSWORD).await.unwrap();
    }
    let pages = walk(&server, &ops, 3, None).await;
    assert_eq!(
        pages,
        [
            vec!["alice", "Bob_Smith", "bobby"],
            vec!["carol", "Dave", "eve"],
            vec!["mallory"],
        ]
    );
    // A last page that is exactly full says so: no cursor to an empty page.
    assert_eq!(walk(&server, &ops, 7, None).await.len(), 1);
    // Without `limit`, one page of up to 50.
    let all = ok_json(
        admin(&server, &ops, Method::GET, "/v1/admin/users")
            .sent()
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(all["users"].as_array().unwrap().len(), 7);
    assert!(all["next_cursor"].is_null(), "{all}");
    let alice = &all["users"][0];
    assert_eq!(alice["username"], "alice");
    assert!(
        alice["id"].is_string() && alice["created_at"].is_string(),
        "{alice}"
    );

    // Search: any case, any position, `_` literally.
    assert_eq!(
        walk(&server, &ops, 50, Some("BOB")).await,
        [vec!["Bob_Smith", "bobby"]]
    );
    assert_eq!(
        walk(&server, &ops, 50, Some("_")).await,
        [vec!["Bob_Smith"]]
    );
    assert_eq!(
        walk(&server, &ops, 50, Some("ve")).await,
        [vec!["Dave", "eve"]]
    );
    assert_eq!(
        walk(&server, &ops, 1, Some("o")).await.concat(),
        ["Bob_Smith", "bobby", "carol", "mallory"]
    );
    assert_eq!(
        walk(&server, &ops, 50, Some("%")).await,
        [Vec::<String>::new()]
    );
    assert_eq!(
        walk(&server, &ops, 50, Some("nobody")).await,
        [Vec::<String>::new()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_while_users_are_added_repeats_nobody_and_skips_nobody() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    let mut existing = HashSet::new();
    for n in 0..30 {
        let name = format!("user{:03}", n * 2);
        server.engine.create_user(&name, PASSWORD).await.unwrap();
        existing.insert(name);
    }
    // Another admin script adds users whose names fall before, between and after them, one
    // (at least) between any two pages of the walk.
    let (inserted, mut between) = tokio::sync::mpsc::channel(1);
    let writer = {
        let ops = ops.clone();
        let url = server.url("/v1/admin/users");
        tokio::spawn(async move {
            for n in (0..30).rev() {
                let response = client()
                    .post(&url)
                    .basic_auth(&ops.id, Some(&ops.secret))
                    .json(
                        &json!({"username": format!("user{:03}", n * 2 + 1), "password": PASSWORD}),
                    )
                    .sent()
                    .await;
                assert_eq!(response.status(), StatusCode::CREATED);
                // The walk may have ended: then nobody listens.
                inserted.send(()).await.ok();
            }
        })
    };
    let pages = walk_waiting(&server, &ops, 4, None, Some(&mut between)).await;
    drop(between);
    writer.await.unwrap();
    let seen: Vec<String> = pages.concat();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a user appeared twice: {seen:?}");
    let skipped: Vec<&String> = existing
        .iter()
        .filter(|name| !unique.contains(name))
        .collect();
    assert!(skipped.is_empty(), "skipped {skipped:?}");
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "out of order: {seen:?}"
    );
    // Afterwards, everyone.
    assert_eq!(walk(&server, &ops, 200, None).await.concat().len(), 60);
}

#[tokio::test]
async fn bad_input_is_a_problem_and_changes_nothing() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    server.engine.create_user("alice", PASSWORD).await.unwrap();
    let before = state_of(&server).await;
    let foreign_cursor = base64_url("u1:Not A Key");
    for query in [
        "limit=0",
        "limit=201",
        "limit=-1",
        "limit=99999999999999999999999",
        "limit=ten",
        "after=%%%",
        "after=bm90LWEtY3Vyc29y",
        &format!("after={foreign_cursor}"),
        &format!("q={}", "a".repeat(65)),
        "offset=10",
        "limit=1&limit=2",
    ] {
        let response = admin(
            &server,
            &ops,
            Method::GET,
            &format!("/v1/admin/users?{query}"),
        )
        .sent()
        .await;
        let status = response.status();
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{query}: {status}"
        );
        let code = if status == StatusCode::BAD_REQUEST {
            "malformed_request"
        } else {
            "validation_failed"
        };
        problem(response, status, code).await;
    }
    let bodies: [(&str, &[u8]); 4] = [
        ("application/json", b"{\"username\": \"bob\""),
        ("application/json", b"[\"bob\", \"password\"]"),
        ("text/plain", b"username=bob"),
        (
            "application/json",
            b"{\"username\": \"bob\", \"password\": 5}",
        ),
    ];
    for (content_type, body) in bodies {
        let response = admin(&server, &ops, Method::POST, "/v1/admin/users")
            .header("content-type", content_type)
            .body(body.to_vec())
            .sent()
            .await;
        assert!(
            response.status().is_client_error(),
            "{content_type} {body:?}: {}",
            response.status()
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    for path in [
        "/v1/admin/users/%00",
        "/v1/admin/users/short",
        "/v1/admin/users/x/sessions",
        "/v1/admin/sessions/not-a-session",
        "/v1/admin/clients/nobody",
    ] {
        let response = admin(&server, &ops, Method::DELETE, path).sent().await;
        problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(state_of(&server).await, before);
}

fn base64_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn failed_admin_authentication_is_throttled_per_address() {
    let server = TestServer::start(|config| config.ratelimit.address_failures = 3).await;
    let ops = admin_client(&server, "ops").await;
    let wrong = Credentials {
        secret: service_client(&server, "billing").await.secret,
        ..ops.clone()
    };
    for _ in 0..3 {
        let response = admin(&server, &wrong, Method::GET, "/v1/admin/keys")
            .sent()
            .await;
        problem(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    // Over the limit, even the right secret waits.
    let response = admin(&server, &ops, Method::GET, "/v1/admin/keys")
        .sent()
        .await;
    assert!(response.headers().contains_key("retry-after"));
    problem(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn a_cross_site_browser_request_is_refused_even_with_credentials() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    let before = state_of(&server).await;
    let response = admin(&server, &ops, Method::POST, "/v1/admin/keys/rotate")
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .sent()
        .await;
    problem(response, StatusCode::FORBIDDEN, "csrf_failed").await;
    assert_eq!(state_of(&server).await, before);
}

/// Logs `username` in with the token transport: its access token and refresh token.
async fn token_login(server: &TestServer, username: &str, password: &str) -> (String, String) {
    let body = ok_json(
        server
            .post("/v1/login")
            .json(&json!({"username": username, "password": password, "transport": "token"}))
            .sent()
            .await,
        StatusCode::OK,
    )
    .await;
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// The claims of a JWT, unverified (the server verified it when it answered).
fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn refresh(server: &TestServer, refresh_token: &str) -> reqwest::Response {
    server
        .post("/v1/token")
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .sent()
        .await
}

async fn session_status(server: &TestServer, bearer: &str) -> StatusCode {
    server
        .get("/v1/session")
        .bearer_auth(bearer)
        .sent()
        .await
        .status()
}

/// `PATCH /v1/admin/users/{id}` with `body`.
async fn patch_user(
    server: &TestServer,
    credentials: &Credentials,
    id: &str,
    body: &Value,
) -> reqwest::Response {
    admin(
        server,
        credentials,
        Method::PATCH,
        &format!("/v1/admin/users/{id}"),
    )
    .json(body)
    .sent()
    .await
}

/// `GET /v1/admin/audit?{query}`, which must succeed.
async fn audit_page(server: &TestServer, credentials: &Credentials, query: &str) -> Value {
    ok_json(
        admin(
            server,
            credentials,
            Method::GET,
            &format!("/v1/admin/audit?{query}"),
        )
        .sent()
        .await,
        StatusCode::OK,
    )
    .await
}

/// The events of `page` as (type, actor_type, actor_id, user_id).
fn events_of(page: &Value) -> Vec<(String, String, Option<String>, Option<String>)> {
    let text = |value: &Value| value.as_str().map(str::to_owned);
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (
                text(&event["type"]).unwrap(),
                text(&event["actor_type"]).unwrap(),
                text(&event["actor_id"]),
                text(&event["user_id"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn patch_replaces_only_the_parts_given_and_is_audited_as_the_client() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    let alice = server.user_session("alice").await;
    let id = alice.body["session"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let changed = ok_json(
        patch_user(
            &server,
            &ops,
            &id,
            &json!({"roles": ["support", "billing:read", "support"], "claims": {"tenant": "acme", "https://example.com/seats": 5}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["id"], id.as_str());
    assert_eq!(changed["username"], "alice");
    assert_eq!(changed["roles"], json!(["billing:read", "support"]));
    assert_eq!(
        changed["claims"],
        json!({"tenant": "acme", "https://example.com/seats": 5})
    );
    assert_eq!(changed["disabled"], false);
    let shown = ok_json(
        admin(&server, &ops, Method::GET, &format!("/v1/admin/users/{id}"))
            .sent()
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown, changed, "PATCH answers as GET does");
    // Roles and claims do not end sessions; alice's cookie still works.
    let check = server
        .get("/v1/session")
        .header("cookie", alice.cookie())
        .sent()
        .await;
    assert_eq!(check.status(), StatusCode::OK);

    // One part only: the others stay; empty values clear.
    let changed = ok_json(
        patch_user(&server, &ops, &id, &json!({"roles": []})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["roles"], json!([]));
    assert_eq!(changed["claims"]["tenant"], "acme");
    let changed = ok_json(
        patch_user(&server, &ops, &id, &json!({"claims": {}})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["claims"], json!({}));
    // Nothing to change: the user as it is, and no event.
    let unchanged = ok_json(
        patch_user(&server, &ops, &id, &json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unchanged, changed);
    let unchanged = ok_json(
        patch_user(&server, &ops, &id, &json!({"roles": [], "disabled": false})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unchanged, changed);

    let page = audit_page(&server, &ops, &format!("user={id}&kind=roles_changed")).await;
    let ops_actor = (
        "roles_changed".to_owned(),
        "client".to_owned(),
        Some(ops.id.clone()),
        Some(id.clone()),
    );
    assert_eq!(events_of(&page), vec![ops_actor.clone(); 4], "{page}");
    let events = page["events"].as_array().unwrap();
    assert_eq!(events[0]["detail"]["roles"], "billing:read support");
    assert_eq!(
        events[1]["detail"]["claims"],
        "https://example.com/seats tenant"
    );
    assert_eq!(events[2]["detail"]["roles"], "");
    assert_eq!(events[3]["detail"]["claims"], "");
    assert!(
        events
            .iter()
            .all(|event| event["ip"] == "127.0.0.1" && event["outcome"] == "success"),
        "{page}"
    );
    let whole = audit_page(&server, &ops, "").await.to_string();
    assert!(!whole.contains("acme"), "claim values are not recorded");
}

#[tokio::test]
async fn bad_standing_changes_are_refused_whole_and_change_nothing() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    let alice = server.user_session("alice").await;
    let id = alice.body["session"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok_json(
        patch_user(
            &server,
            &ops,
            &id,
            &json!({"roles": ["reader"], "claims": {"tenant": "acme"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let before = state_of(&server).await;
    let trail_before = audit_page(&server, &ops, "").await;

    let too_many: Vec<String> = (0..33).map(|n| format!("r{n}")).collect();
    for bad in [
        // Each refused part comes with valid ones, which must not be applied either.
        json!({"roles": ["ok", "not ok"], "claims": {"tenant": "other"}, "disabled": true}),
        json!({"roles": ["ok"], "claims": {"sub": "someone-else"}, "disabled": true}),
        json!({"roles": ["ok"], "claims": {"bad name": 1}}),
        json!({"roles": ["ok"], "claims": {"big": "x".repeat(1100)}}),
        json!({"roles": too_many}),
        json!({"roles": [""]}),
        json!({"roles": "admin"}),
        json!({"roles": [1]}),
        json!({"claims": ["tenant"]}),
        json!({"disabled": "yes"}),
        json!({"roles": null}),
        json!({"claims": null}),
        json!({"disabled": null}),
        json!({"roles": ["ok"], "admin": true}),
        json!([{"roles": ["ok"]}]),
    ] {
        problem(
            patch_user(&server, &ops, &id, &bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    let raw = |content_type: &str, body: &str| {
        admin(
            &server,
            &ops,
            Method::PATCH,
            &format!("/v1/admin/users/{id}"),
        )
        .header("content-type", content_type)
        .body(body.to_owned())
        .sent()
    };
    problem(
        raw("application/json", "{\"roles\": [").await,
        StatusCode::BAD_REQUEST,
        "malformed_request",
    )
    .await;
    problem(
        raw("application/json", "{\"roles\": [], \"roles\": [\"x\"]}").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    problem(
        raw("text/plain", "{\"disabled\": true}").await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    for unknown in [
        "not-a-user-id".to_owned(),
        tessera_core::UserId::generate().unwrap().to_string(),
    ] {
        problem(
            patch_user(&server, &ops, &unknown, &json!({"disabled": true})).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }

    assert_eq!(state_of(&server).await, before);
    let check = server
        .get("/v1/session")
        .header("cookie", alice.cookie())
        .sent()
        .await;
    assert_eq!(check.status(), StatusCode::OK, "alice was not disabled");
    let trail_after = audit_page(&server, &ops, "").await;
    assert_eq!(
        trail_after, trail_before,
        "a refused change recorded something"
    );
}

#[tokio::test]
async fn disabling_by_patch_refuses_an_earlier_jwt_at_once_and_every_login_until_enabled() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    let alice = server.user_session("alice").await;
    let id = alice.body["session"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (jwt, refresh_token) = token_login(&server, "alice", PASSWORD).await;
    assert_eq!(session_status(&server, &jwt).await, StatusCode::OK);

    let changed = ok_json(
        patch_user(&server, &ops, &id, &json!({"disabled": true})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["disabled"], true);
    // At once, on this instance: the JWT, the cookie, the refresh token, a new login.
    problem(
        server.get("/v1/session").bearer_auth(&jwt).sent().await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert_eq!(
        session_status(&server, &alice.token).await,
        StatusCode::UNAUTHORIZED
    );
    let refused = ok_json(
        refresh(&server, &refresh_token).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(refused["error"], "invalid_grant");
    problem(
        server.login_response("alice", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let listed = ok_json(
        admin(
            &server,
            &ops,
            Method::GET,
            &format!("/v1/admin/users/{id}/sessions"),
        )
        .sent()
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed, json!({"sessions": []}));

    let changed = ok_json(
        patch_user(&server, &ops, &id, &json!({"disabled": false})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["disabled"], false);
    server.login("alice", PASSWORD).await;

    let page = audit_page(&server, &ops, &format!("user={id}")).await;
    let changes: Vec<_> = events_of(&page)
        .into_iter()
        .filter(|(kind, ..)| kind.starts_with("user_"))
        .collect();
    let by_ops = |kind: &str| {
        (
            kind.to_owned(),
            "client".to_owned(),
            Some(ops.id.clone()),
            Some(id.clone()),
        )
    };
    assert_eq!(
        changes[1..],
        [by_ops("user_disabled"), by_ops("user_enabled")],
        "{page}"
    );
    let disabled = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["type"] == "user_disabled")
        .unwrap();
    assert_eq!(disabled["detail"]["sessions_revoked"], "2");
}

#[tokio::test]
async fn a_role_change_by_patch_stales_the_old_jwt_and_the_next_refresh_carries_it() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    let created = ok_json(
        admin(&server, &ops, Method::POST, "/v1/admin/users")
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .sent()
            .await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let (jwt, refresh_token) = token_login(&server, "alice", PASSWORD).await;
    assert!(claims(&jwt).get("roles").is_none(), "{}", claims(&jwt));

    ok_json(
        patch_user(
            &server,
            &ops,
            id,
            &json!({"roles": ["admin"], "claims": {"tenant": "acme"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let stale = problem(
        server.get("/v1/session").bearer_auth(&jwt).sent().await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert!(
        stale["detail"].as_str().unwrap().contains("stale"),
        "{stale}"
    );

    let refreshed = ok_json(refresh(&server, &refresh_token).await, StatusCode::OK).await;
    let new_jwt = refreshed["access_token"].as_str().unwrap();
    let new_claims = claims(new_jwt);
    assert_eq!(new_claims["roles"], json!(["admin"]), "{new_claims}");
    assert_eq!(new_claims["tenant"], "acme", "{new_claims}");
    assert_eq!(session_status(&server, new_jwt).await, StatusCode::OK);
}

#[tokio::test]
async fn a_password_reset_ends_every_session_and_never_shows_the_password() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    let alice = server.user_session("alice").await;
    let bob = server.user_session("bob").await;
    let id = alice.body["session"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (jwt, refresh_token) = token_login(&server, "alice", PASSWORD).await;
    let reset = |id: &str, body: Value| {
        admin(
            &server,
            &ops,
            Method::POST,
            &format!("/v1/admin/users/{id}/password"),
        )
        .json(&body)
        .sent()
    };

    // Refused first: the policy, the shape, an unknown account. Nothing changes.
    let weak = "Tr0ub4";
    let mut answers = String::new();
    for body in [
        json!({"password": weak}),
        json!({"password": "alice"}),
        json!({"password": "Password123"}),
        json!({"password": NEW_PASSWORD, "notify": true}),
        json!({"new_password": NEW_PASSWORD}),
        json!({"password": 1234567890123_u64}),
    ] {
        let refused = problem(
            reset(&id, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        answers.push_str(&refused.to_string());
    }
    assert!(
        !answers.contains(weak) && !answers.contains(NEW_PASSWORD),
        "{answers}"
    );
    problem(
        reset(
            &tessera_core::UserId::generate().unwrap().to_string(),
            json!({"password": NEW_PASSWORD}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(session_status(&server, &jwt).await, StatusCode::OK);
    assert_eq!(session_status(&server, &alice.token).await, StatusCode::OK);
    assert_eq!(
        server.login_response("alice", NEW_PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let response = reset(&id, json!({"password": NEW_PASSWORD})).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.text().await.unwrap(), "");
    // Every credential of every session of alice's, and nobody else's.
    assert_eq!(
        session_status(&server, &jwt).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        session_status(&server, &alice.token).await,
        StatusCode::UNAUTHORIZED
    );
    let refused = ok_json(
        refresh(&server, &refresh_token).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(refused["error"], "invalid_grant");
    assert_eq!(session_status(&server, &bob.token).await, StatusCode::OK);
    problem(
        server.login_response("alice", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let (new_jwt, _) = token_login(&server, "alice", NEW_PASSWORD).await;
    assert_eq!(session_status(&server, &new_jwt).await, StatusCode::OK);

    let page = audit_page(&server, &ops, &format!("user={id}&kind=password_reset")).await;
    assert_eq!(
        events_of(&page),
        [(
            "password_reset".to_owned(),
            "client".to_owned(),
            Some(ops.id.clone()),
            Some(id.clone())
        )]
    );
    assert_eq!(page["events"][0]["detail"]["sessions_ended"], "2");
    let trail = audit_page(&server, &ops, "limit=500").await.to_string();
    for secret in [PASSWORD, NEW_PASSWORD, weak, &ops.secret] {
        assert!(!trail.contains(secret), "{secret} is in the audit trail");
    }
}

#[tokio::test]
async fn the_audit_trail_pages_by_cursor_and_filters_like_the_cli() {
    let server = TestServer::start(|_| {}).await;
    let ops = admin_client(&server, "ops").await;
    let mut ids = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let created = ok_json(
            admin(&server, &ops, Method::POST, "/v1/admin/users")
                .json(&json!({"username": name, "password": PASSWORD}))
                .sent()
                .await,
            StatusCode::CREATED,
        )
        .await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    // Whole milliseconds apart, so `since` splits the events exactly here.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let start = server.now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    server.login("alice", PASSWORD).await;
    assert_eq!(
        server
            .login_response("bob", "wrong password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let deleted = admin(
        &server,
        &ops,
        Method::DELETE,
        &format!("/v1/admin/users/{}", ids[2]),
    )
    .sent()
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let all = audit_page(&server, &ops, "").await;
    assert!(all["next_cursor"].is_null(), "{all}");
    let kinds: Vec<String> = events_of(&all).into_iter().map(|event| event.0).collect();
    assert_eq!(
        kinds,
        [
            // The admin client itself, made by the engine without a context.
            "client_created",
            "user_created",
            "user_created",
            "user_created",
            "login_succeeded",
            "login_failed",
            "user_deleted"
        ]
    );
    assert_eq!(all["events"][0]["actor_type"], "anonymous");
    let first = &all["events"][1];
    assert_eq!(first["actor_type"], "client");
    assert_eq!(first["actor_id"], ops.id.as_str());
    assert_eq!(first["detail"]["username"], "alice");
    assert!(first["time"].as_str().unwrap().ends_with('Z'), "{first}");

    // Pages of two: the same events, in order, each once; the last page says so.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("limit=2&cursor={cursor}"),
            None => "limit=2".to_owned(),
        };
        let page = audit_page(&server, &ops, &query).await;
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        walked.extend(events.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(walked.len() < 100, "the walk does not end");
    }
    assert_eq!(&walked, all["events"].as_array().unwrap());

    // Filters, alone and together.
    let count = |page: Value| page["events"].as_array().unwrap().len();
    assert_eq!(
        count(audit_page(&server, &ops, "kind=user_created").await),
        3
    );
    assert_eq!(count(audit_page(&server, &ops, "user=alice").await), 2);
    assert_eq!(
        count(audit_page(&server, &ops, &format!("user={}", ids[0])).await),
        2
    );
    assert_eq!(
        count(audit_page(&server, &ops, "user=bob&kind=login_failed").await),
        1
    );
    // A deleted account by its id.
    let carol = audit_page(&server, &ops, &format!("user={}", ids[2])).await;
    let carol_kinds: Vec<String> = events_of(&carol).into_iter().map(|event| event.0).collect();
    assert_eq!(carol_kinds, ["user_created", "user_deleted"]);
    let since = rfc3339(start);
    let later = audit_page(&server, &ops, &format!("since={since}")).await;
    assert_eq!(
        events_of(&later)
            .into_iter()
            .map(|event| event.0)
            .collect::<Vec<_>>(),
        ["login_succeeded", "login_failed", "user_deleted"]
    );
    assert_eq!(
        count(audit_page(&server, &ops, &format!("until={since}")).await),
        4
    );
    assert_eq!(
        count(audit_page(&server, &ops, "until=2000-01-01T00:00:00Z").await),
        0
    );

    // Bad queries: a problem each, nothing else.
    let before = state_of(&server).await;
    for query in [
        "kind=nope",
        "kind=LOGIN_FAILED",
        "type=login_failed",
        "limit=0",
        "limit=501",
        "limit=ten",
        "cursor=abc",
        "cursor=-1",
        "since=yesterday",
        "until=2026-01-31T12:00:00%2B02:00",
        "user=no%20such%20user",
        "user=",
        "offset=10",
        "kind=logout&kind=login_failed",
    ] {
        let response = admin(
            &server,
            &ops,
            Method::GET,
            &format!("/v1/admin/audit?{query}"),
        )
        .sent()
        .await;
        problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(state_of(&server).await, before);
    let again = audit_page(&server, &ops, "").await;
    assert_eq!(again, all, "reading the trail recorded nothing");
}

/// RFC 3339 of `at`, as the API writes it.
fn rfc3339(at: tessera_core::Timestamp) -> String {
    let millis = at.unix_millis();
    let time =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(millis).unwrap());
    humantime::format_rfc3339_millis(time).to_string()
}
