//! The admin API's downstream services (`/v1/admin/services`): what `tessera service
//! add/list/remove` does, over HTTP, recorded in the audit trail as the admin client's.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tessera_core::{NewService, ServiceRecord};
use utoipa::ToSchema;

use crate::AppState;
use crate::audit::Audit;
use crate::auth::AdminClient;
use crate::body::{Rfc3339, json, to_json};
use crate::extract::ApiJson;
use crate::problem::{Problem, ProblemBody};
use crate::routes::admin::as_admin;

/// A registered downstream service.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceBody<'a> {
    /// Its unique name; `DELETE /v1/admin/services/{name}` removes it.
    pub name: &'a str,
    /// The audience its tokens carry in `aud` (unique).
    pub audience: &'a str,
    /// Its scopes, each `NAME` (every user may receive it) or `NAME=ROLE|ROLE` (users holding
    /// one of those roles), in the order registered.
    pub scopes: Vec<String>,
    /// The longest lifetime of a token issued for it, in seconds.
    pub max_ttl_seconds: u64,
    /// Whether it may exchange an access token for a child session.
    pub sessions: bool,
    /// When it was registered.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
}

impl<'a> From<&'a ServiceRecord> for ServiceBody<'a> {
    fn from(service: &'a ServiceRecord) -> Self {
        ServiceBody {
            name: &service.name,
            audience: &service.audience,
            scopes: service.scopes.iter().map(ToString::to_string).collect(),
            max_ttl_seconds: service.max_ttl.as_secs(),
            sessions: service.sessions,
            created_at: Rfc3339(service.created_at),
        }
    }
}

/// `GET /v1/admin/services`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceList<'a> {
    /// Every service, oldest first.
    pub services: Vec<ServiceBody<'a>>,
}

/// `POST /v1/admin/services`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServiceRequest {
    /// A unique name: 1–64 of `A–Z a–z 0–9 . _ -`.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// Its audience (unique): 1–256 visible ASCII characters, usually its base URL.
    #[schema(min_length = 1, max_length = 256)]
    pub audience: String,
    /// Its scopes: `NAME` or `NAME=ROLE|ROLE`. Defaults to none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The longest lifetime of a token issued for it, 1 to 86400 seconds. Defaults to 300.
    #[serde(default = "default_max_ttl")]
    #[schema(minimum = 1, maximum = 86400)]
    pub max_ttl_seconds: u64,
    /// Whether it may exchange an access token for a child session. Defaults to `false`.
    #[serde(default)]
    pub sessions: bool,
}

fn default_max_ttl() -> u64 {
    300
}

/// Lists the registered downstream services.
#[utoipa::path(
    get, path = "/v1/admin/services", tag = "admin",
    responses(
        (status = 200, description = "Every service, oldest first", body = ServiceList),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn list_services(
    AdminClient(_admin): AdminClient,
    State(state): State<AppState>,
) -> Result<Response, Problem> {
    let services = state.engine.services().await?;
    let services = services.iter().map(ServiceBody::from).collect();
    Ok(json(StatusCode::OK, to_json(&ServiceList { services })))
}

/// Registers a downstream service for token exchange.
#[utoipa::path(
    post, path = "/v1/admin/services", tag = "admin",
    request_body = NewServiceRequest,
    responses(
        (status = 201, description = "Registered", body = ServiceBody),
        (status = 400, description = "`malformed_request`: the body is not a JSON object", body = ProblemBody),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 409, description = "`service_taken`: the name or the audience is registered already", body = ProblemBody),
        (status = 415, description = "`unsupported_media_type`: the body is not `application/json`", body = ProblemBody),
        (status = 422, description = "`validation_failed`: a malformed name, audience or scope, a max_ttl_seconds out of range, or unknown, missing or repeated fields", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn create_service(
    AdminClient(admin): AdminClient,
    audit: Audit,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewServiceRequest>,
) -> Result<Response, Problem> {
    let new = NewService {
        name: body.name,
        audience: body.audience,
        scopes: body.scopes,
        max_ttl: std::time::Duration::from_secs(body.max_ttl_seconds),
        sessions: body.sessions,
    };
    let service = as_admin(&state, &admin, audit)
        .register_service(new)
        .await?;
    Ok(json(
        StatusCode::CREATED,
        to_json(&ServiceBody::from(&service)),
    ))
}

/// Removes a service by name: no new token is issued for it; tokens issued already stay
/// valid until they expire, its child sessions until they end.
#[utoipa::path(
    delete, path = "/v1/admin/services/{name}", tag = "admin",
    params(("name" = String, Path, description = "The service's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 404, description = "`not_found`: no service has that name", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn delete_service(
    AdminClient(admin): AdminClient,
    audit: Audit,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    as_admin(&state, &admin, audit)
        .remove_service(&name)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
