//! Liveness, readiness, metrics and the API description.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::AppState;
use crate::body::{Status, json, to_json};
use crate::problem::{Problem, ProblemBody};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Status)))]
pub async fn healthz() -> Response {
    json(StatusCode::OK, to_json(&Status { status: "ok" }))
}

/// The stores answer; 503 when they do not.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, body = Status),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Response, Problem> {
    state
        .engine
        .ready()
        .await
        .map_err(tessera_core::Error::from)?;
    Ok(json(StatusCode::OK, to_json(&Status { status: "ready" })))
}

/// This document: the API, generated from the code.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object))
)]
pub async fn openapi(State(state): State<AppState>) -> Response {
    json(StatusCode::OK, state.openapi.to_vec())
}

/// Prometheus metrics, in the text format. Served here only when `metrics.bearer_token` is
/// set (and `metrics.bind` is not), to requests with `Authorization: Bearer` and that token;
/// otherwise `404`.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "`unauthenticated`: no or wrong metrics token", body = ProblemBody),
        (status = 404, description = "`not_found`: metrics are off, or served on `metrics.bind`", body = ProblemBody),
    ),
    security(("metrics" = []))
)]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    if !state.metrics.on_main_listener() {
        return Err(Problem::not_found("no such endpoint"));
    }
    state.metrics.scrape(&headers, &state.engine, &state.tokens)
}
