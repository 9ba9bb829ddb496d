//! [`ClientStore`] for [`PgStore`]: registered API clients in `clients`, with the hash of
//! their secret, never the secret.

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use tessera_core::{ClientRecord, ClientStore, StoreError, TokenHash};

use super::{PgStore, conflict_or_unavailable, hash_bytes, malformed, timestamp, unavailable};

fn client_from_row(row: &PgRow) -> Result<ClientRecord, StoreError> {
    let secret_hash = hash_bytes(row, "secret_hash")?.ok_or_else(|| malformed("secret_hash"))?;
    Ok(ClientRecord {
        id: row.try_get("id").map_err(unavailable)?,
        name: row.try_get("name").map_err(unavailable)?,
        secret_hash: TokenHash::from_bytes(secret_hash),
        created_at: timestamp(row, "created_at")?,
    })
}

#[async_trait]
impl ClientStore for PgStore {
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO clients (id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(client.id.as_str())
            .bind(client.name.as_str())
            .bind(&client.secret_hash.as_bytes()[..])
            .bind(client.created_at.unix_millis())
            .execute(&self.pool)
            .await
            .map_err(conflict_or_unavailable)?;
            Ok(())
        })
        .await
    }

    async fn client_by_id(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.bounded(async {
            sqlx::query("SELECT id, name, secret_hash, created_at FROM clients WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?
                .as_ref()
                .map(client_from_row)
                .transpose()
        })
        .await
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.bounded(async {
            sqlx::query(
                "SELECT id, name, secret_hash, created_at FROM clients \
                 ORDER BY created_at, insertion_order",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(client_from_row)
            .collect()
        })
        .await
    }

    async fn delete_client(&self, name: &str) -> Result<bool, StoreError> {
        self.bounded(async {
            let deleted = sqlx::query("DELETE FROM clients WHERE name = $1")
                .bind(name)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(deleted.rows_affected() == 1)
        })
        .await
    }
}
