//! [`UserStore`] for [`PgStore`]: accounts in `users`, unique by id and by the username's
//! case-folded key.

use async_trait::async_trait;
use std::sync::LazyLock;

use tessera_core::{
    AuditEvent, Audited, CustomClaims, Roles, StoreError, User, UserId, UserRecord, UserStore,
    Username,
};

use super::PgStore;
use super::audit::audited;
use crate::sql::{self, Binds as _, user_columns};

const INSERT_USER: &str = "INSERT INTO users (id, username_key, username, password_hash, \
                           created_at, roles, claims, disabled) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

static INSERT_USER_AUDITED: LazyLock<String> =
    LazyLock::new(|| audited(&format!("{INSERT_USER} RETURNING 1"), 8));

static DELETE_USER_AUDITED: LazyLock<String> =
    LazyLock::new(|| audited("DELETE FROM users WHERE id = $1 RETURNING 1", 1));

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(
        &self,
        username: &Username,
        record: &UserRecord,
    ) -> Result<(), StoreError> {
        let statement = sqlx::query(INSERT_USER);
        self.bounded(sql::insert(
            statement.bind_user(username, record),
            &self.pool,
        ))
        .await
    }

    async fn user_by_username(&self, username_key: &str) -> Result<Option<UserRecord>, StoreError> {
        let statement = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username_key = $1"
        ));
        self.bounded(sql::fetch_optional(
            statement.bind(username_key),
            &self.pool,
            sql::user,
        ))
        .await
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let statement = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ));
        self.bounded(sql::fetch_optional(
            statement.bind(id.as_str()),
            &self.pool,
            sql::user,
        ))
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let statement = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY created_at, insertion_order"
        ));
        let records = self
            .bounded(sql::fetch_all(statement, &self.pool, sql::user))
            .await?;
        Ok(records.into_iter().map(|record| record.user).collect())
    }

    async fn users_page(
        &self,
        after: Option<&str>,
        limit: usize,
        contains: Option<&str>,
    ) -> Result<Vec<User>, StoreError> {
        // `strpos`, not `LIKE`: `_` is a wildcard there and a character of usernames here.
        // Ordered by the unique index on `username_key` (collation "C": byte order).
        let statement = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users \
             WHERE ($1::text IS NULL OR username_key > $1) \
             AND ($2::text IS NULL OR strpos(username_key, $2) > 0) \
             ORDER BY username_key LIMIT $3",
        ))
        .bind(after)
        .bind(contains)
        .bind(sql::limit(limit));
        let records = self
            .bounded(sql::fetch_all(statement, &self.pool, sql::user))
            .await?;
        Ok(records.into_iter().map(|record| record.user).collect())
    }

    async fn set_password_hash(
        &self,
        id: &UserId,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let statement = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(password_hash);
        let result = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        let statement = sqlx::query("DELETE FROM users WHERE id = $1").bind(id.as_str());
        let result = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(result.rows_affected() == 1)
    }

    async fn set_roles(&self, id: &UserId, roles: &Roles) -> Result<bool, StoreError> {
        let statement = sqlx::query("UPDATE users SET roles = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(roles.to_json());
        let updated = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn swap_roles(
        &self,
        id: &UserId,
        expected: &Roles,
        roles: &Roles,
    ) -> Result<bool, StoreError> {
        // `Roles::to_json` is the one encoding the column holds (sorted names), so comparing
        // the text compares the sets. Under READ COMMITTED an UPDATE that waited for a
        // concurrent one re-checks its WHERE against the row that one committed, so of two
        // swaps from the same `expected` exactly one matches.
        let statement = sqlx::query("UPDATE users SET roles = $3 WHERE id = $1 AND roles = $2")
            .bind(id.as_str())
            .bind(expected.to_json())
            .bind(roles.to_json());
        let updated = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn set_claims(&self, id: &UserId, claims: &CustomClaims) -> Result<bool, StoreError> {
        let statement = sqlx::query("UPDATE users SET claims = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(claims.to_json());
        let updated = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn set_disabled(&self, id: &UserId, disabled: bool) -> Result<bool, StoreError> {
        let statement = sqlx::query("UPDATE users SET disabled = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(i64::from(disabled));
        let updated = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(sql::execute(sqlx::query("SELECT 1"), &self.pool))
            .await?;
        Ok(())
    }

    async fn create_user_audited(
        &self,
        username: &Username,
        record: &UserRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let statement = sqlx::query(&INSERT_USER_AUDITED)
            .bind_user(username, record)
            .bind_audit(event);
        self.bounded(sql::insert(statement, &self.pool)).await?;
        Ok(Audited::recorded(()))
    }

    async fn delete_user_audited(
        &self,
        id: &UserId,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let statement = sqlx::query(&DELETE_USER_AUDITED)
            .bind(id.as_str())
            .bind_audit(event);
        let result = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(Audited::recorded(result.rows_affected() == 1))
    }
}
