//! A user's standing — roles, custom claims, disabled — and the user entries of the
//! revocation log that keep access tokens fresh.
//!
//! Access tokens carry roles and claims, and a verifier reads them without asking anyone.
//! So every change of standing appends a *user entry* to the revocation log: "access tokens
//! of user U issued before T are stale". It travels the same path as session revocations
//! (the log, the push hint, every instance's [`Engine::sync_revocations`], the feed and its
//! stream for services), and each verifier keeps the still-relevant entries in a map from
//! user to `stale_before`, checked with one map read per request. The client's next refresh
//! re-reads the user and gets a token with the new claims.

use serde_json::Value;

use super::Engine;
use crate::error::Error;
use crate::id::UserId;
use crate::store::stale_before;
use crate::time::Timestamp;
use crate::user::{CustomClaims, Role, Roles, Standing, UserRecord};

impl Engine {
    /// The user's roles, custom claims and disabled flag.
    pub async fn standing_of(&self, user_id: &UserId) -> Result<Standing, Error> {
        Ok(self.user_record(user_id).await?.standing)
    }

    /// Replaces the user's roles; their access tokens issued before now go stale.
    pub async fn set_roles(&self, user_id: &UserId, roles: Roles) -> Result<(), Error> {
        if !self.inner.stores.users.set_roles(user_id, &roles).await? {
            return Err(Error::UserNotFound);
        }
        tracing::info!(target: "tessera::audit", event = "roles_changed", user_id = %user_id, roles = %roles.to_json());
        self.mark_user_stale(user_id).await
    }

    /// Adds a role. `false` (and nothing changes, nothing goes stale) if the user had it.
    pub async fn add_role(&self, user_id: &UserId, role: Role) -> Result<bool, Error> {
        let mut roles = self.user_record(user_id).await?.standing.roles;
        if !roles.insert(role)? {
            return Ok(false);
        }
        self.set_roles(user_id, roles).await?;
        Ok(true)
    }

    /// Removes a role. `false` (and nothing changes) if the user did not have it.
    pub async fn remove_role(&self, user_id: &UserId, role: &Role) -> Result<bool, Error> {
        let mut roles = self.user_record(user_id).await?.standing.roles;
        if !roles.remove(role) {
            return Ok(false);
        }
        self.set_roles(user_id, roles).await?;
        Ok(true)
    }

    /// Replaces the user's custom claims; their access tokens issued before now go stale.
    pub async fn set_claims(&self, user_id: &UserId, claims: CustomClaims) -> Result<(), Error> {
        if !self.inner.stores.users.set_claims(user_id, &claims).await? {
            return Err(Error::UserNotFound);
        }
        tracing::info!(target: "tessera::audit", event = "claims_changed", user_id = %user_id);
        self.mark_user_stale(user_id).await
    }

    /// Sets one custom claim to a JSON value, within the rules of [`CustomClaims`].
    pub async fn set_claim(&self, user_id: &UserId, name: &str, value: Value) -> Result<(), Error> {
        let claims = self.user_record(user_id).await?.standing.claims;
        self.set_claims(user_id, claims.with(name, value)?).await
    }

    /// Removes one custom claim. `false` (and nothing changes) if it was not set.
    pub async fn unset_claim(&self, user_id: &UserId, name: &str) -> Result<bool, Error> {
        let claims = self.user_record(user_id).await?.standing.claims;
        let (claims, removed) = claims.without(name);
        if removed {
            self.set_claims(user_id, claims).await?;
        }
        Ok(removed)
    }

