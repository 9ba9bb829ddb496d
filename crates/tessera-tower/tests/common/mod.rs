//! A stand-in for Tessera's HTTP surface, as a service using the layer sees it: RFC 8414
//! metadata, the JWKS of a real `tessera-jose` keyring, the revocation feed (snapshot and
//! server-sent events, in Tessera's documented shapes), and RFC 7662 introspection — on a
//! loopback socket, behind HTTP Basic client authentication.
//!
//! Tessera does not issue one-time operation tokens or child sessions yet (token exchange
//! is being built beside this crate), so these tests mint them with the keyring's signer
//! and answer introspection from a table, exactly in the contract's shapes. The layer under
//! test is the real one, over real sockets; `crates/tessera-server/tests/tower.rs` runs it
//! against a real `tessera serve`.

#![allow(dead_code, unreachable_pub)] // Each test binary uses a different subset.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::stream::{self, Stream, StreamExt as _};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_jose::{
    AccessClaims, Actor, Algorithm, Audience, Keyring, RequestContext, StoredKey, TransactionClaims,
};
use tessera_tower::{Principal, TesseraAuth, TesseraAuthBuilder};
use tokio::sync::broadcast;

pub const CLIENT_ID: &str = "billing-service";
pub const CLIENT_SECRET: &str = "billing-service-secret";

/// Unix seconds now, as the layer reads the clock.
pub fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn rfc3339(unix: i64) -> String {
    humantime::format_rfc3339(UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap()))
        .to_string()
}

