//! The audit trail: who is acting, recording events, querying and purging them.
//!
//! The engine records the events it can see — logins, logouts, revocations, refresh reuse,
//! accounts, clients — through the audit store it was built with
//! ([`Engine::with_audit_trail`]). A change a SQL store makes in a transaction carries its
//! event into that transaction (the stores' `*_audited` methods); the other events are
//! appended once the change has happened, and never for a change that failed or changed
//! nothing. A failure to append after the change is logged, not returned: the change is done
//! and the caller is told the truth about it.

use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use crate::audit::{Actor, AuditContext, AuditEvent, AuditFilter, AuditKind, AuditRecord, Audited};
use crate::error::Error;
use crate::store::StoreError;
use crate::throttle::ThrottleKey;
use crate::time::Timestamp;

/// At most one `login_throttled` event per throttle key, per instance, in this long.
const THROTTLE_RECORD_INTERVAL: Duration = Duration::from_secs(60);

impl Engine {
    /// This engine acting in `context`: the events the returned handle records carry its
    /// actor, address and user agent. Cheap (one allocation); the handle shares everything
    /// else with `self`.
    ///
    /// The server makes one per request that changes something; the CLI one for its whole
    /// run ([`AuditContext::cli`]). Methods that act for a signed-in user on their own
    /// account or sessions (logout, revoking one's own sessions) record that user as the
    /// actor whatever the context says.
    pub fn with_context(&self, context: AuditContext) -> Engine {
        Engine {
            inner: Arc::clone(&self.inner),
            context: Some(Arc::new(context)),
        }
    }

    /// A new event of `kind` at the engine's current time, with this handle's context: its
    /// actor ([`Actor::Anonymous`] when none is set), address and user agent. Add the subject
    /// and the detail, then [`record_audit`](Engine::record_audit) it.
    pub fn audit_event(&self, kind: AuditKind) -> AuditEvent {
        let event = AuditEvent::new(kind, self.now(), Actor::Anonymous);
        match self.context.as_deref() {
            Some(context) => AuditEvent {
                actor: context.actor.clone().unwrap_or(Actor::Anonymous),
                ip: context.ip.map(|ip| ip.to_canonical().to_string()),
                user_agent: context.user_agent.clone(),
                ..event
            },
            None => event,
        }
    }

    /// Appends `event` to the audit trail, for events that are not part of a store change
    /// (a login, a refused refresh) or whose change has already happened. A failure is
    /// logged, not returned. Does nothing without an audit trail.
    pub async fn record_audit(&self, event: AuditEvent) {
        let Some(audit) = &self.inner.audit else {
            return;
        };
        if let Err(error) = audit.append(&event).await {
            tracing::error!(
                target: "tessera::audit",
                event = event.kind.as_str(),
                actor = %event.actor,
                user_id = event.user_id.as_ref().map(tracing::field::display),
                session_id = event.session_id.as_ref().map(tracing::field::display),
                %error,
                "could not append to the audit trail",
            );
        }
    }

    /// Events matching `filter` after the cursor `after` (an event id; `0` for the start),
    /// oldest first, at most `limit`. The last id returned is the next page's cursor; pages
    /// neither skip nor repeat an event while others are appended. Empty without an audit
    /// trail.
    pub async fn audit_events(
        &self,
        filter: &AuditFilter,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, Error> {
        match &self.inner.audit {
            Some(audit) => Ok(audit.query(filter, after, limit).await?),
            None => Ok(Vec::new()),
        }
    }

    /// Deletes audit events older than `retention`, in batches, yielding between them.
    /// Returns how many went.
    pub async fn purge_audit(&self, retention: Duration) -> Result<u64, StoreError> {
        const BATCH: usize = 500;
        let now = self.now();
        let recorded_before = now.saturating_sub(THROTTLE_RECORD_INTERVAL);
        self.inner
            .throttle_recorded
            .retain(|_, at| *at >= recorded_before);
        let Some(audit) = &self.inner.audit else {
            return Ok(0);
        };
        let before = now.saturating_sub(retention);
        let mut total = 0;
        loop {
            let removed = audit.purge_before(before, BATCH).await?;
            total += removed;
            if removed < BATCH as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Whether this engine records to an audit trail (and so asks stores for the
    /// `*_audited` form of a change).
    pub(super) fn audits(&self) -> bool {
        self.inner.audit.is_some()
    }

    /// After an audited store change: appends `event` unless the store wrote it with the
    /// change, and only if `happened` (the change did something). Returns the change's
    /// value.
    pub(super) async fn settle<T>(
        &self,
        change: Audited<T>,
        happened: impl FnOnce(&T) -> bool,
        event: AuditEvent,
    ) -> T {
        if !change.recorded && happened(&change.value) {
            self.record_audit(event).await;
        }
        change.value
    }

    /// Whether a throttled login refused by `key` at `now` should be recorded: the first
    /// in [`THROTTLE_RECORD_INTERVAL`] for that key.
    pub(super) fn throttle_worth_recording(&self, key: &ThrottleKey, now: Timestamp) -> bool {
        let mut recorded = false;
        self.inner
            .throttle_recorded
            .entry(key.clone())
            .and_modify(|at| {
                if now.duration_since(*at) >= THROTTLE_RECORD_INTERVAL {
                    *at = now;
                    recorded = true;
                }
            })
            .or_insert_with(|| {
                recorded = true;
                now
            });
        recorded
    }
}
