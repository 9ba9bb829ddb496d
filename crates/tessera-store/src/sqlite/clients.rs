//! [`ClientStore`] for [`SqliteStore`]: registered API clients in `clients`, with the hash of
//! their secret, never the secret.

use async_trait::async_trait;
use tessera_core::{AuditEvent, Audited, ClientRecord, ClientStore, StoreError};

use super::SqliteStore;
use super::audit::append_in;
use crate::sql::{self, Binds as _, unavailable};

const INSERT_CLIENT: &str =
    "INSERT INTO clients (id, name, secret_hash, created_at, admin) VALUES (?1, ?2, ?3, ?4, ?5)";

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(INSERT_CLIENT);
        sql::insert(statement.bind_client(client), &self.pool).await
    }

    async fn client_by_id(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let statement = sqlx::query(
            "SELECT id, name, secret_hash, created_at, admin FROM clients WHERE id = ?1",
        );
        sql::fetch_optional(statement.bind(id), &self.pool, sql::client).await
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let statement = sqlx::query(
            "SELECT id, name, secret_hash, created_at, admin FROM clients ORDER BY created_at, rowid",
        );
        sql::fetch_all(statement, &self.pool, sql::client).await
    }

    async fn delete_client(&self, name: &str) -> Result<bool, StoreError> {
        let statement = sqlx::query("DELETE FROM clients WHERE name = ?1").bind(name);
        Ok(sql::execute(statement, &self.pool).await?.rows_affected() == 1)
    }

    async fn insert_client_audited(
        &self,
        client: &ClientRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let mut tx = self.begin_write().await?;
        let statement = sqlx::query(INSERT_CLIENT).bind_client(client);
        sql::insert(statement, &mut *tx).await?;
        append_in(&mut tx, event).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Audited::recorded(()))
    }

    async fn delete_client_audited(
        &self,
        name: &str,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let mut tx = self.begin_write().await?;
        let statement = sqlx::query("DELETE FROM clients WHERE name = ?1").bind(name);
        let deleted = sql::execute(statement, &mut *tx).await?.rows_affected() == 1;
        if deleted {
            append_in(&mut tx, event).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(Audited::recorded(deleted))
    }
}
