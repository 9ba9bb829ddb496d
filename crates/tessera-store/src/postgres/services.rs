//! [`ServiceStore`] for [`PgStore`]: registered downstream services in `services`.

use async_trait::async_trait;
use std::sync::LazyLock;

use tessera_core::{AuditEvent, Audited, ServiceRecord, ServiceStore, StoreError};

use super::PgStore;
use super::audit::audited;
use crate::sql::{self, Binds as _};

const INSERT_SERVICE: &str = "INSERT INTO services (name, audience, scopes, max_ttl, sessions, \
     created_at) VALUES ($1, $2, $3, $4, $5, $6)";

const SERVICE_COLUMNS: &str = "SELECT name, audience, scopes, max_ttl, sessions, created_at \
     FROM services";

static INSERT_SERVICE_AUDITED: LazyLock<String> =
    LazyLock::new(|| audited(&format!("{INSERT_SERVICE} RETURNING 1"), 6));

static DELETE_SERVICE_AUDITED: LazyLock<String> =
    LazyLock::new(|| audited("DELETE FROM services WHERE name = $1 RETURNING 1", 1));

static SERVICE_BY_AUDIENCE: LazyLock<String> =
    LazyLock::new(|| format!("{SERVICE_COLUMNS} WHERE audience = $1"));

static LIST_SERVICES: LazyLock<String> =
    LazyLock::new(|| format!("{SERVICE_COLUMNS} ORDER BY created_at, insertion_order"));

#[async_trait]
impl ServiceStore for PgStore {
    async fn insert_service(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(INSERT_SERVICE).bind_service(service);
        self.bounded(sql::insert(statement, &self.pool)).await
    }

    async fn service_by_audience(
        &self,
        audience: &str,
    ) -> Result<Option<ServiceRecord>, StoreError> {
        let statement = sqlx::query(&SERVICE_BY_AUDIENCE).bind(audience);
        self.bounded(sql::fetch_optional(statement, &self.pool, sql::service))
            .await
    }

    async fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        let statement = sqlx::query(&LIST_SERVICES);
        self.bounded(sql::fetch_all(statement, &self.pool, sql::service))
            .await
    }

    async fn delete_service(&self, name: &str) -> Result<bool, StoreError> {
        let statement = sqlx::query("DELETE FROM services WHERE name = $1").bind(name);
        let deleted = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn insert_service_audited(
        &self,
        service: &ServiceRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let statement = sqlx::query(&INSERT_SERVICE_AUDITED)
            .bind_service(service)
            .bind_audit(event);
        self.bounded(sql::insert(statement, &self.pool)).await?;
        Ok(Audited::recorded(()))
    }

    async fn delete_service_audited(
        &self,
        name: &str,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let statement = sqlx::query(&DELETE_SERVICE_AUDITED)
            .bind(name)
            .bind_audit(event);
        let deleted = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(Audited::recorded(deleted.rows_affected() == 1))
    }
}
