//! The audit trail through a real socket: every event the server raises is recorded once, in
//! order, with its actor, address and user agent; no password, token or secret the test used
//! is anywhere in the table; a change that failed records nothing; and old events are
//! purged in the background.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection as _, Row as _, SqliteConnection};
use tessera_core::{Actor, AuditContext, AuditFilter, AuditKind, AuditRecord, Outcome};

use common::{PASSWORD, Sent as _, TestServer, client};

const AGENT: &str = "audit-test/1.0 (\"quoted\")";
const WRONG_PASSWORD: &str = "not the right password at all";

async fn trail(server: &TestServer) -> Vec<AuditRecord> {
    server
        .engine
        .audit_events(&AuditFilter::default(), 0, 10_000)
        .await
        .unwrap()
}

fn kinds(records: &[AuditRecord]) -> Vec<AuditKind> {
    records.iter().map(|record| record.event.kind).collect()
}

async fn register(server: &TestServer, username: &str) -> Value {
    let response = server
        .post("/v1/users")
        .header("user-agent", AGENT)
        .json(&json!({"username": username, "password": PASSWORD}))
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn login(
    server: &TestServer,
    username: &str,
    password: &str,
    transport: &str,
) -> reqwest::Response {
    server
        .post("/v1/login")
        .header("user-agent", AGENT)
        .json(&json!({"username": username, "password": password, "transport": transport}))
        .sent()
        .await
}

async fn cookie_login(server: &TestServer, username: &str) -> common::Login {
    let response = login(server, username, PASSWORD, "cookie").await;
    assert_eq!(response.status(), StatusCode::OK);
    common::Login::from_response(response).await
}

async fn token_login(server: &TestServer, username: &str) -> Value {
    let response = login(server, username, PASSWORD, "token").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn refresh(server: &TestServer, refresh_token: &str) -> reqwest::Response {
    server
        .post("/v1/token")
        .header("user-agent", AGENT)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .sent()
        .await
}

/// Every column of every row of `audit_events`, as text, read from the database file.
async fn audit_table_text(server: &TestServer) -> String {
    let path = server.dir.path().join("tessera.db");
    let mut connection = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT id, at, kind, actor_type, coalesce(actor_id, ''), coalesce(user_id, ''), \
         coalesce(session_id, ''), coalesce(ip, ''), coalesce(user_agent, ''), outcome, detail \
         FROM audit_events ORDER BY id",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let mut text = String::new();
    for row in &rows {
        text.push_str(&row.get::<i64, _>(0).to_string());
        text.push_str(&row.get::<i64, _>(1).to_string());
        for column in 2..11 {
            text.push(' ');
            text.push_str(&row.get::<String, _>(column));
        }
        text.push('\n');
    }
    assert!(!rows.is_empty());
    text
}

#[tokio::test]
async fn every_event_is_recorded_once_in_order_with_actor_address_and_agent_and_no_secret() {
    let server = TestServer::start_with_clock(|config| {
        config.ratelimit.account_failures = 2;
    })
    .await;
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned(), WRONG_PASSWORD.to_owned()];

    let alice = register(&server, "alice").await;
    let alice_id = alice["id"].as_str().unwrap().to_owned();
    let bob = register(&server, "bob").await;
    let bob_id = bob["id"].as_str().unwrap().to_owned();

    // Failed logins: a wrong password, an unknown user, and bob until the throttle refuses.
    for (username, status) in [
        ("alice", StatusCode::UNAUTHORIZED),
        ("nobody", StatusCode::UNAUTHORIZED),
        ("bob", StatusCode::UNAUTHORIZED),
        ("bob", StatusCode::UNAUTHORIZED),
    ] {
        let response = login(&server, username, WRONG_PASSWORD, "cookie").await;
        assert_eq!(response.status(), status, "{username}");
    }
    for _ in 0..2 {
        // Refused before the password is checked; recorded once a minute, not per request.
        let response = login(&server, "bob", PASSWORD, "cookie").await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    let first = cookie_login(&server, "alice").await;
    let second = cookie_login(&server, "alice").await;
    let tokens = token_login(&server, "alice").await;
    secrets.extend(
        [&first, &second]
            .iter()
            .flat_map(|login| [login.token.clone(), login.csrf.clone()]),
    );
    let refresh_1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    secrets.push(tokens["access_token"].as_str().unwrap().to_owned());
    secrets.push(refresh_1.clone());

    // The owner revokes one session of theirs.
    let response = server
        .delete(&format!("/v1/sessions/{}", second.session_id()))
        .header("cookie", first.cookie())
        .header("x-csrf-token", &first.csrf)
        .header("user-agent", AGENT)
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    // A refresh, then the spent token again after its grace window: theft.
    let response = refresh(&server, &refresh_1).await;
    assert_eq!(response.status(), StatusCode::OK);
    let refreshed: Value = response.json().await.unwrap();
    secrets.push(refreshed["refresh_token"].as_str().unwrap().to_owned());
    secrets.push(refreshed["access_token"].as_str().unwrap().to_owned());
    server.advance(Duration::from_secs(11));
    let response = refresh(&server, &refresh_1).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // "Log out other devices", a token revoked by RFC 7009, a logout.
    let third = cookie_login(&server, "alice").await;
    secrets.extend([third.token.clone(), third.csrf.clone()]);
    let response = server
        .delete("/v1/sessions?scope=others")
        .header("cookie", first.cookie())
        .header("x-csrf-token", &first.csrf)
        .header("user-agent", AGENT)
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let revocable = token_login(&server, "alice").await;
    let revocable_refresh = revocable["refresh_token"].as_str().unwrap().to_owned();
    secrets.push(revocable_refresh.clone());
    secrets.push(revocable["access_token"].as_str().unwrap().to_owned());
    let response = server
        .post("/v1/revoke")
        .header("user-agent", AGENT)
        .form(&[("token", revocable_refresh.as_str())])
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = server
        .post("/v1/logout")
        .header("cookie", first.cookie())
        .header("x-csrf-token", &first.csrf)
        .header("user-agent", AGENT)
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    // Administration from the command line's context.
    let cli = server.engine.with_context(AuditContext::cli());
    let added = cli.create_client("audited-api").await.unwrap();
    secrets.push(added.secret.encode());
    cli.delete_client("audited-api").await.unwrap();
    cli.delete_user(&tessera_core::UserId::parse(&bob_id).unwrap())
        .await
        .unwrap();

    let records = trail(&server).await;
    use AuditKind::*;
    assert_eq!(
        kinds(&records),
        [
            UserCreated,
            UserCreated,
            LoginFailed,
            LoginFailed,
            LoginFailed,
            LoginFailed,
            LoginThrottled,
            LoginSucceeded,
            LoginSucceeded,
            LoginSucceeded,
            SessionRevoked,
            RefreshReuseDetected,
            SessionRevoked,
            LoginSucceeded,
            SessionsRevoked,
            LoginSucceeded,
            SessionRevoked,
            Logout,
            ClientCreated,
            ClientDeleted,
            UserDeleted,
        ]
    );
    assert!(records.windows(2).all(|pair| pair[0].id < pair[1].id));

    let user = |id: &str| Some(tessera_core::UserId::parse(id).unwrap());
    let alice_actor = Actor::User(user(&alice_id).unwrap());
    let session = |id: &str| Some(tessera_core::SessionId::parse(id).unwrap());
    let tokens_session = tokens["session"]["id"].as_str().unwrap();
    let revocable_session = revocable["session"]["id"].as_str().unwrap();
    // (actor, subject user, subject session, outcome) of each event, in order.
    let expected = [
        (Actor::Anonymous, user(&alice_id), None, Outcome::Success),
        (Actor::Anonymous, user(&bob_id), None, Outcome::Success),
        (Actor::Anonymous, user(&alice_id), None, Outcome::Failure),
        (Actor::Anonymous, None, None, Outcome::Failure),
        (Actor::Anonymous, user(&bob_id), None, Outcome::Failure),
        (Actor::Anonymous, user(&bob_id), None, Outcome::Failure),
        (Actor::Anonymous, user(&bob_id), None, Outcome::Failure),
        (
            alice_actor.clone(),
            user(&alice_id),
            session(first.session_id()),
            Outcome::Success,
        ),
        (
            alice_actor.clone(),
            user(&alice_id),
            session(second.session_id()),
            Outcome::Success,
        ),
        (
            alice_actor.clone(),
            user(&alice_id),
            session(tokens_session),
            Outcome::Success,
        ),
        (
            alice_actor.clone(),
            user(&alice_id),
            session(second.session_id()),
            Outcome::Success,
        ),
        (
            Actor::Anonymous,
            user(&alice_id),
            session(tokens_session),
            Outcome::Failure,
        ),
        (
            Actor::System,
            user(&alice_id),
            session(tokens_session),
            Outcome::Success,
        ),
        (
            alice_actor.clone(),
            user(&alice_id),
            session(third.session_id()),
            Outcome::Success,
        ),
        (
            alice_actor.clone(),
            user(&alice_id),
            session(first.session_id()),
            Outcome::Success,
        ),
        (
            alice_actor.clone(),
            user(&alice_id),
            session(revocable_session),
            Outcome::Success,
        ),
        (
            Actor::Anonymous,
            user(&alice_id),
            session(revocable_session),
            Outcome::Success,
        ),
        (
            alice_actor.clone(),
            user(&alice_id),
            session(first.session_id()),
            Outcome::Success,
        ),
        (Actor::Cli, None, None, Outcome::Success),
        (Actor::Cli, None, None, Outcome::Success),
        (Actor::Cli, user(&bob_id), None, Outcome::Success),
    ];
    for (record, (actor, user_id, session_id, outcome)) in records.iter().zip(expected) {
        let event = &record.event;
        let what = format!("{} #{}", event.kind, record.id);
        assert_eq!(event.actor, actor, "{what}");
        assert_eq!(event.user_id, user_id, "{what}");
        assert_eq!(event.session_id, session_id, "{what}");
        assert_eq!(event.outcome, outcome, "{what}");
        if event.actor == Actor::Cli {
            assert_eq!(
                (event.ip.as_deref(), event.user_agent.as_deref()),
                (None, None),
                "{what}"
            );
        } else {
            assert_eq!(event.ip.as_deref(), Some("127.0.0.1"), "{what}");
            assert_eq!(event.user_agent.as_deref(), Some(AGENT), "{what}");
        }
    }
    let detail = |n: usize, key: &str| records[n].event.detail.get(key).map(str::to_owned);
    assert_eq!(detail(0, "username").as_deref(), Some("alice"));
    assert_eq!(detail(6, "throttle").as_deref(), Some("account"));
    assert_eq!(detail(9, "transport").as_deref(), Some("token"));
    assert_eq!(detail(12, "reason").as_deref(), Some("refresh_reuse"));
    assert_eq!(detail(14, "scope").as_deref(), Some("others"));
    assert_eq!(detail(14, "count").as_deref(), Some("1"));
    assert_eq!(detail(18, "name").as_deref(), Some("audited-api"));
    // The unknown user's typed name is not kept: people type passwords into that field.
    assert!(records[3].event.detail.is_empty());

    let table = audit_table_text(&server).await;
    assert_eq!(table.lines().count(), records.len());
    for secret in &secrets {
        assert!(secret.len() >= 16, "a real secret: {secret}");
        assert!(
            !table.contains(secret.as_str()),
            "a secret in the audit table: {secret}"
        );
    }
    assert!(
        !table.contains("argon2"),
        "a password hash in the audit table"
    );
}

#[tokio::test]
async fn a_change_that_failed_records_nothing() {
    let server = TestServer::start(|_| {}).await;
    register(&server, "alice").await;
    let alice = cookie_login(&server, "alice").await;
    let bob = server.user_session("bob").await;
    let before = trail(&server).await;
    assert_eq!(
        kinds(&before),
        [
            AuditKind::UserCreated,
            AuditKind::LoginSucceeded,
            AuditKind::UserCreated,
            AuditKind::LoginSucceeded
        ]
    );

    // A taken username.
    let response = server
        .post("/v1/users")
        .json(&json!({"username": "ALICE", "password": PASSWORD}))
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    // Someone else's session, and one that does not exist.
    for id in [bob.session_id(), "AAAAAAAAAAAAAAAAAAAAAA"] {
        let response = server
            .delete(&format!("/v1/sessions/{id}"))
            .header("cookie", alice.cookie())
            .header("x-csrf-token", &alice.csrf)
            .sent()
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{id}");
    }
    // "Log out other devices" with none to log out.
    let response = server
        .delete("/v1/sessions?scope=others")
        .header("cookie", alice.cookie())
        .header("x-csrf-token", &alice.csrf)
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // Tokens that revoke nothing.
    for token in ["not-a-token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let response = client()
            .post(server.url("/v1/revoke"))
            .form(&[("token", token)])
            .sent()
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Administration that finds nothing to change.
    let cli = server.engine.with_context(AuditContext::cli());
    cli.create_client("api").await.unwrap();
    assert!(cli.create_client("api").await.is_err());
    assert!(cli.delete_client("nobody").await.is_err());
    let unknown = tessera_core::UserId::generate().unwrap();
    assert!(cli.delete_user(&unknown).await.is_err());
    let unknown_session = tessera_core::SessionId::generate().unwrap();
    assert!(cli.revoke_session(&unknown_session).await.is_err());

    let after = trail(&server).await;
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(kinds(&after[before.len()..]), [AuditKind::ClientCreated]);

    // A session ended twice is logged out once.
    for expected in [StatusCode::NO_CONTENT, StatusCode::UNAUTHORIZED] {
        let response = server
            .post("/v1/logout")
            .header("cookie", bob.cookie())
            .header("x-csrf-token", &bob.csrf)
            .sent()
            .await;
        assert_eq!(response.status(), expected);
    }
    let last = trail(&server).await;
    assert_eq!(kinds(&last[after.len()..]), [AuditKind::Logout]);
}

#[tokio::test]
async fn old_events_are_purged_in_the_background() {
    let server = TestServer::start_with_clock(|config| {
        config.audit.retention = Duration::from_secs(60 * 60);
        config.sessions.purge_interval = Duration::from_secs(1);
    })
    .await;
    register(&server, "old").await;
    server.advance(Duration::from_secs(2 * 60 * 60));
    register(&server, "new").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = trail(&server).await;
        let names: Vec<&str> = records
            .iter()
            .filter_map(|record| record.event.detail.get("username"))
            .collect();
        if names == ["new"] {
            break;
        }
        assert_eq!(names.last(), Some(&"new"), "the recent event stays");
        assert!(Instant::now() < deadline, "not purged: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
