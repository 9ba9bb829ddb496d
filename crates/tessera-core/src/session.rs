//! The session record and the policy that bounds its life.

use std::fmt;
use std::time::Duration;

use crate::id::{SessionId, SessionVerifier, UserId};
use crate::time::Timestamp;

/// How the client received its session at login.
///
/// Whatever it is, the same record backs it: one revoke ends every credential of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// An opaque token in a `__Host-` HttpOnly cookie (browsers).
    Cookie,
    /// Tokens handed over in the response body (native apps, scripts, services).
    Token,
}

impl Transport {
    /// The wire name: `"cookie"` or `"token"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Cookie => "cookie",
            Transport::Token => "token",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "cookie" => Some(Transport::Cookie),
            "token" => Some(Transport::Token),
            _ => None,
        }
    }
}

/// One login: everything the server knows about a session.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Public identifier.
    pub id: SessionId,
    /// The check on the secret part of the session token; the token itself is never stored.
    pub verifier: SessionVerifier,
    /// Whose session it is.
    pub user_id: UserId,
    /// How the client received it.
    pub transport: Transport,
    /// When the login happened.
    pub created_at: Timestamp,
    /// When the user last proved their password for this session: at login, and again at
    /// every re-authentication (OIDC's `auth_time`). Never before `created_at`; records
    /// written before it existed read it as their `created_at`.
    pub auth_time: Timestamp,
    /// The last request seen, as last persisted (see [`SessionPolicy::touch_interval`]).
    pub last_seen_at: Timestamp,
    /// When the session ends if no request arrives: `last_seen_at + idle_timeout`, never later
    /// than `expires_at`.
    pub idle_expires_at: Timestamp,
    /// When the session ends regardless of activity.
    pub expires_at: Timestamp,
    /// The client address at login.
    pub ip: Option<String>,
    /// The client's `User-Agent` at login, truncated.
    pub user_agent: Option<String>,
    /// When the session was revoked; `None` while it is live.
    pub revoked_at: Option<Timestamp>,
    /// Set for a child session: one that a registered service obtained for its own use by
    /// token exchange (see [`ParentSession`]). `None` for a session created by a login.
    pub parent: Option<ParentSession>,
}

/// What makes a session a *child session*: a session a stateful downstream service obtained
/// by exchanging the user's access token (RFC 8693), for its own cookie on its own host.
///
/// A child belongs to the same user as its parent, never outlives the parent's absolute
/// expiry, and ends whenever the parent ends (logout, "log out everywhere", refresh-token
/// theft, an administrator); ending the child leaves the parent alone. Only introspection by
/// that service's audience accepts it: it is not a credential for Tessera's own endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentSession {
    /// The session it was exchanged from.
    pub id: SessionId,
    /// The audience of the registered service it belongs to.
    pub audience: String,
}

impl SessionRecord {
    /// Whether the session is usable at `now`: not revoked, neither idle nor absolute expiry
    /// reached.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.idle_expires_at && now < self.expires_at
    }
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("transport", &self.transport)
            .field("created_at", &self.created_at)
            .field("auth_time", &self.auth_time)
            .field("last_seen_at", &self.last_seen_at)
            .field("idle_expires_at", &self.idle_expires_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .field("parent", &self.parent)
            .finish_non_exhaustive()
    }
}

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session with no request for this long ends. Defaults to `30m`.
    pub idle_timeout: Duration,
    /// A session ends this long after login, whatever its activity. Defaults to `12h`.
    pub absolute_timeout: Duration,
    /// The idle extension is written to the store at most once per this interval per session;
    /// requests in between extend the session in memory only. Defaults to a tenth of
    /// `idle_timeout`, at most `60s`.
    pub touch_interval: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy::new(
            Duration::from_secs(30 * 60),
            Duration::from_secs(12 * 60 * 60),
        )
    }
}

