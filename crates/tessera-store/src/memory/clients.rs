//! [`ClientStore`] for [`MemoryStore`]: registered API clients in hash maps.

use std::collections::HashMap;

use async_trait::async_trait;
use tessera_core::{ClientRecord, ClientStore, StoreError};

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

#[async_trait]
impl ClientStore for MemoryStore {
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let mut clients = write(&self.clients)?;
        if clients.by_id.contains_key(&client.id) || clients.by_name.contains_key(&client.name) {
            return Err(StoreError::Conflict);
        }
        clients.inserted += 1;
        let order = clients.inserted;
        clients
            .by_name
            .insert(client.name.clone(), client.id.clone());
        clients.by_id.insert(
            client.id.clone(),
            StoredClient {
                record: client.clone(),
                order,
            },
        );
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
        let mut clients = write(&self.clients)?;
        let Some(id) = clients.by_name.remove(name) else {
            return Ok(false);
        };
        clients.by_id.remove(&id);
        Ok(true)
    }
}
