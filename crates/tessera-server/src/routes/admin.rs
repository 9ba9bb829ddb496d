//! The admin API under `/v1/admin/`: accounts, their sessions, signing keys and API clients,
//! for operators' scripts. Every handler takes an [`AdminClient`] first, so nothing here runs
//! for a caller without admin client credentials; the state lives in the store, so any
//! instance answers, and a revocation made here reaches the other instances and the
//! revocation feed like any other.
//!
//! One handler per operation, each one line in `routes::routed()` and one entry in
//! `routes::ApiDoc`. Handlers that change something act through [`as_admin`], so the audit
//! trail names the admin client as the actor, with the request's address and user agent.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use tessera_core::{
    Actor, AuditContext, AuditFilter, AuditKind, ClientRecord, CustomClaims, Engine, Error, Roles,
    SessionId, Standing, StandingChange, Timestamp, User, UserId, Username,
};
use tessera_tokens::KeyInfo;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::audit::{Audit, EventBody, parse_rfc3339};
use crate::auth::AdminClient;
use crate::body::{Revoked, Rfc3339, SessionBody, UserBody, json, to_json};
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::{Problem, ProblemBody};
use crate::routes::accounts::NewUser;

/// Largest page of `GET /v1/admin/users`.
const MAX_PAGE: usize = 200;
/// Page size of `GET /v1/admin/users` without `limit`.
const DEFAULT_PAGE: usize = 50;
/// Longest client name the API registers, in bytes.
const MAX_CLIENT_NAME: usize = 64;
/// Largest page of `GET /v1/admin/audit`.
const MAX_AUDIT_PAGE: usize = 500;
/// Page size of `GET /v1/admin/audit` without `limit` (as `tessera audit`).
const DEFAULT_AUDIT_PAGE: usize = 100;

/// `GET /v1/admin/users` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsersQuery {
    /// Users per page, 1–200. Defaults to `50`.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page; without it, the first page.
    pub after: Option<String>,
    /// Only users whose username contains this text, in any case (a prefix is a substring
    /// too). At most 64 characters.
    #[param(max_length = 64)]
    pub q: Option<String>,
}

/// A page of `GET /v1/admin/users`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage<'a> {
    /// Users in username order (case-folded).
    pub users: Vec<UserBody<'a>>,
    /// Pass as `after` for the next page; `null` on the last page. Opaque: it names a
    /// position in username order, so users added or removed meanwhile neither repeat nor
    /// push others off the walk.
    pub next_cursor: Option<String>,
}

/// An account as the admin API shows it: the public fields and its standing, never its
/// password hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserBody<'a> {
    /// The account.
    #[serde(flatten)]
    pub user: UserBody<'a>,
    /// Role names, sorted: the `roles` claim of the user's access tokens.
    pub roles: Vec<&'a str>,
    /// Custom claims: extra top-level claims of the user's access tokens.
    #[schema(value_type = Object)]
    pub claims: &'a Map<String, Value>,
    /// Whether the account is disabled: it cannot log in or refresh, and has no live
    /// sessions.
    pub disabled: bool,
}

impl<'a> AdminUserBody<'a> {
    fn new(user: &'a User, standing: &'a Standing) -> Self {
        AdminUserBody {
            user: UserBody::from(user),
            roles: standing.roles.iter().collect(),
            claims: standing.claims.as_map(),
            disabled: standing.disabled,
        }
    }
}

/// `PATCH /v1/admin/users/{id}`: the parts of the account's standing to replace; any subset,
/// the rest stays as it is. A part that is present must hold a value (`null` is refused).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StandingPatch {
    /// The new set of roles, replacing the current one: at most 32 names of 1–64 characters
    /// from `A-Z a-z 0-9 . _ : -` (duplicates fold). `[]` removes every role.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<String>, required = false, max_items = 32)]
    pub roles: Option<Vec<String>>,
    /// The new custom claims, replacing the whole object: names of 1–64 characters from
    /// `A-Z a-z 0-9 . _ : / -`, none that Tessera sets itself (`iss`, `sub`, `aud`, `exp`,
    /// `nbf`, `iat`, `jti`, `sid`, `typ`, `scope`, `roles`, `auth_time`, `act`,
    /// `client_id`, `cnf`, `azp`), at most 1024 bytes as JSON. `{}` removes every claim.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Object, required = false)]
    pub claims: Option<Map<String, Value>>,
    /// `true` disables the account (its sessions end, logins and refreshes are refused);
    /// `false` enables it again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    pub disabled: Option<bool>,
}

