//! `/account`: who you are, every live session of yours, revoking them, logging out,
//! changing the password and deleting the account.
//!
//! The sensitive actions (logging out the other sessions, changing the password, deleting
//! the account) need a recent authentication: when the engine says
//! `reauthentication_required`, the page comes back asking for the password
//! (`POST /account/reauthenticate`), then the user repeats the action. Plain forms, so all of
//! it works without JavaScript.

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tessera_core::{
    AuditContext, Error, PasswordChange, RevokeScope, SessionId, SessionRecord, SessionToken,
    Timestamp, ValidSession,
};
use time::OffsetDateTime;
use time::macros::format_description;

use super::{
    CookieSession, Failure, MessagePage, cookie_session, failure_page, form, page_parts, see_other,
    see_other_with, session_cookie_token, to_login, validate,
};
use crate::AppState;
use crate::audit::Audit;
use crate::body::rfc3339;
use crate::extract::ClientIp;
use crate::problem::Problem;

/// The account page.
#[derive(Debug, Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    username: &'a str,
    csrf_token: String,
    sessions: Vec<SessionRow<'a>>,
    others: usize,
    idle_expires: When,
    notice: Option<&'static str>,
    error: Option<String>,
    /// A sensitive action was refused for want of a recent authentication: ask for the
    /// password first.
    reauthenticate: bool,
    /// The password policy's minimum, for the new-password field.
    min_length: usize,
}

/// One session as the account page lists it.
#[derive(Debug)]
struct SessionRow<'a> {
    id: &'a str,
    device: String,
    user_agent: &'a str,
    transport: &'static str,
    ip: &'a str,
    created: When,
    last_seen: When,
    current: bool,
}

/// A time for people, with its machine-readable form for `<time datetime>`.
#[derive(Debug)]
struct When {
    machine: String,
    human: String,
}

impl When {
    fn new(timestamp: Timestamp) -> When {
        let format = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
        let human = OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(timestamp.unix_millis()) * 1_000_000,
        )
        .ok()
        .and_then(|time| time.format(format).ok())
        .unwrap_or_default();
        When {
            machine: rfc3339(timestamp),
            human,
        }
    }
}

/// The fields every account action posts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionForm {
    csrf_token: Option<String>,
}

/// `POST /account/reauthenticate` and `POST /account/delete`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordForm {
    csrf_token: Option<String>,
    password: String,
}

/// `POST /account/password`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangePasswordForm {
    csrf_token: Option<String>,
    current_password: String,
    new_password: String,
}

/// A posted form with the session's CSRF token in it.
trait CsrfForm: DeserializeOwned {
    fn csrf_token(&self) -> Option<&str>;
}

impl CsrfForm for ActionForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

impl CsrfForm for PasswordForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

impl CsrfForm for ChangePasswordForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

/// `?notice=…` after an action: a fixed set of messages.
#[derive(Debug, Default, Deserialize)]
struct AccountQuery {
    notice: Option<String>,
}

fn notice(uri: &Uri) -> Option<&'static str> {
    let query: AccountQuery =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    match query.notice.as_deref()? {
        "revoked" => Some("The session was revoked."),
        "others-revoked" => Some("Every other session was logged out."),
        "reauthenticated" => Some(
            "Thank you. For the next few minutes you can change your password, delete your account or log out everywhere else.",
        ),
        "password-changed" => {
            Some("Your password was changed. Every other session was logged out.")
        }
        _ => None,
    }
}

/// `GET /account`.
pub(super) async fn show(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    match cookie_session(&state, &headers).await {
        Ok(CookieSession::Live(session, token)) => {
            account_page(&state, &session, &token, StatusCode::OK, notice(&uri), None).await
        }
        Ok(other) => to_login(&state, &other),
        Err(problem) => refused(problem),
    }
}

