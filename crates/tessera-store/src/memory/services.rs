//! [`ServiceStore`] for [`MemoryStore`]: registered downstream services, oldest first.

use async_trait::async_trait;
use tessera_core::{AuditEvent, Audited, ServiceRecord, ServiceStore, StoreError};

use super::{MemoryStore, read, write};

/// Kept in list order: by `created_at`, and services registered in the same millisecond in
/// the order they were added, as the SQL backends' `ORDER BY created_at` and insertion order
/// lists them. A deployment registers a handful of services, so a scan by audience costs
/// less than keeping a second map in step.
#[derive(Debug, Default)]
pub(super) struct Services {
    registered: Vec<ServiceRecord>,
}

impl Services {
    /// [`StoreError::Conflict`] if the name or the audience is taken.
    fn check_free(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        let taken = self.registered.iter().any(|registered| {
            registered.name == service.name || registered.audience == service.audience
        });
        if taken {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    /// Adds a service that [`Services::check_free`] let through, after every service
    /// registered at or before its `created_at`.
    fn insert(&mut self, service: &ServiceRecord) {
        let at = self
            .registered
            .partition_point(|registered| registered.created_at <= service.created_at);
        self.registered.insert(at, service.clone());
    }

    /// Removes the service named `name`; `false` if there was none.
    fn remove(&mut self, name: &str) -> bool {
        let before = self.registered.len();
        self.registered.retain(|service| service.name != name);
        self.registered.len() != before
    }
}

#[async_trait]
impl ServiceStore for MemoryStore {
    async fn insert_service(&self, service: &ServiceRecord) -> Result<(), StoreError> {
        let mut services = write(&self.services)?;
        services.check_free(service)?;
        services.insert(service);
        Ok(())
    }

    async fn service_by_audience(
        &self,
        audience: &str,
    ) -> Result<Option<ServiceRecord>, StoreError> {
        Ok(read(&self.services)?
            .registered
            .iter()
            .find(|service| service.audience == audience)
            .cloned())
    }

    async fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        Ok(read(&self.services)?.registered.clone())
    }

    async fn delete_service(&self, name: &str) -> Result<bool, StoreError> {
        Ok(write(&self.services)?.remove(name))
    }

    async fn insert_service_audited(
        &self,
        service: &ServiceRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let mut services = write(&self.services)?;
        services.check_free(service)?;
        let mut trail = write(&self.audit)?;
        services.insert(service);
        trail.push(event.clone());
        Ok(Audited::recorded(()))
    }

    async fn delete_service_audited(
        &self,
        name: &str,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let mut services = write(&self.services)?;
        let mut trail = write(&self.audit)?;
        let deleted = services.remove(name);
        if deleted {
            trail.push(event.clone());
        }
        Ok(Audited::recorded(deleted))
    }
}
