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
use crate::audit::AuditKind;
use crate::error::Error;
use crate::id::UserId;
use crate::store::stale_before;
use crate::time::Timestamp;
use crate::user::{CustomClaims, Role, Roles, Standing, StandingRejection, User, UserRecord};

/// How often [`Engine::add_role`] and [`Engine::remove_role`] read and try again after
/// another change of the same user's roles landed first. Each lost try is someone else's
/// change done, so only a storm of changes to one user's roles runs out of tries.
const ROLE_CHANGE_TRIES: usize = 64;

/// A change of a user's standing, as an administrator asks for it: each part given replaces
/// the user's, the parts left `None` stay as they are. Roles and claims are typed, so a
/// change that exists has passed their rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StandingChange {
    /// The new set of roles.
    pub roles: Option<Roles>,
    /// The new custom claims (the whole object).
    pub claims: Option<CustomClaims>,
    /// Disable (`true`) or enable (`false`) the account.
    pub disabled: Option<bool>,
}

impl Engine {
    /// The user's roles, custom claims and disabled flag.
    pub async fn standing_of(&self, user_id: &UserId) -> Result<Standing, Error> {
        Ok(self.user_record(user_id).await?.standing)
    }

    /// The account with this id and its standing, from one read.
    pub async fn user_with_standing(&self, user_id: &UserId) -> Result<(User, Standing), Error> {
        let record = self.user_record(user_id).await?;
        Ok((record.user, record.standing))
    }

    /// Replaces the user's roles; their access tokens issued before now go stale. Records
    /// `roles_changed` (actor from the context).
    pub async fn set_roles(&self, user_id: &UserId, roles: Roles) -> Result<(), Error> {
        if !self.inner.stores.users.set_roles(user_id, &roles).await? {
            return Err(Error::UserNotFound);
        }
        self.roles_changed(user_id, &roles).await;
        self.mark_user_stale(user_id).await
    }

    /// Adds a role. `false` (and nothing changes, nothing goes stale) if the user had it.
    ///
    /// Concurrent role changes of one user, here or on other instances, all land: the new
    /// set is stored only if the roles are still those it was computed from
    /// ([`UserStore::swap_roles`](crate::UserStore::swap_roles)), else it is computed again
    /// from a fresh read. [`Error::Busy`] (nothing changed) if that keeps losing.
    pub async fn add_role(&self, user_id: &UserId, role: Role) -> Result<bool, Error> {
        self.change_roles(user_id, |roles| roles.insert(role.clone()))
            .await
    }

    /// Removes a role. `false` (and nothing changes) if the user did not have it. Safe
    /// against concurrent role changes, as [`Engine::add_role`] is.
    pub async fn remove_role(&self, user_id: &UserId, role: &Role) -> Result<bool, Error> {
        self.change_roles(user_id, |roles| Ok(roles.remove(role)))
            .await
    }

    /// Replaces the user's custom claims; their access tokens issued before now go stale.
    /// Records `roles_changed` (the kind covers claims too) with the claims' names.
    pub async fn set_claims(&self, user_id: &UserId, claims: CustomClaims) -> Result<(), Error> {
        if !self.inner.stores.users.set_claims(user_id, &claims).await? {
            return Err(Error::UserNotFound);
        }
        self.claims_changed(user_id, &claims).await;
        self.mark_user_stale(user_id).await
    }