/// A field that, when present, holds a value: `null` is refused rather than read as "leave
/// it alone" or "clear it".
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// `POST /v1/admin/users/{id}/password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// The new password: the rules of registration (at least `auth.password_min_length`
    /// characters, at most `auth.password_max_bytes` bytes, not a common password, not the
    /// username).
    pub password: String,
}

impl std::fmt::Debug for PasswordReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordReset").finish_non_exhaustive()
    }
}

/// `GET /v1/admin/audit` query: the filters of `tessera audit`, and a cursor.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only events about this account: a user id, or the username of an existing account
    /// (tried first, as `tessera audit --user` does). A deleted account's events are found
    /// by its id.
    pub user: Option<String>,
    /// Only events of this type (an event's `type`: `login_failed`, `roles_changed`, …).
    pub kind: Option<String>,
    /// Only events at or after this time: RFC 3339 in UTC, like `2026-01-31T12:00:00Z`.
    pub since: Option<String>,
    /// Only events before this time: RFC 3339 in UTC.
    pub until: Option<String>,
    /// The `next_cursor` of the previous page; without it, the oldest events.
    pub cursor: Option<String>,
    /// Events per page, 1–500. Defaults to `100`.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

/// A page of `GET /v1/admin/audit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage<'a> {
    /// Matching events, oldest (lowest `id`) first.
    pub events: Vec<EventBody<'a>>,
    /// Pass as `cursor` for the next page; `null` when no more events matched. Pages never
    /// skip or repeat an event while others are appended; to follow the trail from its end,
    /// pass the last event's `id`.
    pub next_cursor: Option<String>,
}

/// `GET /v1/admin/users/{id}/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserSessions<'a> {
    /// The user's live sessions, newest first.
    pub sessions: Vec<SessionBody<'a>>,
}

/// A signing key, as `GET /v1/admin/keys` lists it: never key material.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyBody<'a> {
    /// Key id, as in the JWKS and the `kid` of the tokens it signs.
    pub kid: &'a str,
    /// `EdDSA`, `ES256` or `RS256`.
    pub algorithm: &'a str,
    /// `pending` (published, not signing yet), `signing`, or `retired` (no longer signs;
    /// published until every token it signed has expired).
    #[schema(value_type = KeyStatus)]
    pub status: &'static str,
    /// When it was created and published.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
    /// When it starts (or started) signing.
    #[schema(value_type = String, format = DateTime)]
    pub activates_at: Rfc3339,
    /// When it stops (or stopped) signing, once a successor exists.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retired_at: Option<Rfc3339>,
}

/// A key's state (`KeyBody::status`), for the document.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Published in the JWKS; signs from `activates_at`.
    Pending,
    /// Signs new tokens.
    Signing,
    /// Verifies only, until the tokens it signed have expired.
    Retired,
}

/// `GET /v1/admin/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList<'a> {
    /// The stored signing keys, oldest first. Empty with `token.algorithm = "HS256"`, whose
    /// key is configured, not stored.
    pub keys: Vec<KeyBody<'a>>,
}

/// `POST /v1/admin/keys/rotate`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKeyBody<'a> {
    /// The new key's id: in the JWKS at once.
    pub kid: &'a str,
    /// When it starts signing (`token.key_publish_lead` from now); the key it replaces signs
    /// until then.
    #[schema(value_type = String, format = DateTime)]
    pub activates_at: Rfc3339,
}

/// An API client, never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientBody<'a> {
    /// Client id (the HTTP Basic user name).
    pub client_id: &'a str,
    /// Its unique name; `DELETE /v1/admin/clients/{name}` removes it.
    pub name: &'a str,
    /// Whether it carries the admin scope (may call `/v1/admin/…`).
    pub admin: bool,
    /// When it was added.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
}

impl<'a> From<&'a ClientRecord> for ClientBody<'a> {
    fn from(client: &'a ClientRecord) -> Self {
        ClientBody {
            client_id: &client.id,
            name: &client.name,
            admin: client.admin,
            created_at: Rfc3339(client.created_at),
        }
    }
}

/// `GET /v1/admin/clients`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList<'a> {
    /// Every client, oldest first.
    pub clients: Vec<ClientBody<'a>>,
}

/// `POST /v1/admin/clients`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientRequest {
    /// A unique name for people: 1–64 bytes, no control characters.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// Give it the admin scope. Defaults to `false` (a resource server: introspection and
    /// the revocation feed only).
    #[serde(default)]
    pub admin: bool,
}

