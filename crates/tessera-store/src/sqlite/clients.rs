//! [`ClientStore`] for [`SqliteStore`]: registered API clients in `clients`, with the hash of
//! their secret, never the secret.

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;
use tessera_core::{ClientRecord, ClientStore, StoreError, Timestamp, TokenHash};

use super::{SqliteStore, conflict_or_unavailable, malformed, unavailable};

fn client_from_row(row: &SqliteRow) -> Result<ClientRecord, StoreError> {
    let secret_hash: &[u8] = row.try_get("secret_hash").map_err(unavailable)?;
    let secret_hash = <[u8; 32]>::try_from(secret_hash).map_err(|_| malformed("secret_hash"))?;
    Ok(ClientRecord {
        id: row.try_get("id").map_err(unavailable)?,
        name: row.try_get("name").map_err(unavailable)?,
        secret_hash: TokenHash::from_bytes(secret_hash),
        created_at: Timestamp::from_unix_millis(row.try_get("created_at").map_err(unavailable)?),
    })
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(client.id.as_str())
        .bind(client.name.as_str())
        .bind(&client.secret_hash.as_bytes()[..])
        .bind(client.created_at.unix_millis())
        .execute(&self.pool)
        .await
        .map_err(conflict_or_unavailable)?;
        Ok(())
    }

    async fn client_by_id(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        sqlx::query("SELECT id, name, secret_hash, created_at FROM clients WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .as_ref()
            .map(client_from_row)
            .transpose()
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        sqlx::query(
            "SELECT id, name, secret_hash, created_at FROM clients ORDER BY created_at, rowid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(client_from_row)
        .collect()
    }

    async fn delete_client(&self, name: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM clients WHERE name = ?1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(deleted.rows_affected() == 1)
    }
}