    /// Applies an administrator's change of standing (`PATCH /v1/admin/users/{id}`): each
    /// part given that differs from the stored one is written and recorded (`roles_changed`,
    /// `user_disabled` with the sessions it ended, `user_enabled`), and the user's access
    /// tokens go stale once if roles, claims or a disable changed. Disabling ends every
    /// session, as [`Engine::disable_user`] does. A part equal to the stored one changes and
    /// records nothing.
    ///
    /// Everything is checked before anything is written: the parts are typed (their rules
    /// are met) and the user must exist ([`Error::UserNotFound`], nothing changed).
    pub async fn change_standing(
        &self,
        user_id: &UserId,
        change: StandingChange,
    ) -> Result<(), Error> {
        let current = self.user_record(user_id).await?.standing;
        let users = &self.inner.stores.users;
        let mut stale = false;
        if let Some(roles) = change.roles.filter(|roles| *roles != current.roles) {
            if !users.set_roles(user_id, &roles).await? {
                return Err(Error::UserNotFound);
            }
            self.roles_changed(user_id, &roles).await;
            stale = true;
        }
        if let Some(claims) = change.claims.filter(|claims| *claims != current.claims) {
            if !users.set_claims(user_id, &claims).await? {
                return Err(Error::UserNotFound);
            }
            self.claims_changed(user_id, &claims).await;
            stale = true;
        }
        match change.disabled {
            Some(true) if !current.disabled => {
                self.disable(user_id).await?;
                stale = true;
            }
            Some(false) if current.disabled => self.enable_user(user_id).await?,
            _ => {}
        }
        if stale {
            self.mark_user_stale(user_id).await?;
        }
        Ok(())
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
    /// many sessions were revoked. Idempotent. Records `user_disabled`.
    pub async fn disable_user(&self, user_id: &UserId) -> Result<usize, Error> {
        let count = self.disable(user_id).await?;
        self.mark_user_stale(user_id).await?;
        Ok(count)
    }

    /// Enables a disabled account: its password works again. Idempotent. Records
    /// `user_enabled`.
    pub async fn enable_user(&self, user_id: &UserId) -> Result<(), Error> {
        if !self.inner.stores.users.set_disabled(user_id, false).await? {
            return Err(Error::UserNotFound);
        }
        tracing::info!(target: "tessera::audit", event = "user_enabled", user_id = %user_id);
        let event = self.audit_event(AuditKind::UserEnabled).user(user_id);
        self.record_audit(event).await;
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
    ///
    /// The revocation log is read first: a change of standing made elsewhere (the CLI,
    /// another instance) may have reached a verifier through the revocation stream before
    /// this process's own sync, and a token issued in that gap would be stale on arrival.
    pub(super) async fn issue_time(&self, user_id: &UserId, issued_at: Timestamp) -> Timestamp {
        if let Err(error) = self.sync_revocations().await {
            // The token may then be refused as stale by a verifier that knows more: a retry
            // fixes it; nothing is accepted that should not be.
            tracing::debug!(%error, "revocation log unreadable before issuing a token");
        }
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

    /// A read-modify-write of the user's roles by compare-and-set: `change` edits a fresh
    /// read and says whether it changed anything; the result is stored only over the roles
    /// it was computed from, else read and computed again.
    async fn change_roles(
        &self,
        user_id: &UserId,
        change: impl Fn(&mut Roles) -> Result<bool, StandingRejection>,
    ) -> Result<bool, Error> {
        let users = &self.inner.stores.users;
        for _ in 0..ROLE_CHANGE_TRIES {
            let current = self.user_record(user_id).await?.standing.roles;
            let mut roles = current.clone();
            if !change(&mut roles)? {
                return Ok(false);
            }
            if users.swap_roles(user_id, &current, &roles).await? {
                self.roles_changed(user_id, &roles).await;
                self.mark_user_stale(user_id).await?;
                return Ok(true);
            }
        }
        Err(Error::Busy)
    }

    /// Sets the disabled flag, ends every session and records `user_disabled`; the caller
    /// marks the user stale. Returns how many sessions ended.
    async fn disable(&self, user_id: &UserId) -> Result<usize, Error> {
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
        let event = self
            .audit_event(AuditKind::UserDisabled)
            .user(user_id)
            .detail("sessions_revoked", count);
        self.record_audit(event).await;
        Ok(count)
    }

    /// Logs and records that the user's roles are now `roles` (their names, space-separated,
    /// cut to the detail's bound).
    async fn roles_changed(&self, user_id: &UserId, roles: &Roles) {
        tracing::info!(target: "tessera::audit", event = "roles_changed", user_id = %user_id, roles = %roles.to_json());
        let names = roles.iter().collect::<Vec<_>>().join(" ");
        let event = self
            .audit_event(AuditKind::RolesChanged)
            .user(user_id)
            .detail("roles", names);
        self.record_audit(event).await;
    }

    /// Logs and records that the user's custom claims are now `claims`: their names only —
    /// the values are the operator's data, and the trail keeps only what Tessera writes.
    async fn claims_changed(&self, user_id: &UserId, claims: &CustomClaims) {
        tracing::info!(target: "tessera::audit", event = "claims_changed", user_id = %user_id);
        let names = claims
            .as_map()
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let event = self
            .audit_event(AuditKind::RolesChanged)
            .user(user_id)
            .detail("claims", names);
        self.record_audit(event).await;
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