/// The answer to `POST /v1/admin/clients`: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient<'a> {
    /// The client.
    #[serde(flatten)]
    pub client: ClientBody<'a>,
    /// The client secret (the HTTP Basic password). Only its hash is stored: keep it now.
    pub client_secret: String,
}

/// Lists accounts, a page at a time, optionally only those whose username contains `q`.
#[utoipa::path(
    get, path = "/v1/admin/users", tag = "admin",
    params(UsersQuery),
    responses(
        (status = 200, description = "A page of users; follow `next_cursor` for the next", body = UserPage),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 422, description = "`validation_failed`: `limit` outside 1–200, an `after` this API did not issue, `q` over 64 characters, or an unknown parameter", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn list_users(
    AdminClient(_admin): AdminClient,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<UsersQuery>,
) -> Result<Response, Problem> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::validation("limit must be between 1 and 200"));
    }
    let after = query.after.as_deref().map(cursor_key).transpose()?;
    let contains = query.q.as_deref().filter(|text| !text.is_empty());
    if contains.is_some_and(|text| text.chars().count() > Username::MAX_LEN) {
        return Err(Problem::validation("q has at most 64 characters"));
    }
    // One more than asked: whether it comes back says if there is a next page.
    let mut users = state
        .engine
        .users_page(after.as_deref(), limit + 1, contains)
        .await?;
    let next_cursor = if users.len() > limit {
        users.truncate(limit);
        users.last().map(cursor_of)
    } else {
        None
    };
    let page = UserPage {
        users: users.iter().map(UserBody::from).collect(),
        next_cursor,
    };
    Ok(json(StatusCode::OK, to_json(&page)))
}

