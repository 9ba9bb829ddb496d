//! [`UserStore`] for [`MemoryStore`]: accounts in hash maps, by id and by the username's
//! case-folded key.

use std::collections::HashMap;

use async_trait::async_trait;
use tessera_core::{
    AuditEvent, Audited, CustomClaims, Roles, Standing, StoreError, User, UserId, UserRecord,
    UserStore, Username,
};

use super::{MemoryStore, read, write};

#[derive(Debug, Default)]
pub(super) struct Users {
    by_id: HashMap<UserId, StoredUser>,
    by_key: HashMap<String, UserId>,
    /// Counts insertions, so users created in the same millisecond still list in order.
    inserted: u64,
}

#[derive(Debug)]
struct StoredUser {
    record: UserRecord,
    key: String,
    order: u64,
}

impl Users {
    /// [`StoreError::Conflict`] if the username (by key) or the id is taken.
    fn check_free(&self, username: &Username, record: &UserRecord) -> Result<(), StoreError> {
        if self.by_key.contains_key(username.key()) || self.by_id.contains_key(&record.user.id) {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    /// Adds a user that [`Users::check_free`] let through.
    fn insert(&mut self, username: &Username, record: &UserRecord) {
        self.inserted += 1;
        let order = self.inserted;
        self.by_key
            .insert(username.key().to_owned(), record.user.id.clone());
        self.by_id.insert(
            record.user.id.clone(),
            StoredUser {
                record: record.clone(),
                key: username.key().to_owned(),
                order,
            },
        );
    }

    /// Deletes a user; `false` if there was none.
    fn remove(&mut self, id: &UserId) -> bool {
        match self.by_id.remove(id) {
            Some(stored) => {
                self.by_key.remove(&stored.key);
                true
            }
            None => false,
        }
    }
}

impl MemoryStore {
    /// Applies `change` to the user's standing; `false` if there is no such user.
    fn update_standing(
        &self,
        id: &UserId,
        change: impl FnOnce(&mut Standing),
    ) -> Result<bool, StoreError> {
        let mut users = write(&self.users)?;
        Ok(match users.by_id.get_mut(id) {
            Some(stored) => {
                change(&mut stored.record.standing);
                true
            }
            None => false,
        })
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(
        &self,
        username: &Username,
        record: &UserRecord,
    ) -> Result<(), StoreError> {
        let mut users = write(&self.users)?;
        users.check_free(username, record)?;
        users.insert(username, record);
        Ok(())
    }

    async fn create_user_audited(
        &self,
        username: &Username,
        record: &UserRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let mut users = write(&self.users)?;
        users.check_free(username, record)?;
        let mut trail = write(&self.audit)?;
        users.insert(username, record);
        trail.push(event.clone());
        Ok(Audited::recorded(()))
    }

    async fn delete_user_audited(
        &self,
        id: &UserId,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let mut users = write(&self.users)?;
        let mut trail = write(&self.audit)?;
        let deleted = users.remove(id);
        if deleted {
            trail.push(event.clone());
        }
        Ok(Audited::recorded(deleted))
    }

    async fn user_by_username(&self, username_key: &str) -> Result<Option<UserRecord>, StoreError> {
        let users = read(&self.users)?;
        Ok(users
            .by_key
            .get(username_key)
            .and_then(|id| users.by_id.get(id))
            .map(|stored| stored.record.clone()))
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        Ok(read(&self.users)?
            .by_id
            .get(id)
            .map(|stored| stored.record.clone()))
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let users = read(&self.users)?;
        let mut listed: Vec<&StoredUser> = users.by_id.values().collect();
        listed.sort_by_key(|stored| (stored.record.user.created_at, stored.order));
        Ok(listed
            .into_iter()
            .map(|stored| stored.record.user.clone())
            .collect())
    }

    async fn users_page(
        &self,
        after: Option<&str>,
        limit: usize,
        contains: Option<&str>,
    ) -> Result<Vec<User>, StoreError> {
        let users = read(&self.users)?;
        let mut page: Vec<&StoredUser> = users
            .by_id
            .values()
            .filter(|stored| after.is_none_or(|after| stored.key.as_str() > after))
            .filter(|stored| contains.is_none_or(|text| stored.key.contains(text)))
            .collect();
        page.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(page
            .into_iter()
            .take(limit)
            .map(|stored| stored.record.user.clone())
            .collect())
    }

    async fn set_password_hash(
        &self,
        id: &UserId,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let mut users = write(&self.users)?;
        match users.by_id.get_mut(id) {
            Some(stored) => {
                password_hash.clone_into(&mut stored.record.password_hash);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        Ok(write(&self.users)?.remove(id))
    }

    async fn set_roles(&self, id: &UserId, roles: &Roles) -> Result<bool, StoreError> {
        self.update_standing(id, |standing| standing.roles = roles.clone())
    }

    async fn swap_roles(
        &self,
        id: &UserId,
        expected: &Roles,
        roles: &Roles,
    ) -> Result<bool, StoreError> {
        // Compared and replaced under one write lock.
        let mut users = write(&self.users)?;
        Ok(match users.by_id.get_mut(id) {
            Some(stored) if stored.record.standing.roles == *expected => {
                stored.record.standing.roles = roles.clone();
                true
            }
            _ => false,
        })
    }

    async fn set_claims(&self, id: &UserId, claims: &CustomClaims) -> Result<bool, StoreError> {
        self.update_standing(id, |standing| standing.claims = claims.clone())
    }

    async fn set_disabled(&self, id: &UserId, disabled: bool) -> Result<bool, StoreError> {
        self.update_standing(id, |standing| standing.disabled = disabled)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        read(&self.users).map(drop)
    }
}
