//! [`ClientStore`] for [`SqliteStore`]: registered API clients in `clients`, with the hash of
//! their secret, never the secret.

use async_trait::async_trait;
use tessera_core::{ClientRecord, ClientStore, StoreError};

use super::SqliteStore;
use crate::sql::{self, Binds as _};

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, created_at, admin) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        );
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
}