/// Creates an account, whether or not `auth.registration` is open; the same rules as
/// `POST /v1/users`.
#[utoipa::path(
    post, path = "/v1/admin/users", tag = "admin",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created: no roles, no claims, enabled", body = AdminUserBody),
        (status = 400, description = "`malformed_request`: the body is not a JSON object", body = ProblemBody),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 409, description = "`username_taken`", body = ProblemBody),
        (status = 415, description = "`unsupported_media_type`: the body is not `application/json`", body = ProblemBody),
        (status = 422, description = "`validation_failed`: username or password refused, or unknown, missing or repeated fields", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`server_busy` or `store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn create_user(
    AdminClient(admin): AdminClient,
    audit: Audit,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<Response, Problem> {
    let user = as_admin(&state, &admin, audit)
        .create_user(&body.username, &body.password)
        .await?;
    let standing = Standing::default();
    let body = AdminUserBody::new(&user, &standing);
    Ok(json(StatusCode::CREATED, to_json(&body)))
}

/// One account, with its roles, custom claims and disabled flag.
#[utoipa::path(
    get, path = "/v1/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = AdminUserBody),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 404, description = "`not_found`: no such user", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn show_user(
    AdminClient(_admin): AdminClient,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (user, standing) = state.engine.user_with_standing(&user_id(&id)?).await?;
    Ok(json(
        StatusCode::OK,
        to_json(&AdminUserBody::new(&user, &standing)),
    ))
}

/// Changes an account's standing: its roles, its custom claims, whether it is disabled.
/// Every part is checked before anything changes. Roles, claims and disabling make the
/// user's access tokens issued before stale (on every verifier, once the revocation feed
/// reaches it; the next refresh carries the new roles and claims); disabling also ends every
/// session of the account.
/// Each change is recorded in the audit trail as this client's.
#[utoipa::path(
    patch, path = "/v1/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    request_body = StandingPatch,
    responses(
        (status = 200, description = "The user as changed, as `GET /v1/admin/users/{id}` shows it", body = AdminUserBody),
        (status = 400, description = "`malformed_request`: the body is not a JSON object", body = ProblemBody),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 404, description = "`not_found`: no such user", body = ProblemBody),
        (status = 415, description = "`unsupported_media_type`: the body is not `application/json`", body = ProblemBody),
        (status = 422, description = "`validation_failed`: a role or claim outside the rules, a `null`, or unknown or repeated fields; nothing changed", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn update_user(
    AdminClient(admin): AdminClient,
    audit: Audit,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StandingPatch>,
) -> Result<Response, Problem> {
    let id = user_id(&id)?;
    let roles = body
        .roles
        .map(|names| Roles::parse(names.iter().map(String::as_str)))
        .transpose()
        .map_err(Error::from)?;
    let claims = body
        .claims
        .map(CustomClaims::new)
        .transpose()
        .map_err(Error::from)?;
    let change = StandingChange {
        roles,
        claims,
        disabled: body.disabled,
    };
    as_admin(&state, &admin, audit)
        .change_standing(&id, change)
        .await?;
    let (user, standing) = state.engine.user_with_standing(&id).await?;
    Ok(json(
        StatusCode::OK,
        to_json(&AdminUserBody::new(&user, &standing)),
    ))
}

/// Sets an account's password without the old one, as `tessera user reset-password` does:
/// the password policy applies, every session of the account ends (every credential), its
/// access tokens go stale, and its failed-login count is cleared. The password appears in no
/// answer, log or audit event.
#[utoipa::path(
    post, path = "/v1/admin/users/{id}/password", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    request_body = PasswordReset,
    responses(
        (status = 204, description = "Reset; the account's sessions are revoked"),
        (status = 400, description = "`malformed_request`: the body is not a JSON object", body = ProblemBody),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 404, description = "`not_found`: no such user", body = ProblemBody),
        (status = 415, description = "`unsupported_media_type`: the body is not `application/json`", body = ProblemBody),
        (status = 422, description = "`validation_failed`: the password policy refused the password, or unknown, missing or repeated fields; nothing changed", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`server_busy` or `store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn reset_password(
    AdminClient(admin): AdminClient,
    audit: Audit,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PasswordReset>,
) -> Result<Response, Problem> {
    as_admin(&state, &admin, audit)
        .reset_password(&user_id(&id)?, &body.password)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Reads the audit trail, oldest first, with the filters of `tessera audit`: logins,
/// logouts, revocations, account, client and key changes — never a secret.
#[utoipa::path(
    get, path = "/v1/admin/audit", tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of events; follow `next_cursor` for the next", body = AuditPage),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 422, description = "`validation_failed`: an unknown `kind`, a `user` that is neither a user id nor an existing username, a time that is not RFC 3339 UTC, a `cursor` this API did not issue, `limit` outside 1–500, or an unknown parameter", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn audit_events(
    AdminClient(_admin): AdminClient,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Response, Problem> {
    let limit = query.limit.unwrap_or(DEFAULT_AUDIT_PAGE);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(Problem::validation("limit must be between 1 and 500"));
    }
    let kind = query
        .kind
        .as_deref()
        .map(|kind| {
            kind.parse::<AuditKind>().map_err(|_| {
                let kinds: Vec<&str> = AuditKind::ALL.iter().map(|kind| kind.as_str()).collect();
                Problem::validation(format!("kind must be one of {}", kinds.join(", ")))
            })
        })
        .transpose()?;
    let time = |text: Option<&str>, name: &str| {
        text.map(|text| {
            parse_rfc3339(text).map_err(|error| Problem::validation(format!("{name} {error}")))
        })
        .transpose()
    };
    let since = time(query.since.as_deref(), "since")?;
    let until = time(query.until.as_deref(), "until")?;
    let after = match query.cursor.as_deref() {
        None => 0,
        Some(cursor) => cursor
            .parse::<u64>()
            .map_err(|_| Problem::validation("cursor is not a cursor this API issued"))?,
    };
    let user_id = match query.user.as_deref() {
        None => None,
        Some(user) => Some(audited_user(&state.engine, user).await?),
    };
    let filter = AuditFilter {
        user_id,
        kind,
        since,
        until,
    };
    // One more than asked: whether it comes back says if there is a next page.
    let mut records = state.engine.audit_events(&filter, after, limit + 1).await?;
    let next_cursor = if records.len() > limit {
        records.truncate(limit);
        records.last().map(|record| record.id.to_string())
    } else {
        None
    };
    let page = AuditPage {
        events: records.iter().map(EventBody::from).collect(),
        next_cursor,
    };
    Ok(json(StatusCode::OK, to_json(&page)))
}

/// The account `user` names for the audit filter: an existing account's username first (as
/// `tessera audit --user`), else a user id, which may be a deleted account's.
async fn audited_user(engine: &Engine, user: &str) -> Result<UserId, Problem> {
    match engine.user_by_username(user).await {
        Ok(found) => Ok(found.id),
        Err(Error::UserNotFound) => UserId::parse(user).map_err(|_| {
            Problem::validation("user must be a user id or the username of an existing account")
        }),
        Err(error) => Err(error.into()),
    }
}

/// Deletes an account and ends every session of it (every credential, on every instance).
#[utoipa::path(
    delete, path = "/v1/admin/users/{id}", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Deleted; its sessions are revoked"),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 404, description = "`not_found`: no such user", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn delete_user(
    AdminClient(admin): AdminClient,
    audit: Audit,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    as_admin(&state, &admin, audit)
        .delete_user(&user_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An account's live sessions.
#[utoipa::path(
    get, path = "/v1/admin/users/{id}/sessions", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Live sessions, newest first", body = UserSessions),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 404, description = "`not_found`: no such user", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn user_sessions(
    AdminClient(_admin): AdminClient,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let user = state.engine.user_by_id(&user_id(&id)?).await?;
    let records = state.engine.sessions_of(&user.id).await?;
    let sessions = records
        .iter()
        .map(|record| SessionBody::listed(record, &user.username, None))
        .collect();
    Ok(json(StatusCode::OK, to_json(&UserSessions { sessions })))
}

/// Revokes every session of an account.
#[utoipa::path(
    delete, path = "/v1/admin/users/{id}/sessions", tag = "admin",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Revoked", body = Revoked),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 404, description = "`not_found`: no such user", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn revoke_user_sessions(
    AdminClient(admin): AdminClient,
    audit: Audit,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let user = state.engine.user_by_id(&user_id(&id)?).await?;
    let revoked = as_admin(&state, &admin, audit)
        .revoke_user_sessions(&user.id)
        .await?;
    Ok(json(StatusCode::OK, to_json(&Revoked { revoked })))
}

