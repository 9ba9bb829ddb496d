//! Records to and from rows, written once for both databases: [`Columns`] reads a row of
//! either, [`Binds`] binds a record to a statement of either, and the functions below decode
//! each kind of record.

use std::time::Duration;

use sqlx::database::Database;
use sqlx::query::Query;
use sqlx::{ColumnIndex, Decode, Encode, Row, Type};
use tessera_core::{
    AuditEvent, AuditFilter, ClientRecord, CustomClaims, KeyRecord, ParentSession, RefreshRecord,
    Revocation, RevocationKind, Roles, ServiceRecord, ServiceScope, SessionId, SessionRecord,
    SessionVerifier, Standing, StoreError, ThrottleKey, ThrottleRule, Timestamp, TokenHash,
    Transport, User, UserId, UserRecord, Username,
};

use super::{malformed, millis, unavailable};
use crate::window;

/// The columns of a row of either database, by name, as the types the schemas use.
pub(crate) trait Columns {
    /// A `TEXT` column, borrowed.
    fn text(&self, column: &'static str) -> Result<&str, StoreError>;
    /// A nullable `TEXT` column.
    fn optional_text(&self, column: &'static str) -> Result<Option<String>, StoreError>;
    /// A 64-bit integer column.
    fn integer(&self, column: &'static str) -> Result<i64, StoreError>;
    /// A nullable 64-bit integer column.
    fn optional_integer(&self, column: &'static str) -> Result<Option<i64>, StoreError>;
    /// A boolean column (`BOOLEAN`; in SQLite an `INTEGER` of 0 or 1).
    fn boolean(&self, column: &'static str) -> Result<bool, StoreError>;
    /// A nullable blob (`BLOB`, `BYTEA`) column, borrowed.
    fn optional_bytes(&self, column: &'static str) -> Result<Option<&[u8]>, StoreError>;

    /// A text column holding an id of type `T`.
    fn id<T, E>(
        &self,
        column: &'static str,
        parse: fn(&str) -> Result<T, E>,
    ) -> Result<T, StoreError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        parse(self.text(column)?).map_err(StoreError::corrupt)
    }

    /// A millisecond time column.
    fn timestamp(&self, column: &'static str) -> Result<Timestamp, StoreError> {
        self.integer(column).map(Timestamp::from_unix_millis)
    }

    /// A nullable millisecond time column.
    fn optional_timestamp(&self, column: &'static str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .optional_integer(column)?
            .map(Timestamp::from_unix_millis))
    }

    /// A blob column of exactly `N` bytes.
    fn array<const N: usize>(&self, column: &'static str) -> Result<[u8; N], StoreError> {
        self.optional_array(column)?
            .ok_or_else(|| malformed(column))
    }

    /// A nullable blob column of exactly `N` bytes.
    fn optional_array<const N: usize>(
        &self,
        column: &'static str,
    ) -> Result<Option<[u8; N]>, StoreError> {
        self.optional_bytes(column)?
            .map(|bytes| <[u8; N]>::try_from(bytes).map_err(|_| malformed(column)))
            .transpose()
    }
}

impl<R> Columns for R
where
    R: Row,
    for<'i> &'i str: ColumnIndex<R>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> &'r [u8]: Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, column: &'static str) -> Result<&str, StoreError> {
        self.try_get(column).map_err(unavailable)
    }

    fn optional_text(&self, column: &'static str) -> Result<Option<String>, StoreError> {
        self.try_get(column).map_err(unavailable)
    }

    fn integer(&self, column: &'static str) -> Result<i64, StoreError> {
        self.try_get(column).map_err(unavailable)
    }

    fn optional_integer(&self, column: &'static str) -> Result<Option<i64>, StoreError> {
        self.try_get(column).map_err(unavailable)
    }

    fn boolean(&self, column: &'static str) -> Result<bool, StoreError> {
        self.try_get(column).map_err(unavailable)
    }

    fn optional_bytes(&self, column: &'static str) -> Result<Option<&[u8]>, StoreError> {
        self.try_get(column).map_err(unavailable)
    }
}

/// Binds records to a statement of either database, in the order of the column lists
/// ([`session_columns!`](super::session_columns), [`refresh_columns!`](super::refresh_columns)
/// and the `INSERT`s of the users, clients and keys).
pub(crate) trait Binds<'q>: Sized {
    /// `id, username_key, username, password_hash, created_at, roles, claims, disabled`.
    fn bind_user(self, username: &'q Username, record: &'q UserRecord) -> Self;
    /// The columns of [`session_columns!`](super::session_columns).
    fn bind_session(self, record: &'q SessionRecord) -> Self;
    /// The columns of [`refresh_columns!`](super::refresh_columns).
    fn bind_refresh(self, record: &'q RefreshRecord) -> Self;
    /// `id, name, secret_hash, created_at, admin`.
    fn bind_client(self, client: &'q ClientRecord) -> Self;
    /// `name, audience, scopes, max_ttl, sessions, created_at`.
    fn bind_service(self, service: &'q ServiceRecord) -> Self;
    /// `kid, algorithm, secret, created_at, activates_at, retired_at`.
    fn bind_key(self, key: &'q KeyRecord) -> Self;
    /// A failure of `key` at `now` under `rule`: the key, `now`, when a window opened now
    /// closes, and the window's length (milliseconds).
    fn bind_failure(self, key: &'q ThrottleKey, rule: ThrottleRule, now: Timestamp) -> Self;
    /// The columns of [`audit_columns!`](super::audit::audit_columns).
    fn bind_audit(self, event: &'q AuditEvent) -> Self;
    /// The parameters of [`audit::select`](super::audit::select): `after`, each field of
    /// `filter` that is set, `limit`.
    fn bind_audit_query(self, filter: &'q AuditFilter, after: i64, limit: i64) -> Self;
}

impl<'q, DB> Binds<'q> for Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
{
    fn bind_user(self, username: &'q Username, record: &'q UserRecord) -> Self {
        self.bind(record.user.id.as_str())
            .bind(username.key())
            .bind(record.user.username.as_str())
            .bind(record.password_hash.as_str())
            .bind(record.user.created_at.unix_millis())
            .bind(record.standing.roles.to_json())
            .bind(record.standing.claims.to_json())
            .bind(i64::from(record.standing.disabled))
    }

    fn bind_session(self, record: &'q SessionRecord) -> Self {
        self.bind(record.id.as_str())
            .bind(&record.verifier.as_bytes()[..])
            .bind(record.user_id.as_str())
            .bind(record.transport.as_str())
            .bind(record.created_at.unix_millis())
            .bind(record.last_seen_at.unix_millis())
            .bind(record.idle_expires_at.unix_millis())
            .bind(record.expires_at.unix_millis())
            .bind(record.ip.as_deref())
            .bind(record.user_agent.as_deref())
            .bind(record.revoked_at.map(Timestamp::unix_millis))
            .bind(record.auth_time.unix_millis())
            .bind(record.parent.as_ref().map(|parent| parent.id.as_str()))
            .bind(
                record
                    .parent
                    .as_ref()
                    .map(|parent| parent.audience.as_str()),
            )
    }

    fn bind_refresh(self, record: &'q RefreshRecord) -> Self {
        self.bind(&record.token_hash.as_bytes()[..])
            .bind(record.session_id.as_str())
            .bind(record.issued_at.unix_millis())
            .bind(record.expires_at.unix_millis())
            .bind(record.access_token_id.as_str())
            .bind(record.access_expires_at.unix_millis())
            .bind(record.spent_at.map(Timestamp::unix_millis))
            .bind(
                record
                    .successor_hash
                    .as_ref()
                    .map(|hash| &hash.as_bytes()[..]),
            )
    }

    fn bind_client(self, client: &'q ClientRecord) -> Self {
        self.bind(client.id.as_str())
            .bind(client.name.as_str())
            .bind(&client.secret_hash.as_bytes()[..])
            .bind(client.created_at.unix_millis())
            .bind(client.admin)
    }

    fn bind_service(self, service: &'q ServiceRecord) -> Self {
        self.bind(service.name.as_str())
            .bind(service.audience.as_str())
            .bind(scopes_json(&service.scopes))
            .bind(millis(service.max_ttl))
            .bind(service.sessions)
            .bind(service.created_at.unix_millis())
    }

    fn bind_key(self, key: &'q KeyRecord) -> Self {
        self.bind(key.kid.as_str())
            .bind(key.algorithm.as_str())
            .bind(key.secret.as_slice())
            .bind(key.created_at)
            .bind(key.activates_at)
            .bind(key.retired_at)
    }

    fn bind_failure(self, key: &'q ThrottleKey, rule: ThrottleRule, now: Timestamp) -> Self {
        self.bind(key.storage_key())
            .bind(now.unix_millis())
            .bind(now.saturating_add(rule.window).unix_millis())
            .bind(millis(rule.window))
    }

    fn bind_audit(self, event: &'q AuditEvent) -> Self {
        self.bind(event.at.unix_millis())
            .bind(event.kind.as_str())
            .bind(event.actor.kind())
            .bind(event.actor.id())
            .bind(event.user_id.as_ref().map(UserId::as_str))
            .bind(event.session_id.as_ref().map(SessionId::as_str))
            .bind(event.ip.as_deref())
            .bind(event.user_agent.as_deref())
            .bind(event.outcome.as_str())
            .bind(super::audit::detail_json(&event.detail))
    }

    fn bind_audit_query(self, filter: &'q AuditFilter, after: i64, limit: i64) -> Self {
        let mut query = self.bind(after);
        if let Some(user_id) = &filter.user_id {
            query = query.bind(user_id.as_str());
        }
        if let Some(kind) = filter.kind {
            query = query.bind(kind.as_str());
        }
        if let Some(since) = filter.since {
            query = query.bind(since.unix_millis());
        }
        if let Some(until) = filter.until {
            query = query.bind(until.unix_millis());
        }
        query.bind(limit)
    }
}

/// A row of [`user_columns!`](super::user_columns) from `users`.
pub(crate) fn user(row: &impl Columns) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        user: User {
            id: row.id("id", UserId::parse)?,
            username: row.text("username")?.to_owned(),
            created_at: row.timestamp("created_at")?,
        },
        password_hash: row.text("password_hash")?.to_owned(),
        standing: Standing {
            roles: Roles::from_json(row.text("roles")?).map_err(StoreError::corrupt)?,
            claims: CustomClaims::from_json(row.text("claims")?).map_err(StoreError::corrupt)?,
            disabled: match row.integer("disabled")? {
                0 => false,
                1 => true,
                _ => return Err(malformed("disabled")),
            },
        },
    })
}

/// A row of [`session_columns!`](super::session_columns) from `sessions`.
pub(crate) fn session(row: &impl Columns) -> Result<SessionRecord, StoreError> {
    let transport = row.text("transport")?;
    let created_at = row.timestamp("created_at")?;
    Ok(SessionRecord {
        id: row.id("id", SessionId::parse)?,
        verifier: SessionVerifier::from_bytes(row.array("verifier")?),
        user_id: row.id("user_id", UserId::parse)?,
        transport: Transport::parse(transport).ok_or_else(|| malformed("transport"))?,
        created_at,
        // Rows written before re-authentication existed (or by an older instance during a
        // rolling upgrade) have none: the password was last proven at login.
        auth_time: row.optional_timestamp("auth_time")?.unwrap_or(created_at),
        last_seen_at: row.timestamp("last_seen_at")?,
        idle_expires_at: row.timestamp("idle_expires_at")?,
        expires_at: row.timestamp("expires_at")?,
        ip: row.optional_text("ip")?,
        user_agent: row.optional_text("user_agent")?,
        revoked_at: row.optional_timestamp("revoked_at")?,
        parent: parent_session(row)?,
    })
}

/// The parent of a child session: `parent_id` and `parent_audience`, both set or both NULL
/// (the schema's CHECK says so; a row that breaks it is corrupt, not half a child).
fn parent_session(row: &impl Columns) -> Result<Option<ParentSession>, StoreError> {
    let id = row.optional_text("parent_id")?;
    let audience = row.optional_text("parent_audience")?;
    match (id, audience) {
        (Some(id), Some(audience)) => Ok(Some(ParentSession {
            id: SessionId::parse(&id).map_err(StoreError::corrupt)?,
            audience,
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(malformed("parent_audience")),
        (None, Some(_)) => Err(malformed("parent_id")),
    }
}

/// A row of [`refresh_columns!`](super::refresh_columns) from `refresh_tokens`.
pub(crate) fn refresh(row: &impl Columns) -> Result<RefreshRecord, StoreError> {
    Ok(RefreshRecord {
        token_hash: TokenHash::from_bytes(row.array("token_hash")?),
        session_id: row.id("session_id", SessionId::parse)?,
        issued_at: row.timestamp("issued_at")?,
        expires_at: row.timestamp("expires_at")?,
        access_token_id: row.text("access_token_id")?.to_owned(),
        access_expires_at: row.timestamp("access_expires_at")?,
        spent_at: row.optional_timestamp("spent_at")?,
        successor_hash: row
            .optional_array("successor_hash")?
            .map(TokenHash::from_bytes),
    })
}

/// A row of `sequence, session_id, user_id, revoked_at` from `revocations`; a NULL
/// `session_id` is a user entry.
pub(crate) fn revocation(row: &impl Columns) -> Result<Revocation, StoreError> {
    let kind = match row.optional_text("session_id")? {
        Some(id) => RevocationKind::Session(SessionId::parse(&id).map_err(StoreError::corrupt)?),
        None => RevocationKind::User,
    };
    Ok(Revocation {
        sequence: u64::try_from(row.integer("sequence")?).map_err(|_| malformed("sequence"))?,
        kind,
        user_id: row.id("user_id", UserId::parse)?,
        revoked_at: row.timestamp("revoked_at")?,
    })
}

/// A row of `id, name, secret_hash, created_at, admin` from `clients`.
pub(crate) fn client(row: &impl Columns) -> Result<ClientRecord, StoreError> {
    Ok(ClientRecord {
        id: row.text("id")?.to_owned(),
        name: row.text("name")?.to_owned(),
        secret_hash: TokenHash::from_bytes(row.array("secret_hash")?),
        created_at: row.timestamp("created_at")?,
        admin: row.boolean("admin")?,
    })
}

/// A row of `name, audience, scopes, max_ttl, sessions, created_at` from `services`.
pub(crate) fn service(row: &impl Columns) -> Result<ServiceRecord, StoreError> {
    let scopes: Vec<(String, Vec<String>)> =
        serde_json::from_str(row.text("scopes")?).map_err(|_| malformed("scopes"))?;
    let max_ttl = u64::try_from(row.integer("max_ttl")?).map_err(|_| malformed("max_ttl"))?;
    Ok(ServiceRecord {
        name: row.text("name")?.to_owned(),
        audience: row.text("audience")?.to_owned(),
        scopes: scopes
            .into_iter()
            .map(|(name, roles)| ServiceScope { name, roles })
            .collect(),
        max_ttl: Duration::from_millis(max_ttl),
        sessions: row.boolean("sessions")?,
        created_at: row.timestamp("created_at")?,
    })
}

/// A service's scopes as stored: a JSON array of `[scope, [role, ...]]` pairs.
fn scopes_json(scopes: &[ServiceScope]) -> String {
    let pairs: Vec<(&str, &[String])> = scopes
        .iter()
        .map(|scope| (scope.name.as_str(), scope.roles.as_slice()))
        .collect();
    // Strings and arrays of strings always serialize.
    serde_json::to_string(&pairs).unwrap_or_default()
}

/// A row of `kid, algorithm, secret, created_at, activates_at, retired_at` from
/// `signing_keys`. Key times are Unix seconds, as the trait has them.
pub(crate) fn key(row: &impl Columns) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        kid: row.text("kid")?.to_owned(),
        algorithm: row.text("algorithm")?.to_owned(),
        secret: row
            .optional_bytes("secret")?
            .ok_or_else(|| malformed("secret"))?
            .to_vec(),
        created_at: row.integer("created_at")?,
        activates_at: row.integer("activates_at")?,
        retired_at: row.optional_integer("retired_at")?,
    })
}

/// The failures counted for one key of `login_failures`, and when their window opened.
pub(crate) struct Failures {
    count: u32,
    opened_at: Timestamp,
}

impl Failures {
    /// How long the key must wait under `rule` at `now`; see [`window::blocked_for`].
    pub(crate) fn blocked_for(&self, rule: ThrottleRule, now: Timestamp) -> Option<Duration> {
        window::blocked_for(self.count, self.opened_at, rule, now)
    }
}

/// A row of `count, window_start` from `login_failures`.
pub(crate) fn failures(row: &impl Columns) -> Result<Failures, StoreError> {
    Ok(Failures {
        count: u32::try_from(row.integer("count")?).map_err(|_| malformed("count"))?,
        opened_at: row.timestamp("window_start")?,
    })
}
