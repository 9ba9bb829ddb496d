//! The stateful cart service: its own session, obtained by exchanging the user's access
//! token for a child session at Tessera, in its own `__Host-` cookie.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header::{SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use headers::authorization::Bearer;
use headers::{Authorization, Cookie, HeaderMapExt as _};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_tower::{Principal, TesseraAuth};

use crate::Settings;

/// The cookie the cart keeps its child session in, on its own host.
pub const COOKIE: &str = "__Host-cart_session";

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const SESSION: &str = "urn:tessera:params:oauth:token-type:session";

#[derive(Debug, Clone)]
struct Cart {
    settings: Arc<Settings>,
    http: reqwest::Client,
    /// Items by user.
    items: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

/// The cart API. `auth` is built for the cart's audience with
/// `accept_session_cookie(COOKIE)`:
///
/// - `POST /session` with `Authorization: Bearer <access token for the cart>`: exchanges it
///   at Tessera for a child session and sets it as the `__Host-cart_session` cookie; answers
///   the session's CSRF token, for writes.
/// - `GET /cart`, `POST /cart/items` (`{"item": …}`, with `X-CSRF-Token`): on the cookie.
/// - `POST /logout`: ends the cart's session at Tessera (the user's Tessera session stays).
pub fn app(settings: Settings, auth: TesseraAuth) -> Router {
    let cart = Cart {
        settings: Arc::new(settings),
        http: reqwest::Client::new(),
        items: Arc::default(),
    };
    Router::new()
        .route("/cart", get(show))
        .route("/cart/items", post(add))
        .layer(auth)
        .route("/session", post(start_session))
        .route("/logout", post(logout))
        .with_state(cart)
}

async fn start_session(State(cart): State<Cart>, headers: HeaderMap) -> Response {
    let Some(Authorization(bearer)) = headers.typed_get::<Authorization<Bearer>>() else {
        return refused();
    };
    let form = [
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", bearer.token()),
        ("subject_token_type", ACCESS_TOKEN),
        ("audience", cart.settings.audience.as_str()),
        ("requested_token_type", SESSION),
    ];
    let answer = cart
        .http
        .post(format!("{}/v1/token", cart.settings.tessera))
        .form(&form)
        .send()
        .await;
    let answer = match answer {
        Ok(answer) if answer.status().is_success() => answer,
        Ok(answer) if answer.status().is_client_error() => return refused(),
        _ => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let Ok(exchanged) = answer.json::<Exchanged>().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let cookie = format!(
        "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        exchanged.access_token, exchanged.expires_in
    );
    let Ok(cookie) = HeaderValue::from_str(&cookie) else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut response = Json(json!({"csrf_token": exchanged.csrf_token})).into_response();
    response.headers_mut().insert(SET_COOKIE, cookie);
    response
}

/// Tessera's token-exchange answer, the parts the cart uses.
#[derive(Debug, Deserialize)]
struct Exchanged {
    access_token: String,
    expires_in: i64,
    csrf_token: Option<String>,
}

fn refused() -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    response
}

async fn show(State(cart): State<Cart>, caller: Principal) -> Json<Value> {
    let items = cart
        .items
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(caller.subject())
        .cloned()
        .unwrap_or_default();
    Json(json!({"user": caller.subject(), "session": caller.session_id(), "items": items}))
}

#[derive(Debug, Deserialize)]
struct NewItem {
    item: String,
}

async fn add(State(cart): State<Cart>, caller: Principal, Json(new): Json<NewItem>) -> StatusCode {
    cart.items
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(caller.subject().to_owned())
        .or_default()
        .push(new.item);
    StatusCode::NO_CONTENT
}

async fn logout(State(cart): State<Cart>, headers: HeaderMap) -> Response {
    let token = headers
        .typed_get::<Cookie>()
        .and_then(|cookies| cookies.get(COOKIE).map(str::to_owned));
    if let Some(token) = token {
        // RFC 7009: the token is the proof; revoking a child leaves the parent alone.
        let revoked = cart
            .http
            .post(format!("{}/v1/revoke", cart.settings.tessera))
            .form(&[("token", token.as_str())])
            .send()
            .await;
        if !revoked.is_ok_and(|answer| answer.status().is_success()) {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static(
            "__Host-cart_session=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
        ),
    );
    response
}