/// A unique-enough suffix for key prefixes and ids: tests in one binary run concurrently.
pub fn unique(label: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{label}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The stand-in issuer, serving until dropped.
pub struct Issuer {
    pub base: String,
    state: Arc<IssuerState>,
    server: tokio::task::JoinHandle<()>,
}

struct IssuerState {
    base: String,
    keyring: Keyring,
    feed: Mutex<Vec<Value>>,
    pushed: broadcast::Sender<Value>,
    /// Session token → introspection answer.
    sessions: Mutex<HashMap<String, Value>>,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Issuer {
    pub async fn start() -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let created = now() - 3600;
        let key = StoredKey::generate(Algorithm::EdDSA, created, created).unwrap();
        let keyring = Keyring::new(vec![key], Duration::from_secs(3600)).unwrap();
        let state = Arc::new(IssuerState {
            base: base.clone(),
            keyring,
            feed: Mutex::new(Vec::new()),
            pushed: broadcast::channel(1024).0,
            sessions: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/.well-known/jwks.json", get(jwks))
            .route("/v1/revocations", get(snapshot))
            .route("/v1/revocations/stream", get(stream))
            .route("/v1/introspect", post(introspect))
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Issuer {
            base,
            state,
            server,
        }
    }

    /// The layer for `audience`, configured for this issuer.
    pub fn auth(&self, audience: &str) -> TesseraAuthBuilder {
        TesseraAuth::builder(&self.base, audience).client_credentials(CLIENT_ID, CLIENT_SECRET)
    }

    /// An access token's claims for `user` in `session`, for `audience`, ten minutes long.
    pub fn access_claims(&self, user: &str, session: &str, audience: &str) -> AccessClaims {
        let now = now();
        AccessClaims {
            iss: self.base.clone(),
            sub: user.to_owned(),
            aud: Audience::One(audience.to_owned()),
            exp: now + 600,
            iat: now,
            nbf: None,
            auth_time: Some(now),
            jti: unique("access"),
            sid: session.to_owned(),
            scope: None,
            roles: Vec::new(),
            client_id: None,
            extra: Default::default(),
        }
    }

    /// A one-time operation token's claims for `user` in `session`, for `operation` at
    /// `audience`, thirty seconds long, exchanged by the `cart` service for the `web` client.
    pub fn one_time_claims(
        &self,
        user: &str,
        session: &str,
        audience: &str,
        operation: &str,
    ) -> TransactionClaims {
        let now = now();
        let jti = unique("txn");
        TransactionClaims {
            iss: self.base.clone(),
            sub: user.to_owned(),
            aud: audience.to_owned(),
            exp: now + 30,
            iat: now,
            nbf: None,
            txn: Some(jti.clone()),
            jti,
            sid: session.to_owned(),
            scope: operation.to_owned(),
            auth_time: Some(now),
            roles: Vec::new(),
            act: Some(Actor::new("cart").after(Actor::new("web"))),
            rctx: Some(RequestContext {
                req_ip: Some("192.0.2.10".to_owned()),
                extra: Default::default(),
            }),
            extra: Default::default(),
        }
    }

    pub fn sign_access(&self, claims: &AccessClaims) -> String {
        self.state
            .keyring
            .signer(now())
            .unwrap()
            .sign(claims)
            .unwrap()
    }

    pub fn sign_one_time(&self, claims: &TransactionClaims) -> String {
        self.state
            .keyring
            .signer(now())
            .unwrap()
            .sign_transaction(claims)
            .unwrap()
    }

    /// Revokes `session` of `user`: a `session` entry on the feed, remembered ten minutes.
    pub fn revoke_session(&self, user: &str, session: &str) {
        let now = now();
        self.append(json!({
            "kind": "session",
            "sid": session,
            "user_id": user,
            "revoked_at": rfc3339(now),
            "remember_until": rfc3339(now + 600),
        }));
    }

    /// Makes `user`'s tokens issued before `stale_before` stale: a `user` entry on the feed.
    pub fn stale_user(&self, user: &str, stale_before: i64) {
        let now = now();
        self.append(json!({
            "kind": "user",
            "user_id": user,
            "revoked_at": rfc3339(now),
            "stale_before": rfc3339(stale_before),
            "remember_until": rfc3339(now + 600),
        }));
    }

    fn append(&self, mut entry: Value) {
        let mut feed = self.state.feed.lock().unwrap();
        entry["sequence"] = json!(feed.len() + 1);
        feed.push(entry.clone());
        // No receiver (no stream open right now) is fine: the snapshot has it.
        let _ = self.state.pushed.send(entry);
    }

    /// Registers an active session token: `aud` is a child session's service, `None` an
    /// ordinary session. Returns the token (64 base64url characters, Tessera's shape).
    pub fn session_token(&self, user: &str, session: &str, aud: Option<&str>) -> String {
        let token: String = unique("session")
            .bytes()
            .filter(u8::is_ascii_alphanumeric)
            .map(char::from)
            .chain(std::iter::repeat('x'))
            .take(64)
            .collect();
        let mut answer = json!({
            "active": true,
            "token_type": "session_token",
            "sub": user,
            "sid": session,
            "exp": now() + 1800,
            "iat": now(),
            "username": user,
        });
        if let Some(aud) = aud {
            answer["aud"] = json!(aud);
        }
        self.state
            .sessions
            .lock()
            .unwrap()
            .insert(token.clone(), answer);
        token
    }
}

fn client_authenticated(headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    headers
        .get("authorization")
        .is_some_and(|value| value.as_bytes() == expected.as_bytes())
}

async fn metadata(State(state): State<Arc<IssuerState>>) -> Json<Value> {
    let base = &state.base;
    Json(json!({
        "issuer": base,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/v1/token"),
        "introspection_endpoint": format!("{base}/v1/introspect"),
        "tessera_revocations_endpoint": format!("{base}/v1/revocations"),
        "tessera_revocation_stream_endpoint": format!("{base}/v1/revocations/stream"),
    }))
}

async fn jwks(State(state): State<Arc<IssuerState>>) -> Response {
    let body = serde_json::to_vec(&state.keyring.jwks(now())).unwrap();
    ([("content-type", "application/json")], body).into_response()
}

#[derive(Deserialize)]
struct FeedQuery {
    after: Option<u64>,
}

fn entries_after(state: &IssuerState, after: u64) -> Vec<Value> {
    state
        .feed
        .lock()
        .unwrap()
        .iter()
        .filter(|entry| entry["sequence"].as_u64().unwrap() > after)
        .cloned()
        .collect()
}

async fn snapshot(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    Query(query): Query<FeedQuery>,
) -> Response {
    if !client_authenticated(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let after = query.after.unwrap_or(0);
    let revocations = entries_after(&state, after);
    let cursor = revocations
        .last()
        .map_or(after, |last| last["sequence"].as_u64().unwrap());
    Json(json!({"revocations": revocations, "cursor": cursor})).into_response()
}

fn event(entry: &Value) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event("revocation")
        .id(entry["sequence"].to_string())
        .data(entry.to_string()))
}

async fn stream(State(state): State<Arc<IssuerState>>, headers: HeaderMap) -> Response {
    if !client_authenticated(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // Subscribed before the backlog is read, so nothing appended in between is missed.
    let receiver = state.pushed.subscribe();
    let after = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(0);
    let backlog = entries_after(&state, after);
    let last = backlog
        .last()
        .map_or(after, |entry| entry["sequence"].as_u64().unwrap());
    let live = stream::unfold((receiver, last), |(mut receiver, last)| async move {
        loop {
            match receiver.recv().await {
                Ok(entry) if entry["sequence"].as_u64().unwrap() > last => {
                    let sequence = entry["sequence"].as_u64().unwrap();
                    return Some((event(&entry), (receiver, sequence)));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let events: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> =
        Box::pin(stream::iter(backlog.iter().map(event).collect::<Vec<_>>()).chain(live));
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(1)))
        .into_response()
}

#[derive(Deserialize)]
struct IntrospectionRequest {
    token: String,
}

async fn introspect(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !client_authenticated(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(request) = serde_urlencoded::from_str::<IntrospectionRequest>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let answer = state
        .sessions
        .lock()
        .unwrap()
        .get(&request.token)
        .cloned()
        .unwrap_or_else(|| json!({"active": false}));
    Json(answer).into_response()
}

/// A route's JSON description of its caller.
pub fn describe(caller: &Principal) -> Value {
    json!({
        "sub": caller.subject(),
        "sid": caller.session_id(),
        "jti": caller.token_id(),
        "aud": caller.audience(),
        "operation": caller.operation(),
        "transaction_id": caller.transaction_id(),
        "actor": caller.actor(),
        "one_time": caller.is_one_time(),
    })
}

/// Serves `app` on a loopback socket: its base URL.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// `method url` with `Authorization: Bearer token` when given.
pub async fn send(method: &str, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

pub fn challenge(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned())
}

pub const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;
