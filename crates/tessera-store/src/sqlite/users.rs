//! [`UserStore`] for [`SqliteStore`]: accounts in `users`, unique by id and by the username's
//! case-folded key.

use async_trait::async_trait;
use tessera_core::{
    AuditEvent, Audited, CustomClaims, Roles, StoreError, User, UserId, UserRecord, UserStore,
    Username,
};

use super::SqliteStore;
use super::audit::append_in;
use crate::sql::{self, Binds as _, unavailable, user_columns};

const INSERT_USER: &str = "INSERT INTO users (id, username_key, username, password_hash, \
                           created_at, roles, claims, disabled) \
                           VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(
        &self,
        username: &Username,
        record: &UserRecord,
    ) -> Result<(), StoreError> {
        let statement = sqlx::query(INSERT_USER);
        sql::insert(statement.bind_user(username, record), &self.pool).await
    }

    async fn user_by_username(&self, username_key: &str) -> Result<Option<UserRecord>, StoreError> {
        let statement = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username_key = ?1"
        ));
        sql::fetch_optional(statement.bind(username_key), &self.pool, sql::user).await
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let statement = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = ?1"
        ));
        sql::fetch_optional(statement.bind(id.as_str()), &self.pool, sql::user).await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let statement = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY created_at, rowid"
        ));
        let records = sql::fetch_all(statement, &self.pool, sql::user).await?;
        Ok(records.into_iter().map(|record| record.user).collect())
    }

    async fn users_page(
        &self,
        after: Option<&str>,
        limit: usize,
        contains: Option<&str>,
    ) -> Result<Vec<User>, StoreError> {
        // `instr`, not `LIKE`: `_` is a wildcard there and a character of usernames here.
        // Ordered by the unique index on `username_key` (BINARY: byte order).
        let statement = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users \
             WHERE (?1 IS NULL OR username_key > ?1) \
             AND (?2 IS NULL OR instr(username_key, ?2) > 0) \
             ORDER BY username_key LIMIT ?3",
        ))
        .bind(after)
        .bind(contains)
        .bind(sql::limit(limit));
        let records = sql::fetch_all(statement, &self.pool, sql::user).await?;
        Ok(records.into_iter().map(|record| record.user).collect())
    }

    async fn set_password_hash(
        &self,
        id: &UserId,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let statement = sqlx::query("UPDATE users SET password_hash = ?2 WHERE id = ?1")
            .bind(id.as_str())
            .bind(password_hash);
        Ok(sql::execute(statement, &self.pool).await?.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        let statement = sqlx::query("DELETE FROM users WHERE id = ?1").bind(id.as_str());
        Ok(sql::execute(statement, &self.pool).await?.rows_affected() == 1)
    }

    async fn set_roles(&self, id: &UserId, roles: &Roles) -> Result<bool, StoreError> {
        let statement = sqlx::query("UPDATE users SET roles = ?2 WHERE id = ?1")
            .bind(id.as_str())
            .bind(roles.to_json());
        Ok(sql::execute(statement, &self.pool).await?.rows_affected() == 1)
    }

    async fn swap_roles(
        &self,
        id: &UserId,
        expected: &Roles,
        roles: &Roles,
    ) -> Result<bool, StoreError> {
        // `Roles::to_json` is the one encoding the column holds (sorted names), so comparing
        // the text compares the sets; SQLite runs one write at a time.
        let statement = sqlx::query("UPDATE users SET roles = ?3 WHERE id = ?1 AND roles = ?2")
            .bind(id.as_str())
            .bind(expected.to_json())
            .bind(roles.to_json());
        Ok(sql::execute(statement, &self.pool).await?.rows_affected() == 1)
    }

    async fn set_claims(&self, id: &UserId, claims: &CustomClaims) -> Result<bool, StoreError> {
        let statement = sqlx::query("UPDATE users SET claims = ?2 WHERE id = ?1")
            .bind(id.as_str())
            .bind(claims.to_json());
        Ok(sql::execute(statement, &self.pool).await?.rows_affected() == 1)
    }

    async fn set_disabled(&self, id: &UserId, disabled: bool) -> Result<bool, StoreError> {
        let statement = sqlx::query("UPDATE users SET disabled = ?2 WHERE id = ?1")
            .bind(id.as_str())
            .bind(i64::from(disabled));
        Ok(sql::execute(statement, &self.pool).await?.rows_affected() == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sql::execute(sqlx::query("SELECT 1"), &self.pool).await?;
        Ok(())
    }

    async fn create_user_audited(
        &self,
        username: &Username,
        record: &UserRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let mut tx = self.begin_write().await?;
        let statement = sqlx::query(INSERT_USER).bind_user(username, record);
        // A conflict returns here, and the transaction rolls back on drop.
        sql::insert(statement, &mut *tx).await?;
        append_in(&mut tx, event).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Audited::recorded(()))
    }

    async fn delete_user_audited(
        &self,
        id: &UserId,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let mut tx = self.begin_write().await?;
        let statement = sqlx::query("DELETE FROM users WHERE id = ?1").bind(id.as_str());
        let deleted = sql::execute(statement, &mut *tx).await?.rows_affected() == 1;
        if deleted {
            append_in(&mut tx, event).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(Audited::recorded(deleted))
    }
}