/// Revokes one session, whoever owns it.
#[utoipa::path(
    delete, path = "/v1/admin/sessions/{id}", tag = "admin",
    params(("id" = String, Path, description = "Public session id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 404, description = "`not_found`: no such live session", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn revoke_session(
    AdminClient(admin): AdminClient,
    audit: Audit,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = SessionId::parse(&id).map_err(|_| Problem::not_found("no such session"))?;
    as_admin(&state, &admin, audit).revoke_session(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The signing keys: ids, algorithms and schedule, never key material.
#[utoipa::path(
    get, path = "/v1/admin/keys", tag = "admin",
    responses(
        (status = 200, description = "Stored signing keys, oldest first", body = KeyList),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn list_keys(
    AdminClient(_admin): AdminClient,
    State(state): State<AppState>,
) -> Result<Response, Problem> {
    let keys = state.tokens.signing_keys().await?;
    let now = state.engine.clock().now();
    let keys = keys.iter().map(|key| key_body(key, now)).collect();
    Ok(json(StatusCode::OK, to_json(&KeyList { keys })))
}

/// Rotates the signing key, as `tessera keys rotate` does: the new key is published at once
/// and signs after `token.key_publish_lead`; the one it replaces stays published until its
/// tokens have expired. Other instances pick it up within `token.key_reload`.
#[utoipa::path(
    post, path = "/v1/admin/keys/rotate", tag = "admin",
    responses(
        (status = 201, description = "A new key", body = RotatedKeyBody),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 409, description = "`rotation_unsupported`: the HS256 key is configured (`token.hs256_secret`), not generated", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn rotate_key(
    AdminClient(admin): AdminClient,
    audit: Audit,
    State(state): State<AppState>,
) -> Result<Response, Problem> {
    let rotated = state.tokens.rotate_in(admin_context(&admin, audit)).await?;
    let body = RotatedKeyBody {
        kid: &rotated.kid,
        activates_at: Rfc3339(rotated.activates_at),
    };
    Ok(json(StatusCode::CREATED, to_json(&body)))
}

/// The API clients (resource servers and admin clients), never their secrets.
#[utoipa::path(
    get, path = "/v1/admin/clients", tag = "admin",
    responses(
        (status = 200, description = "Every client, oldest first", body = ClientList),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn list_clients(
    AdminClient(_admin): AdminClient,
    State(state): State<AppState>,
) -> Result<Response, Problem> {
    let clients = state.engine.clients().await?;
    let clients = clients.iter().map(ClientBody::from).collect();
    Ok(json(StatusCode::OK, to_json(&ClientList { clients })))
}

/// Registers an API client; its secret is in this answer and nowhere else.
#[utoipa::path(
    post, path = "/v1/admin/clients", tag = "admin",
    request_body = NewClientRequest,
    responses(
        (status = 201, description = "Registered; store `client_secret` now", body = CreatedClient),
        (status = 400, description = "`malformed_request`: the body is not a JSON object", body = ProblemBody),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 409, description = "`client_name_taken`", body = ProblemBody),
        (status = 415, description = "`unsupported_media_type`: the body is not `application/json`", body = ProblemBody),
        (status = 422, description = "`validation_failed`: a name that is empty, over 64 bytes or has control characters, or unknown, missing or repeated fields", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn create_client(
    AdminClient(admin): AdminClient,
    audit: Audit,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewClientRequest>,
) -> Result<Response, Problem> {
    let name = body.name.as_str();
    if name.is_empty() || name.len() > MAX_CLIENT_NAME || name.chars().any(char::is_control) {
        return Err(Problem::validation(
            "a client name has 1 to 64 bytes and no control characters",
        ));
    }
    let engine = as_admin(&state, &admin, audit);
    let created = if body.admin {
        engine.create_admin_client(name).await?
    } else {
        engine.create_client(name).await?
    };
    let body = CreatedClient {
        client: ClientBody::from(&created.record),
        client_secret: created.secret.encode(),
    };
    Ok(json(StatusCode::CREATED, to_json(&body)))
}

/// Removes an API client by name: its credentials stop working at once.
#[utoipa::path(
    delete, path = "/v1/admin/clients/{name}", tag = "admin",
    params(("name" = String, Path, description = "The client's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "`unauthenticated` (no client credentials) or `invalid_client`, with `WWW-Authenticate: Basic`", body = ProblemBody),
        (status = 403, description = "`forbidden`: the client lacks the admin scope; or `csrf_failed`: a cross-site browser request", body = ProblemBody),
        (status = 404, description = "`not_found`: no client has that name", body = ProblemBody),
        (status = 429, description = "`rate_limited`: too many failed credential checks from this address, with `Retry-After`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("admin" = []))
)]
pub async fn delete_client(
    AdminClient(admin): AdminClient,
    audit: Audit,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    as_admin(&state, &admin, audit).delete_client(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A user id from the path; one that cannot be an id names no user.
fn user_id(text: &str) -> Result<UserId, Problem> {
    UserId::parse(text).map_err(|_| Problem::not_found("no such user"))
}

/// Cursors name the last username key of a page, versioned so their form can change.
const CURSOR_PREFIX: &str = "u1:";

/// The cursor after `user`.
fn cursor_of(user: &User) -> String {
    let key = user.username.to_ascii_lowercase();
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{key}"))
}

/// The username key a cursor names; anything this API did not issue is refused.
fn cursor_key(cursor: &str) -> Result<String, Problem> {
    let refused = || Problem::validation("after is not a cursor this API issued");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| refused())?;
    let text = String::from_utf8(bytes).map_err(|_| refused())?;
    let key = text.strip_prefix(CURSOR_PREFIX).ok_or_else(refused)?;
    match Username::parse(key) {
        Ok(name) if name.key() == key => Ok(key.to_owned()),
        _ => Err(refused()),
    }
}

fn key_body(key: &KeyInfo, now: Timestamp) -> KeyBody<'_> {
    let status = if key.retired_at.is_some_and(|retired| retired <= now) {
        "retired"
    } else if key.activates_at > now {
        "pending"
    } else {
        "signing"
    };
    KeyBody {
        kid: &key.kid,
        algorithm: &key.algorithm,
        status,
        created_at: Rfc3339(key.created_at),
        activates_at: Rfc3339(key.activates_at),
        retired_at: key.retired_at.map(Rfc3339),
    }
}

/// What an admin request changes is recorded in the audit trail as that client's doing, from
/// the request's address and user agent.
fn admin_context(admin: &ClientRecord, Audit(context): Audit) -> AuditContext {
    context.acting(Actor::Client(admin.id.clone()))
}

/// The engine acting as `admin` (see [`admin_context`]).
pub(crate) fn as_admin(state: &AppState, admin: &ClientRecord, audit: Audit) -> Engine {
    state.engine.with_context(admin_context(admin, audit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let user = User {
            id: UserId::generate().unwrap(),
            username: "Alice.Smith".to_owned(),
            created_at: Timestamp::from_unix_millis(0),
        };
        assert_eq!(cursor_key(&cursor_of(&user)).unwrap(), "alice.smith");
        let encode = |text: &str| URL_SAFE_NO_PAD.encode(text);
        for foreign in [
            String::new(),
            "not base64!".to_owned(),
            encode("alice"),
            encode("u1:"),
            encode("u1:Alice"),
            encode("u1:a b"),
            encode(&format!("u1:{}", "a".repeat(65))),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
        ] {
            assert!(cursor_key(&foreign).is_err(), "{foreign:?}");
        }
    }
}