    /// Disables the account: logins are refused like bad credentials, refreshes fail, every
    /// session is revoked (every transport) and every access token goes stale. Returns how
    /// many sessions were revoked. Idempotent.
    pub async fn disable_user(&self, user_id: &UserId) -> Result<usize, Error> {
        if !self.inner.stores.users.set_disabled(user_id, true).await? {
            return Err(Error::UserNotFound);
        }
        let revoked = self
            .inner
            .stores
            .sessions
            .revoke_user_sessions(user_id, None, self.now())
            .await?;
        let count = revoked.len();
        self.revoked(revoked);
        tracing::info!(target: "tessera::audit", event = "user_disabled", user_id = %user_id, sessions_revoked = count);
        self.mark_user_stale(user_id).await?;
        Ok(count)
    }

    /// Enables a disabled account: its password works again. Idempotent.
    pub async fn enable_user(&self, user_id: &UserId) -> Result<(), Error> {
        if !self.inner.stores.users.set_disabled(user_id, false).await? {
            return Err(Error::UserNotFound);
        }
        tracing::info!(target: "tessera::audit", event = "user_enabled", user_id = %user_id);
        Ok(())
    }

    /// Makes every access token of the user issued before now stale, on every verifier: an
    /// entry in the revocation log, applied here at once. Call it after any change of the
    /// user's standing made outside this module — a password changed or reset — once the
    /// change is stored.
    ///
    /// Tokens this engine issues to the user afterwards carry an `iat` no earlier than the
    /// entry's [`stale_before`](crate::Revocation::stale_before): issuing waits for that
    /// second (at most one) rather than sign a token that is stale at birth.
    pub async fn mark_user_stale(&self, user_id: &UserId) -> Result<(), Error> {
        let now = self.now();
        self.inner
            .stores
            .sessions
            .mark_user_stale(user_id, now)
            .await?;
        self.remember_stale(user_id, stale_before(now));
        self.log_grew();
        tracing::info!(target: "tessera::audit", event = "tokens_stale", user_id = %user_id);
        Ok(())
    }

    /// True when an access token of `user_id` issued at `issued_at` (Unix seconds, its
    /// `iat`) predates a change of the user's standing. The hot path of every JWT check: one
    /// map read, no store.
    pub fn is_token_stale(&self, user_id: &UserId, issued_at: i64) -> bool {
        self.inner
            .stale_users
            .get(user_id)
            .is_some_and(|stale_before| issued_at < stale_before.unix_seconds())
    }

    /// Users with a user entry still remembered (for metrics and tests).
    pub fn stale_users(&self) -> usize {
        self.inner.stale_users.len()
    }

    /// Records a user entry: keeps the latest `stale_before` per user.
    pub(super) fn remember_stale(&self, user_id: &UserId, stale_before: Timestamp) {
        self.inner
            .stale_users
            .entry(user_id.clone())
            .and_modify(|known| *known = (*known).max(stale_before))
            .or_insert(stale_before);
    }

    /// The `iat` for a token signed beside the engine (token exchange) for `user_id` at
    /// `issued_at`: see `issue_time` — never before the user's latest standing change.
    pub async fn token_issue_time(&self, user_id: &UserId, issued_at: Timestamp) -> Timestamp {
        self.issue_time(user_id, issued_at).await
    }

    /// The `iat` of a new access token for `user_id` that would say `issued_at`: that, or
    /// the user's `stale_before` if it is later — after waiting until then (less than a
    /// second), so no token claims to be issued in the future.
    pub(super) async fn issue_time(&self, user_id: &UserId, issued_at: Timestamp) -> Timestamp {
        let stale_before = self.inner.stale_users.get(user_id).map(|entry| *entry);
        let Some(stale_before) = stale_before.filter(|stale_before| *stale_before > issued_at)
        else {
            return issued_at;
        };
        let now = self.now();
        if stale_before > now {
            tokio::time::sleep(stale_before.duration_since(now)).await;
        }
        stale_before
    }

    /// The user's stored record, or [`Error::UserNotFound`].
    pub(super) async fn user_record(&self, user_id: &UserId) -> Result<UserRecord, Error> {
        self.inner
            .stores
            .users
            .user_by_id(user_id)
            .await?
            .ok_or(Error::UserNotFound)
    }
}
