//! Revoked sessions, and users whose tokens went stale, followed from Tessera's feed: the server-sent-events stream for push,
//! with `Last-Event-ID` resume, and a snapshot from the cursor on every (re)connect and every
//! `poll_interval`, so nothing is missed across a disconnect. Every successful read confirms
//! the set as current; [`Freshness`] says how long ago that was.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use serde::Deserialize;

use crate::auth::Shared;
use crate::error::FetchError;

/// Revoked session ids and stale users until their `remember_until`, and the feed position.
#[derive(Debug, Default)]
pub(crate) struct Revocations {
    /// `sid` → `remember_until`, unix seconds.
    by_session: DashMap<String, i64>,
    /// `sub` → the latest `stale_before` and its `remember_until`, unix seconds.
    stale_users: DashMap<String, StaleUser>,
    /// The last sequence applied.
    cursor: AtomicU64,
}

/// A user whose tokens issued before `stale_before` are refused.
#[derive(Debug, Clone, Copy)]
struct StaleUser {
    stale_before: i64,
    remember_until: i64,
}

impl Revocations {
    /// True when `session_id` was revoked (and is still remembered).
    pub(crate) fn contains(&self, session_id: &str) -> bool {
        self.by_session.contains_key(session_id)
    }

    /// True when a token of `subject` issued at `issued_at` (unix seconds) predates a
    /// change of the user's standing.
    pub(crate) fn is_stale(&self, subject: &str, issued_at: i64) -> bool {
        self.stale_users
            .get(subject)
            .is_some_and(|user| issued_at < user.stale_before)
    }

    /// Entries remembered now.
    pub(crate) fn len(&self) -> usize {
        self.by_session.len()
    }

    pub(crate) fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::Acquire)
    }

    /// Drops entries whose `remember_until` has passed: every token that could carry their
    /// `sid` has expired, so the verifier's `exp` check refuses it anyway.
    pub(crate) fn sweep(&self, now: i64) {
        self.by_session
            .retain(|_, remember_until| now <= *remember_until);
        self.stale_users
            .retain(|_, user| now <= user.remember_until);
    }

    fn apply(&self, entry: Entry) -> Result<(), FetchError> {
        let remember_until = unix_seconds(humantime::parse_rfc3339(&entry.remember_until)?);
        match (
            entry.kind.as_deref(),
            entry.sid,
            entry.user_id,
            entry.stale_before,
        ) {
            // Servers before user entries send no `kind`: every entry is a session.
            (None | Some("session"), Some(sid), _, _) => {
                self.by_session
                    .entry(sid)
                    .and_modify(|until| *until = (*until).max(remember_until))
                    .or_insert(remember_until);
            }
            (Some("user"), _, Some(user_id), Some(stale_before)) => {
                let stale_before = unix_seconds(humantime::parse_rfc3339(&stale_before)?);
                let user = StaleUser {
                    stale_before,
                    remember_until,
                };
                self.stale_users
                    .entry(user_id)
                    .and_modify(|known| {
                        known.stale_before = known.stale_before.max(stale_before);
                        known.remember_until = known.remember_until.max(remember_until);
                    })
                    .or_insert(user);
            }
            (None | Some("session"), None, _, _) => {
                return Err(FetchError::Entry("a session entry without `sid`"));
            }
            (Some("user"), _, _, _) => {
                return Err(FetchError::Entry(
                    "a user entry without `user_id` or `stale_before`",
                ));
            }
            (Some(_), _, _, _) => return Err(FetchError::Entry("an unknown kind")),
        }
        self.cursor.fetch_max(entry.sequence, Ordering::AcqRel);
        Ok(())
    }
}

/// When the revocation set was last confirmed current.
#[derive(Debug)]
pub(crate) struct Freshness {
    origin: Instant,
    /// Milliseconds since `origin` of the latest confirmation.
    confirmed_ms: AtomicU64,
}

impl Freshness {
    pub(crate) fn new() -> Freshness {
        Freshness {
            origin: Instant::now(),
            confirmed_ms: AtomicU64::new(0),
        }
    }

    /// Records that the set was current at `at`.
    pub(crate) fn confirm(&self, at: Instant) {
        let millis = u64::try_from(at.saturating_duration_since(self.origin).as_millis())
            .unwrap_or(u64::MAX);
        self.confirmed_ms.fetch_max(millis, Ordering::AcqRel);
    }

    /// How long ago the set was last confirmed current.
    pub(crate) fn staleness(&self) -> Duration {
        let confirmed = Duration::from_millis(self.confirmed_ms.load(Ordering::Acquire));
        self.origin.elapsed().saturating_sub(confirmed)
    }
}

/// One entry of `GET /v1/revocations` and one `revocation` event of the stream.
#[derive(Debug, Deserialize)]
struct Entry {
    sequence: u64,
    /// `session` or `user`; absent from servers that predate user entries.
    kind: Option<String>,
    sid: Option<String>,
    user_id: Option<String>,
    stale_before: Option<String>,
    remember_until: String,
}

/// `GET /v1/revocations`.
#[derive(Debug, Deserialize)]
struct Snapshot {
    revocations: Vec<Entry>,
    cursor: u64,
}