/// `POST /account/sessions/{id}/revoke`: revokes one of the caller's sessions; revoking the
/// current one logs out.
pub(super) async fn revoke_one(
    State(state): State<AppState>,
    Audit(audit): Audit,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, token) = match authorize(&state, &headers, body).await {
        Ok(authorized) => authorized,
        Err(response) => return response,
    };
    let Ok(id) = SessionId::parse(&id) else {
        return not_found(&state, &session, &token).await;
    };
    if id == session.record().id {
        return log_out_session(&state, audit, &session).await;
    }
    match state
        .engine
        .with_context(audit)
        .revoke_session_of(&session.record().user_id, &id)
        .await
    {
        Ok(()) => see_other("/account?notice=revoked"),
        Err(Error::SessionNotFound) => not_found(&state, &session, &token).await,
        Err(error) => refused(error.into()),
    }
}

/// `POST /account/revoke-others`: "log out everywhere else".
pub(super) async fn revoke_others(
    State(state): State<AppState>,
    Audit(audit): Audit,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, token) = match authorize(&state, &headers, body).await {
        Ok(authorized) => authorized,
        Err(response) => return response,
    };
    match state
        .engine
        .with_context(audit)
        .revoke_sessions(&session, RevokeScope::Others)
        .await
    {
        Ok(_) => see_other("/account?notice=others-revoked"),
        Err(error) => action_refused(&state, &session, &token, error).await,
    }
}

/// `POST /account/reauthenticate`: proves the password again for the sensitive actions.
pub(super) async fn reauthenticate(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, token, submitted) =
        match authorize_form::<PasswordForm>(&state, &headers, body).await {
            Ok(authorized) => authorized,
            Err(response) => return response,
        };
    match state
        .engine
        .reauthenticate(&session, &submitted.password, ip)
        .await
    {
        Ok(_) => see_other("/account?notice=reauthenticated"),
        Err(error) => action_refused(&state, &session, &token, error).await,
    }
}

/// `POST /account/password`: changes the password. The other sessions end; this browser's
/// continues under a new cookie.
pub(super) async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, token, submitted) =
        match authorize_form::<ChangePasswordForm>(&state, &headers, body).await {
            Ok(authorized) => authorized,
            Err(response) => return response,
        };
    let change = PasswordChange {
        current_password: &submitted.current_password,
        new_password: &submitted.new_password,
        ip,
    };
    match state.engine.change_password(&session, change).await {
        Ok(renamed) => {
            let mut headers = HeaderMap::new();
            headers.insert(
                SET_COOKIE,
                state.http.cookies.session_cookie(&renamed.token),
            );
            see_other_with("/account?notice=password-changed", headers)
        }
        Err(error) => action_refused(&state, &session, &token, error).await,
    }
}

/// `POST /account/delete`: deletes the account and every session of it.
pub(super) async fn delete(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, token, submitted) =
        match authorize_form::<PasswordForm>(&state, &headers, body).await {
            Ok(authorized) => authorized,
            Err(response) => return response,
        };
    match state
        .engine
        .delete_account(&session, &submitted.password, ip)
        .await
    {
        Ok(()) => {
            let mut headers = HeaderMap::new();
            headers.append(SET_COOKIE, state.http.cookies.clear_cookie());
            see_other_with("/login?notice=account-deleted", headers)
        }
        Err(error) => action_refused(&state, &session, &token, error).await,
    }
}

