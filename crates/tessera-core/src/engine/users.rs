//! Accounts: create (username rules, password policy), list, page through, look up, delete.

use super::Engine;
use crate::audit::{AuditKind, Audited};
use crate::error::Error;
use crate::id::UserId;
use crate::store::StoreError;
use crate::user::{Standing, User, UserRecord, Username};

impl Engine {
    /// Creates an account after checking the username rules and the password policy.
    /// Records `user_created` (actor from the context: anonymous for a self-registration).
    pub async fn create_user(&self, username: &str, password: &str) -> Result<User, Error> {
        let username = Username::parse(username)?;
        self.inner.config.password.check(&username, password)?;
        if self
            .inner
            .stores
            .users
            .user_by_username(username.key())
            .await?
            .is_some()
        {
            return Err(Error::UsernameTaken);
        }
        let password_hash = self.inner.hasher.hash(password).await?;
        let record = UserRecord {
            user: User {
                id: UserId::generate()?,
                username: username.as_str().to_owned(),
                created_at: self.now(),
            },
            password_hash,
            standing: Standing::default(),
        };
        let event = self
            .audit_event(AuditKind::UserCreated)
            .user(&record.user.id)
            .detail("username", &record.user.username);
        let users = &self.inner.stores.users;
        let created = if self.audits() {
            users.create_user_audited(&username, &record, &event).await
        } else {
            users
                .create_user(&username, &record)
                .await
                .map(Audited::left_to_caller)
        };
        match created {
            Ok(created) => self.settle(created, |()| true, event).await,
            // Lost a race with another registration of the same name.
            Err(StoreError::Conflict) => return Err(Error::UsernameTaken),
            Err(other) => return Err(other.into()),
        }
        tracing::info!(target: "tessera::audit", event = "user_created", user_id = %record.user.id);
        Ok(record.user)
    }

    /// Every account, oldest first.
    pub async fn users(&self) -> Result<Vec<User>, Error> {
        Ok(self.inner.stores.users.list_users().await?)
    }

    /// One page of accounts in username order (case-folded, byte order): at most `limit`
    /// whose username comes after `after` (a username or its key) and, when `contains` is
    /// given, contains it in any case. See [`UserStore::users_page`] for why this is stable
    /// while accounts come and go.
    ///
    /// [`UserStore::users_page`]: crate::store::UserStore::users_page
    pub async fn users_page(
        &self,
        after: Option<&str>,
        limit: usize,
        contains: Option<&str>,
    ) -> Result<Vec<User>, Error> {
        let after = after.map(str::to_ascii_lowercase);
        let contains = contains
            .filter(|text| !text.is_empty())
            .map(str::to_ascii_lowercase);
        Ok(self
            .inner
            .stores
            .users
            .users_page(after.as_deref(), limit, contains.as_deref())
            .await?)
    }

    /// The account with this id.
    pub async fn user_by_id(&self, id: &UserId) -> Result<User, Error> {
        match self.inner.stores.users.user_by_id(id).await? {
            Some(record) => Ok(record.user),
            None => Err(Error::UserNotFound),
        }
    }

    /// The account with this username (any case).
    pub async fn user_by_username(&self, username: &str) -> Result<User, Error> {
        let key = username.to_ascii_lowercase();
        match self.inner.stores.users.user_by_username(&key).await? {
            Some(record) => Ok(record.user),
            None => Err(Error::UserNotFound),
        }
    }

    /// Deletes an account, ends all its sessions and makes its access tokens stale. Records
    /// `user_deleted` (actor from the context) with the account's deletion.
    pub async fn delete_user(&self, id: &UserId) -> Result<(), Error> {
        let sessions = &self.inner.stores.sessions;
        let ended = sessions.revoke_user_sessions(id, None, self.now()).await?;
        let event = self
            .audit_event(AuditKind::UserDeleted)
            .user(id)
            .detail("sessions_revoked", ended.len());
        self.revoked(ended);
        let users = &self.inner.stores.users;
        let deleted = if self.audits() {
            users.delete_user_audited(id, &event).await?
        } else {
            Audited::left_to_caller(users.delete_user(id).await?)
        };
        if !self.settle(deleted, |deleted| *deleted, event).await {
            return Err(Error::UserNotFound);
        }
        self.inner.usernames.remove(id);
        // A login that raced the deletion may have created a session in between.
        self.revoked(sessions.revoke_user_sessions(id, None, self.now()).await?);
        tracing::info!(target: "tessera::audit", event = "user_deleted", user_id = %id);
        self.mark_user_stale(id).await
    }
}