impl SessionPolicy {
    /// A policy with the given timeouts and the default touch interval.
    pub fn new(idle_timeout: Duration, absolute_timeout: Duration) -> Self {
        SessionPolicy {
            idle_timeout,
            absolute_timeout,
            touch_interval: (idle_timeout / 10).min(Duration::from_secs(60)),
        }
    }

    /// The idle expiry of a session last seen at `seen`, capped by its absolute expiry.
    pub fn idle_expiry(&self, seen: Timestamp, expires_at: Timestamp) -> Timestamp {
        seen.saturating_add(self.idle_timeout).min(expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_matches_the_documented_values() {
        let policy = SessionPolicy::default();
        assert_eq!(policy.idle_timeout, Duration::from_secs(1800));
        assert_eq!(policy.absolute_timeout, Duration::from_secs(43_200));
        assert_eq!(policy.touch_interval, Duration::from_secs(60));
        let short = SessionPolicy::new(Duration::from_secs(2), Duration::from_secs(5));
        assert_eq!(short.touch_interval, Duration::from_millis(200));
    }

    #[test]
    fn idle_expiry_never_passes_the_absolute_expiry() {
        let policy = SessionPolicy::default();
        let seen = Timestamp::from_unix_millis(1_000_000);
        let far = Timestamp::from_unix_millis(i64::MAX);
        assert_eq!(
            policy.idle_expiry(seen, far).unix_millis(),
            1_000_000 + 1_800_000
        );
        let soon = Timestamp::from_unix_millis(1_000_500);
        assert_eq!(policy.idle_expiry(seen, soon), soon);
    }

    fn record(idle_expires_at: Timestamp, expires_at: Timestamp) -> SessionRecord {
        let token = crate::id::SessionToken::generate().unwrap();
        let created_at = Timestamp::from_unix_millis(1_000_000);
        SessionRecord {
            id: token.session_id(),
            verifier: token.verifier(),
            user_id: UserId::generate().unwrap(),
            transport: Transport::Token,
            created_at,
            auth_time: created_at,
            last_seen_at: created_at,
            idle_expires_at,
            expires_at,
            ip: Some("192.0.2.7".into()),
            user_agent: None,
            revoked_at: None,
            parent: None,
        }
    }

    #[test]
    fn a_session_is_live_until_the_first_of_its_expiries_or_its_revocation() {
        let at = Timestamp::from_unix_millis;
        // Idle expiry first, then absolute expiry first: each ends it at exactly its time.
        for (idle, absolute) in [(2_000_000, 3_000_000), (3_000_000, 2_000_000)] {
            let session = record(at(idle), at(absolute));
            assert!(session.is_live(at(1_000_000)));
            assert!(session.is_live(at(1_999_999)));
            assert!(!session.is_live(at(2_000_000)));
            assert!(!session.is_live(at(2_500_000)));
        }
        let mut revoked = record(at(2_000_000), at(3_000_000));
        revoked.revoked_at = Some(at(1_500_000));
        assert!(!revoked.is_live(at(1_000_000)), "revoked is never live");
    }

    #[test]
    fn debug_output_names_the_session_but_never_its_secret_part() {
        let token = crate::id::SessionToken::generate().unwrap();
        let mut session = record(Timestamp::EPOCH, Timestamp::EPOCH);
        session.id = token.session_id();
        session.verifier = token.verifier();
        let shown = format!("{session:?}");
        assert!(shown.starts_with("SessionRecord {"), "{shown}");
        assert!(shown.contains(session.id.as_str()), "{shown}");
        assert!(shown.contains(session.user_id.as_str()), "{shown}");
        assert!(!shown.contains("verifier"), "{shown}");
        assert!(!shown.contains(&token.encode()), "{shown}");
    }

    #[test]
    fn transport_names_round_trip() {
        for transport in [Transport::Cookie, Transport::Token] {
            assert_eq!(Transport::parse(transport.as_str()), Some(transport));
        }
        assert_eq!(Transport::parse("Cookie"), None);
    }
}