/// A refused account action, back on the account page: the password prompt when the action
/// needs a recent authentication, the reason otherwise. Failures of the server itself (and
/// a session that ended meanwhile) go where every other page sends them.
async fn action_refused(
    state: &AppState,
    session: &ValidSession,
    token: &SessionToken,
    error: Error,
) -> Response {
    let (status, message, reauthenticate) = match error {
        Error::ReauthenticationRequired => (
            StatusCode::FORBIDDEN,
            "For your security, enter your password again, then repeat what you were doing."
                .to_owned(),
            true,
        ),
        Error::InvalidCredentials => (
            StatusCode::UNAUTHORIZED,
            "That password is wrong.".to_owned(),
            false,
        ),
        Error::PasswordRejected(rejection) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            sentence(&rejection.to_string()),
            false,
        ),
        Error::Unauthenticated | Error::SessionExpired => {
            return to_login(
                state,
                &CookieSession::Ended {
                    expired: matches!(error, Error::SessionExpired),
                },
            );
        }
        Error::RateLimited { retry_after } => {
            let failure = Failure {
                code: "rate_limited",
                retry_after: Some(retry_after),
            };
            (StatusCode::TOO_MANY_REQUESTS, failure.message(), false)
        }
        other => return refused(other.into()),
    };
    let mut page = AccountPageView::of(session, token);
    page.status = status;
    page.error = Some(message);
    page.reauthenticate = reauthenticate;
    page.render(state).await
}

/// "The password is too common; …": an engine message as a sentence.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// `POST /logout`.
pub(super) async fn log_out(
    State(state): State<AppState>,
    Audit(audit): Audit,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match authorize(&state, &headers, body).await {
        Ok((session, _)) => log_out_session(&state, audit, &session).await,
        Err(response) => response,
    }
}

async fn log_out_session(
    state: &AppState,
    audit: AuditContext,
    session: &ValidSession,
) -> Response {
    if let Err(error) = state.engine.with_context(audit).logout(session).await {
        return refused(error.into());
    }
    let mut headers = HeaderMap::new();
    headers.append(SET_COOKIE, state.http.cookies.clear_cookie());
    see_other_with("/login?notice=logged-out", headers)
}

/// The checks of a cookie-authenticated unsafe request, in the API's order: a session cookie,
/// then where the request came from (Origin / `Sec-Fetch-Site`), then the session's CSRF
/// token from the form, and only then the store.
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(ValidSession, SessionToken), Response> {
    let (session, token, _) = authorize_form::<ActionForm>(state, headers, body).await?;
    Ok((session, token))
}

/// [`authorize`] for a form with fields of its own, which it returns.
async fn authorize_form<T: CsrfForm>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(ValidSession, SessionToken, T), Response> {
    let token = match session_cookie_token(state, headers) {
        Ok(Some(token)) => token,
        Ok(None) => return Err(to_login(state, &CookieSession::Absent)),
        Err(_) => return Err(to_login(state, &CookieSession::Ended { expired: false })),
    };
    let submitted: T = form(state, headers, body).await.map_err(refused)?;
    state.http.origins.check(headers).map_err(refused)?;
    let csrf_ok = submitted
        .csrf_token()
        .is_some_and(|csrf| token.verify_csrf(csrf));
    if !csrf_ok {
        return Err(refused(Problem::csrf("missing or wrong csrf_token")));
    }
    match validate(state, token).await {
        Ok(CookieSession::Live(session, token)) => Ok((session, token, submitted)),
        Ok(other) => Err(to_login(state, &other)),
        Err(problem) => Err(refused(problem)),
    }
}

/// An action that was refused or failed, as a page that leads back to the account.
fn refused(problem: Problem) -> Response {
    let title = if problem.code() == "csrf_failed" {
        "Request refused"
    } else {
        "Something went wrong"
    };
    failure_page(problem, HeaderMap::new(), |failure: &Failure| MessagePage {
        title,
        message: failure.message(),
        link_href: "/account",
        link_text: "Back to your account",
    })
}

async fn not_found(state: &AppState, session: &ValidSession, token: &SessionToken) -> Response {
    let problem = Problem::not_found("no such session");
    let status = problem.status();
    let message = Failure {
        code: problem.code(),
        retry_after: None,
    }
    .message();
    account_page(state, session, token, status, None, Some(message)).await
}

