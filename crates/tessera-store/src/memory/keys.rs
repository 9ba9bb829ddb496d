//! [`KeyStore`] for [`MemoryStore`]: signing keys in a list, server secrets in a map.

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use tessera_core::{AuditEvent, Audited, KeyRecord, KeyStore, StoreError};

use super::{MemoryStore, read, write};

#[derive(Default)]
pub(super) struct Keys {
    /// In insertion order. Listing sorts stably by creation time, so keys created in the same
    /// second list in insertion order, as the SQL backends' `ORDER BY created_at` and
    /// insertion order (`rowid`, `insertion_order`) does.
    /// A deployment has a handful of keys, so a scan is the right index.
    signing: Vec<KeyRecord>,
    server_secrets: HashMap<String, Vec<u8>>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `KeyRecord`'s own `Debug` leaves out the key; the server secrets are named only.
        f.debug_struct("Keys")
            .field("signing", &self.signing)
            .field(
                "server_secrets",
                &self.server_secrets.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn signing_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut keys = read(&self.keys)?.signing.clone();
        keys.sort_by_key(|key| key.created_at);
        Ok(keys)
    }

    async fn insert_signing_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let mut keys = write(&self.keys)?;
        if keys.signing.iter().any(|stored| stored.kid == key.kid) {
            return Err(StoreError::Conflict);
        }
        keys.signing.push(key.clone());
        Ok(())
    }

    async fn insert_signing_key_audited(
        &self,
        key: &KeyRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let mut keys = write(&self.keys)?;
        if keys.signing.iter().any(|stored| stored.kid == key.kid) {
            return Err(StoreError::Conflict);
        }
        let mut trail = write(&self.audit)?;
        keys.signing.push(key.clone());
        trail.push(event.clone());
        Ok(Audited::recorded(()))
    }

    async fn retire_signing_keys(&self, except: &str, retired_at: i64) -> Result<u64, StoreError> {
        let mut keys = write(&self.keys)?;
        let mut retired = 0;
        for key in keys
            .signing
            .iter_mut()
            .filter(|key| key.retired_at.is_none() && key.kid != except)
        {
            key.retired_at = Some(retired_at);
            retired += 1;
        }
        Ok(retired)
    }

    async fn delete_signing_keys_retired_before(&self, before: i64) -> Result<u64, StoreError> {
        let mut keys = write(&self.keys)?;
        let count = keys.signing.len();
        keys.signing
            .retain(|key| key.retired_at.is_none_or(|retired_at| retired_at >= before));
        Ok((count - keys.signing.len()) as u64)
    }

    async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut keys = write(&self.keys)?;
        Ok(keys
            .server_secrets
            .entry(name.to_owned())
            .or_insert_with(|| candidate.to_vec())
            .clone())
    }
}
