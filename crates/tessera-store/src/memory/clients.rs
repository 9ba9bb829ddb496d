//! [`ClientStore`] for [`MemoryStore`]: registered API clients in hash maps.

use std::collections::HashMap;

use async_trait::async_trait;
use tessera_core::{AuditEvent, Audited, ClientRecord, ClientStore, StoreError};

use super::{MemoryStore, read, write};

#[derive(Debug, Default)]
pub(super) struct Clients {
    /// Keyed by id: introspection looks a client up on every call it authenticates.
    by_id: HashMap<String, StoredClient>,
    /// Name to id, for the name's uniqueness and deletion by name.
    by_name: HashMap<String, String>,
    /// Counts insertions, so clients added in the same millisecond still list in order, as
    /// the SQL backends' `ORDER BY created_at` and insertion order (`rowid`,
    /// `insertion_order`) does.
    inserted: u64,
}

#[derive(Debug)]
struct StoredClient {
    record: ClientRecord,
    order: u64,
}

impl Clients {
    /// [`StoreError::Conflict`] if the id or the name is taken.
    fn check_free(&self, client: &ClientRecord) -> Result<(), StoreError> {
        if self.by_id.contains_key(&client.id) || self.by_name.contains_key(&client.name) {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    /// Adds a client that [`Clients::check_free`] let through.
    fn insert(&mut self, client: &ClientRecord) {
        self.inserted += 1;
        let order = self.inserted;
        self.by_name.insert(client.name.clone(), client.id.clone());
        self.by_id.insert(
            client.id.clone(),
            StoredClient {
                record: client.clone(),
                order,
            },
        );
    }

    /// Removes the client named `name`; `false` if there was none.
    fn remove(&mut self, name: &str) -> bool {
        let Some(id) = self.by_name.remove(name) else {
            return false;
        };
        self.by_id.remove(&id);
        true
    }
}

#[async_trait]
impl ClientStore for MemoryStore {
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let mut clients = write(&self.clients)?;
        clients.check_free(client)?;
        clients.insert(client);
        Ok(())
    }

    async fn client_by_id(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        Ok(read(&self.clients)?
            .by_id
            .get(id)
            .map(|stored| stored.record.clone()))
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let clients = read(&self.clients)?;
        let mut stored: Vec<&StoredClient> = clients.by_id.values().collect();
        stored.sort_by_key(|stored| (stored.record.created_at, stored.order));
        Ok(stored
            .into_iter()
            .map(|stored| stored.record.clone())
            .collect())
    }

    async fn delete_client(&self, name: &str) -> Result<bool, StoreError> {
        Ok(write(&self.clients)?.remove(name))
    }

    async fn insert_client_audited(
        &self,
        client: &ClientRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let mut clients = write(&self.clients)?;
        clients.check_free(client)?;
        let mut trail = write(&self.audit)?;
        clients.insert(client);
        trail.push(event.clone());
        Ok(Audited::recorded(()))
    }

    async fn delete_client_audited(
        &self,
        name: &str,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let mut clients = write(&self.clients)?;
        let mut trail = write(&self.audit)?;
        let deleted = clients.remove(name);
        if deleted {
            trail.push(event.clone());
        }
        Ok(Audited::recorded(deleted))
    }
}