/// Largest page the feed serves.
const PAGE: usize = 1000;
/// First wait before reconnecting; doubled per failure up to [`RECONNECT_MAX`].
const RECONNECT_MIN: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// Reads every revocation after the cursor, page by page, and confirms the set current as of
/// the moment the first page was asked for.
pub(crate) async fn snapshot(shared: &Shared) -> Result<(), FetchError> {
    let asked_at = Instant::now();
    loop {
        let url = format!(
            "{}?after={}&limit={PAGE}",
            shared.endpoints.revocations,
            shared.revocations.cursor()
        );
        let page: Snapshot = shared.tessera.json(&url, true).await?;
        let full = page.revocations.len() >= PAGE;
        for entry in page.revocations {
            shared.revocations.apply(entry)?;
        }
        shared
            .revocations
            .cursor
            .fetch_max(page.cursor, Ordering::AcqRel);
        if !full {
            shared.freshness.confirm(asked_at);
            return Ok(());
        }
    }
}

/// Follows the feed until aborted: snapshot, stream, and on any failure wait and do both
/// again.
pub(crate) async fn follow(shared: Arc<Shared>) {
    let mut wait = RECONNECT_MIN;
    loop {
        match follow_once(&shared, &mut wait).await {
            Ok(()) => tracing::info!("revocation stream ended; reconnecting"),
            Err(error) => tracing::warn!(%error, "revocation feed unavailable; reconnecting"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

async fn follow_once(shared: &Arc<Shared>, wait: &mut Duration) -> Result<(), FetchError> {
    snapshot(shared).await?;
    let stream_url = &shared.endpoints.revocation_stream;
    let failed = |source| FetchError::Http {
        url: stream_url.clone(),
        source,
    };
    let request = shared.tessera.http.get(stream_url);
    let response = shared
        .tessera
        .credentials
        .apply(request)
        .header("accept", "text/event-stream")
        .header("last-event-id", shared.revocations.cursor().to_string())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(failed)?;
    *wait = RECONNECT_MIN;
    let freshness = Arc::clone(shared);
    // Any bytes, keep-alive comments included, show the stream is live and caught up.
    let mut events = response
        .bytes_stream()
        .inspect(move |chunk| {
            if chunk.is_ok() {
                freshness.freshness.confirm(Instant::now());
            }
        })
        .eventsource();
    let mut poll = tokio::time::interval(shared.options.poll_interval);
    poll.tick().await;
    loop {
        tokio::select! {
            event = tokio::time::timeout(shared.options.stream_idle_timeout, events.next()) => {
                let event = match event {
                    Err(_idle) => return Err(FetchError::Stream("no bytes within the idle timeout".into())),
                    Ok(None) => return Ok(()),
                    Ok(Some(Err(error))) => return Err(FetchError::Stream(Box::new(error))),
                    Ok(Some(Ok(event))) => event,
                };
                if event.event != "revocation" {
                    continue;
                }
                let entry: Entry = serde_json::from_str(&event.data).map_err(|source| {
                    FetchError::Document { url: stream_url.clone(), source }
                })?;
                shared.revocations.apply(entry)?;
            }
            _ = poll.tick() => {
                snapshot(shared).await?;
                shared.revocations.sweep(now_unix());
            }
        }
    }
}

/// Unix seconds now.
pub(crate) fn now_unix() -> i64 {
    unix_seconds(SystemTime::now())
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |secs| -secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: &str) -> Entry {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn session_entries_revoke_their_sid_with_or_without_a_kind() {
        let revocations = Revocations::default();
        revocations
            .apply(entry(
                r#"{"sequence":1,"sid":"old","revoked_at":"2026-01-01T00:00:00Z","remember_until":"2026-01-01T00:05:30Z"}"#,
            ))
            .unwrap();
        revocations
            .apply(entry(
                r#"{"sequence":2,"kind":"session","sid":"new","user_id":"u","revoked_at":"2026-01-01T00:00:00Z","remember_until":"2026-01-01T00:05:30Z"}"#,
            ))
            .unwrap();
        assert!(revocations.contains("old") && revocations.contains("new"));
        assert!(
            !revocations.is_stale("u", 0),
            "a session entry stales no user"
        );
        assert_eq!(revocations.cursor(), 2);
    }

    #[test]
    fn user_entries_make_earlier_tokens_of_that_user_stale_until_remembered() {
        let revocations = Revocations::default();
        // 2026-01-01T00:00:01Z is 1767225601.
        revocations
            .apply(entry(
                r#"{"sequence":7,"kind":"user","user_id":"u","revoked_at":"2026-01-01T00:00:00.400Z","stale_before":"2026-01-01T00:00:01Z","remember_until":"2026-01-01T00:05:31Z"}"#,
            ))
            .unwrap();
        assert!(revocations.is_stale("u", 1_767_225_600));
        assert!(
            !revocations.is_stale("u", 1_767_225_601),
            "issued at stale_before"
        );
        assert!(!revocations.is_stale("someone-else", 0));
        assert_eq!(revocations.cursor(), 7);
        revocations.sweep(1_767_225_931);
        assert!(revocations.is_stale("u", 1_767_225_600), "still remembered");
        revocations.sweep(1_767_225_932);
        assert!(
            !revocations.is_stale("u", 1_767_225_600),
            "forgotten once tokens expired"
        );
    }

    #[test]
    fn entries_that_cannot_be_acted_on_fail_the_read() {
        let revocations = Revocations::default();
        for bad in [
            r#"{"sequence":1,"kind":"group","user_id":"u","remember_until":"2026-01-01T00:00:00Z"}"#,
            r#"{"sequence":1,"kind":"user","user_id":"u","remember_until":"2026-01-01T00:00:00Z"}"#,
            r#"{"sequence":1,"kind":"session","remember_until":"2026-01-01T00:00:00Z"}"#,
        ] {
            assert!(revocations.apply(entry(bad)).is_err(), "{bad}");
        }
        assert_eq!(revocations.cursor(), 0, "nothing applied moves the cursor");
    }
}
