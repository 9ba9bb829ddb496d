//! The records and instants the cases build, exported so a backend's own tests build theirs
//! the same way instead of writing them again.

use std::time::Duration;

use tessera_core::{
    ClientRecord, KeyRecord, ParentSession, RefreshRecord, RefreshToken, ServiceRecord,
    ServiceScope, SessionId, SessionRecord, SessionToken, Standing, Timestamp, TokenHash,
    Transport, User, UserId, UserRecord, Username,
};

/// The instant the cases' times are measured from (2023-11-14T22:13:20Z).
pub const BASE: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

/// A second, in the milliseconds [`at`] takes.
pub const SECOND: i64 = 1_000;
/// A minute, in the milliseconds [`at`] takes.
pub const MINUTE: i64 = 60 * SECOND;

/// [`BASE`] in Unix seconds, the unit key times are in.
pub const BASE_SECONDS: i64 = BASE.unix_millis() / 1_000;

/// `millis` after [`BASE`].
pub fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(BASE.unix_millis() + millis)
}

/// `n` minutes.
pub fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

/// A user named `name` (which must be a valid username) created at `created_at`, with a
/// fresh id and a made-up password hash, and the username it is stored under.
pub fn new_user(name: &str, created_at: Timestamp) -> (Username, UserRecord) {
    let username = Username::parse(name).unwrap();
    let record = UserRecord {
        user: User {
            id: UserId::generate().unwrap(),
            username: name.to_owned(),
            created_at,
        },
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt-of-{name}$hash"),
        standing: Standing::default(),
    };
    (username, record)
}

/// A live session of `user_id` created at `created_at` for a fresh token: idle for 30
/// minutes, at most 12 hours.
pub fn new_session(user_id: &UserId, created_at: Timestamp) -> SessionRecord {
    session_for_token(&SessionToken::generate().unwrap(), user_id, created_at)
}

/// [`new_session`] for `token`: its id and verifier, never its secret.
pub fn session_for_token(
    token: &SessionToken,
    user_id: &UserId,
    created_at: Timestamp,
) -> SessionRecord {
    SessionRecord {
        id: token.session_id(),
        verifier: token.verifier(),
        user_id: user_id.clone(),
        transport: Transport::Cookie,
        created_at,
        auth_time: created_at,
        last_seen_at: created_at,
        idle_expires_at: created_at.saturating_add(minutes(30)),
        expires_at: created_at.saturating_add(minutes(12 * 60)),
        ip: Some("192.0.2.7".to_owned()),
        user_agent: Some("conformance/1.0".to_owned()),
        revoked_at: None,
        parent: None,
    }
}

/// A session with explicit expiries.
pub fn session_ending(
    user_id: &UserId,
    created_at: Timestamp,
    idle_expires_at: Timestamp,
    expires_at: Timestamp,
) -> SessionRecord {
    SessionRecord {
        idle_expires_at,
        expires_at,
        ..new_session(user_id, created_at)
    }
}

/// A child session of `parent` for the service of `audience`, created at `created_at` for a
/// fresh token: `parent`'s user, authenticated when `parent` was, never past its absolute
/// expiry, with an address and user agent of its own (the service's client's).
pub fn child_session(
    parent: &SessionRecord,
    audience: &str,
    created_at: Timestamp,
) -> SessionRecord {
    let fresh = new_session(&parent.user_id, created_at);
    SessionRecord {
        transport: Transport::Token,
        auth_time: parent.auth_time,
        expires_at: fresh.expires_at.min(parent.expires_at),
        ip: Some("2001:db8::7".to_owned()),
        user_agent: Some("orders-service/2.1".to_owned()),
        parent: Some(ParentSession {
            id: parent.id.clone(),
            audience: audience.to_owned(),
        }),
        ..fresh
    }
}

/// The ids of `records`, in order.
pub fn ids(records: &[SessionRecord]) -> Vec<SessionId> {
    records.iter().map(|record| record.id.clone()).collect()
}

/// A fresh session id.
pub fn new_session_id() -> SessionId {
    SessionId::generate().unwrap()
}

/// An unspent refresh token of `session_id` issued at `issued_at` for a fresh token: accepted
/// for a day, its access token for 15 minutes.
pub fn new_refresh(session_id: &SessionId, issued_at: Timestamp) -> RefreshRecord {
    refresh_for_token(&RefreshToken::generate().unwrap(), session_id, issued_at)
}

/// [`new_refresh`] for `token`: keyed by its hash, never the token.
pub fn refresh_for_token(
    token: &RefreshToken,
    session_id: &SessionId,
    issued_at: Timestamp,
) -> RefreshRecord {
    RefreshRecord {
        token_hash: token.hash(),
        session_id: session_id.clone(),
        issued_at,
        expires_at: issued_at.saturating_add(minutes(24 * 60)),
        access_token_id: format!("jti-{}", SessionId::generate().unwrap().as_str()),
        access_expires_at: issued_at.saturating_add(minutes(15)),
        spent_at: None,
        successor_hash: None,
    }
}

/// `record` as stored once spent at `spent_at` in favour of `successor`.
pub fn spent(
    record: &RefreshRecord,
    spent_at: Timestamp,
    successor: &RefreshRecord,
) -> RefreshRecord {
    RefreshRecord {
        spent_at: Some(spent_at),
        successor_hash: Some(successor.token_hash),
        ..record.clone()
    }
}

/// A client whose secret hash is derived from `id`, with bytes text would mangle (NUL, 0xff).
pub fn new_client(id: &str, name: &str, created_at: Timestamp) -> ClientRecord {
    let mut secret_hash = [0xff; 32];
    secret_hash[0] = 0x00;
    for (byte, id_byte) in secret_hash[1..].iter_mut().zip(id.bytes()) {
        *byte = id_byte;
    }
    ClientRecord {
        id: id.to_owned(),
        name: name.to_owned(),
        secret_hash: TokenHash::from_bytes(secret_hash),
        created_at,
        admin: false,
    }
}

/// A service named `name` for `audience`, registered at `created_at`: two scopes in an order
/// no sort would give (one any user may receive, one that needs a role), a token lifetime
/// that is not a whole second, and no child sessions.
pub fn new_service(name: &str, audience: &str, created_at: Timestamp) -> ServiceRecord {
    ServiceRecord {
        name: name.to_owned(),
        audience: audience.to_owned(),
        scopes: vec![
            ServiceScope {
                name: "orders:write".to_owned(),
                roles: vec!["clerk".to_owned(), "admin".to_owned()],
            },
            ServiceScope {
                name: "orders:read".to_owned(),
                roles: Vec::new(),
            },
        ],
        max_ttl: Duration::from_millis(300_250),
        sessions: false,
        created_at,
    }
}

/// An unretired key created `created_after` seconds after [`BASE`], signing a minute later.
/// Its secret holds bytes text would mangle (NUL, invalid UTF-8).
pub fn new_key(kid: &str, created_after: i64) -> KeyRecord {
    let mut secret = vec![0x00, 0xff, 0xfe, 0x80];
    secret.extend_from_slice(kid.as_bytes());
    KeyRecord {
        kid: kid.to_owned(),
        algorithm: "EdDSA".to_owned(),
        secret,
        created_at: BASE_SECONDS + created_after,
        activates_at: BASE_SECONDS + created_after + 60,
        retired_at: None,
    }
}

/// `key` as stored once retired `retired_after` seconds after [`BASE`].
pub fn retired(key: KeyRecord, retired_after: i64) -> KeyRecord {
    KeyRecord {
        retired_at: Some(BASE_SECONDS + retired_after),
        ..key
    }
}