async fn account_page(
    state: &AppState,
    session: &ValidSession,
    token: &SessionToken,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Response {
    let mut page = AccountPageView::of(session, token);
    page.status = status;
    page.notice = notice;
    page.error = error;
    page.render(state).await
}

/// What the account page is asked to show besides the account itself.
struct AccountPageView<'a> {
    session: &'a ValidSession,
    token: &'a SessionToken,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
    reauthenticate: bool,
}

impl<'a> AccountPageView<'a> {
    fn of(session: &'a ValidSession, token: &'a SessionToken) -> Self {
        AccountPageView {
            session,
            token,
            status: StatusCode::OK,
            notice: None,
            error: None,
            reauthenticate: false,
        }
    }

    async fn render(self, state: &AppState) -> Response {
        let session = self.session;
        let current = session.record();
        let records = match state.engine.sessions_of(&current.user_id).await {
            Ok(records) => records,
            Err(error) => return refused(error.into()),
        };
        // This device first, then the others, newest first.
        let mut sessions: Vec<SessionRow<'_>> = records
            .iter()
            .map(|record| {
                if record.id == current.id {
                    // This request's activity is newer than anything the store has.
                    SessionRow {
                        last_seen: When::new(session.last_seen_at()),
                        current: true,
                        ..row(record)
                    }
                } else {
                    row(record)
                }
            })
            .collect();
        sessions.sort_by_key(|row| !row.current);
        let others = sessions.iter().filter(|row| !row.current).count();
        page_parts(
            self.status,
            HeaderMap::new(),
            &AccountPage {
                username: session.username(),
                csrf_token: self.token.csrf_token().encode(),
                sessions,
                others,
                idle_expires: When::new(session.idle_expires_at()),
                notice: self.notice,
                error: self.error,
                reauthenticate: self.reauthenticate,
                min_length: state.engine.config().password.min_length,
            },
        )
    }
}

fn row(record: &SessionRecord) -> SessionRow<'_> {
    let user_agent = record.user_agent.as_deref().unwrap_or("");
    SessionRow {
        id: record.id.as_str(),
        device: describe_agent(user_agent),
        user_agent,
        transport: match record.transport.as_str() {
            "cookie" => "browser",
            _ => "app (token)",
        },
        ip: record.ip.as_deref().unwrap_or("unknown address"),
        created: When::new(record.created_at),
        last_seen: When::new(record.last_seen_at),
        current: false,
    }
}

/// "Firefox on Windows" from a `User-Agent`: enough to recognise a device, not a parser.
fn describe_agent(user_agent: &str) -> String {
    const BROWSERS: [(&str, &str); 9] = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("HeadlessChrome/", "Headless Chrome"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
        ("reqwest", "reqwest"),
    ];
    const SYSTEMS: [(&str, &str); 7] = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("CrOS", "ChromeOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ];
    let find = |table: &[(&str, &'static str)]| {
        table
            .iter()
            .find(|(needle, _)| user_agent.contains(needle))
            .map(|(_, name)| *name)
    };
    match (find(&BROWSERS), find(&SYSTEMS)) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser.to_owned(),
        (None, Some(system)) => format!("A browser on {system}"),
        (None, None) if user_agent.is_empty() => "Unknown device".to_owned(),
        (None, None) => "Other client".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_from_the_user_agent() {
        assert_eq!(
            describe_agent(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36"
            ),
            "Headless Chrome on Linux"
        );
        assert_eq!(
            describe_agent(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
            ),
            "Firefox on Windows"
        );
        assert_eq!(
            describe_agent(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
            ),
            "Safari on iOS"
        );
        assert_eq!(describe_agent("curl/8.5.0"), "curl");
        assert_eq!(describe_agent(""), "Unknown device");
    }

    #[test]
    fn times_read_as_utc_minutes() {
        let when = When::new(Timestamp::from_unix_millis(1_700_000_000_123));
        assert_eq!(when.human, "2023-11-14 22:13 UTC");
        assert_eq!(when.machine, "2023-11-14T22:13:20.123Z");
    }
}
