//! Liveness, readiness and the API description.

use axum::extract::State;
use axum::http::StatusCode;
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
        (status = 503, description = "`store_unavailable`", body = ProblemBody),
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
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi(State(state): State<AppState>) -> Response {
    json(StatusCode::OK, state.openapi.to_vec())
}
