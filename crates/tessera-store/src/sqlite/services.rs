//! [`ServiceStore`] for [`SqliteStore`]: registered downstream services in `services`.

use async_trait::async_trait;
use tessera_core::{AuditEvent, Audited, ServiceRecord, ServiceStore, StoreError};

use super::SqliteStore;
use super::audit::append_in;
use crate::sql::{self, Binds as _, unavailable};

const INSERT_SERVICE: &str = "INSERT INTO services (name, audience, scopes, max_ttl, sessions, \
     created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const SERVICE_COLUMNS: &str = "SELECT name, audience, scopes, max_ttl, sessions, created_at \
     FROM services";

#[async_trait]
impl ServiceStore for SqliteStore {
    async fn insert_service(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(INSERT_SERVICE);
        sql::insert(statement.bind_service(service), &self.pool).await
    }

    async fn service_by_audience(
        &self,
        audience: &str,
    ) -> Result<Option<ServiceRecord>, StoreError> {
        let query = format!("{SERVICE_COLUMNS} WHERE audience = ?1");
        let statement = sqlx::query(&query).bind(audience);
        sql::fetch_optional(statement, &self.pool, sql::service).await
    }

    async fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        let query = format!("{SERVICE_COLUMNS} ORDER BY created_at, rowid");
        sql::fetch_all(sqlx::query(&query), &self.pool, sql::service).await
    }

    async fn delete_service(&self, name: &str) -> Result<bool, StoreError> {
        let statement = sqlx::query("DELETE FROM services WHERE name = ?1").bind(name);
        Ok(sql::execute(statement, &self.pool).await?.rows_affected() == 1)
    }

    async fn insert_service_audited(
        &self,
        service: &ServiceRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let mut tx = self.begin_write().await?;
        let statement = sqlx::query(INSERT_SERVICE).bind_service(service);
        sql::insert(statement, &mut *tx).await?;
        append_in(&mut tx, event).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Audited::recorded(()))
    }

    async fn delete_service_audited(
        &self,
        name: &str,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let mut tx = self.begin_write().await?;
        let statement = sqlx::query("DELETE FROM services WHERE name = ?1").bind(name);
        let deleted = sql::execute(statement, &mut *tx).await?.rows_affected() == 1;
        if deleted {
            append_in(&mut tx, event).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(Audited::recorded(deleted))
    }
}
