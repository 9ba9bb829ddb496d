//! [`ClientStore`] for [`PgStore`]: registered API clients in `clients`, with the hash of
//! their secret, never the secret.

use async_trait::async_trait;
use std::sync::LazyLock;

use tessera_core::{AuditEvent, Audited, ClientRecord, ClientStore, StoreError};

use super::PgStore;
use super::audit::audited;
use crate::sql::{self, Binds as _};

const INSERT_CLIENT: &str =
    "INSERT INTO clients (id, name, secret_hash, created_at, admin) VALUES ($1, $2, $3, $4, $5)";

static INSERT_CLIENT_AUDITED: LazyLock<String> =
    LazyLock::new(|| audited(&format!("{INSERT_CLIENT} RETURNING 1"), 5));

static DELETE_CLIENT_AUDITED: LazyLock<String> =
    LazyLock::new(|| audited("DELETE FROM clients WHERE name = $1 RETURNING 1", 1));

#[async_trait]
impl ClientStore for PgStore {
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(INSERT_CLIENT);
        self.bounded(sql::insert(statement.bind_client(client), &self.pool))
            .await
    }

    async fn client_by_id(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let statement = sqlx::query(
            "SELECT id, name, secret_hash, created_at, admin FROM clients WHERE id = $1",
        );
        self.bounded(sql::fetch_optional(
            statement.bind(id),
            &self.pool,
            sql::client,
        ))
        .await
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let statement = sqlx::query(
            "SELECT id, name, secret_hash, created_at, admin FROM clients \
             ORDER BY created_at, insertion_order",
        );
        self.bounded(sql::fetch_all(statement, &self.pool, sql::client))
            .await
    }

    async fn delete_client(&self, name: &str) -> Result<bool, StoreError> {
        let statement = sqlx::query("DELETE FROM clients WHERE name = $1").bind(name);
        let deleted = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn insert_client_audited(
        &self,
        client: &ClientRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let statement = sqlx::query(&INSERT_CLIENT_AUDITED)
            .bind_client(client)
            .bind_audit(event);
        self.bounded(sql::insert(statement, &self.pool)).await?;
        Ok(Audited::recorded(()))
    }

    async fn delete_client_audited(
        &self,
        name: &str,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let statement = sqlx::query(&DELETE_CLIENT_AUDITED)
            .bind(name)
            .bind_audit(event);
        let deleted = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(Audited::recorded(deleted.rows_affected() == 1))
    }
}
