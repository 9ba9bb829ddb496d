//! Accounts: create (username rules, password policy), list, look up, delete.

use super::Engine;
use crate::error::Error;
use crate::id::UserId;
use crate::store::StoreError;
use crate::user::{Standing, User, UserRecord, Username};

impl Engine {
    /// Creates an account after checking the username rules and the password policy.
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
        match self
            .inner
            .stores
            .users
            .create_user(&username, &record)
            .await
        {
            Ok(()) => {}
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

    /// The account with this username (any case).
    pub async fn user_by_username(&self, username: &str) -> Result<User, Error> {
        let key = username.to_ascii_lowercase();
        match self.inner.stores.users.user_by_username(&key).await? {
            Some(record) => Ok(record.user),
            None => Err(Error::UserNotFound),
        }
    }

    /// Deletes an account, ends all its sessions and makes its access tokens stale.
    pub async fn delete_user(&self, id: &UserId) -> Result<(), Error> {
        let sessions = &self.inner.stores.sessions;
        self.revoked(sessions.revoke_user_sessions(id, None, self.now()).await?);
        if !self.inner.stores.users.delete_user(id).await? {
            return Err(Error::UserNotFound);
        }
        self.inner.usernames.remove(id);
        // A login that raced the deletion may have created a session in between.
        self.revoked(sessions.revoke_user_sessions(id, None, self.now()).await?);
        tracing::info!(target: "tessera::audit", event = "user_deleted", user_id = %id);
        self.mark_user_stale(id).await
    }
}
