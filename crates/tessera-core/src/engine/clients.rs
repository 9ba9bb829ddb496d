//! API clients (resource servers): register, list, remove, authenticate.

use subtle::ConstantTimeEq;

use super::Engine;
use crate::error::Error;
use crate::id::{ClientId, Secret};
use crate::store::{ClientRecord, StoreError};

/// A client just added: its record and the secret, shown once and never stored.
#[derive(Debug)]
pub struct NewClient {
    /// The stored record.
    pub record: ClientRecord,
    /// The client secret (its `Debug` is redacted); only its hash is kept.
    pub secret: Secret,
}

impl Engine {
    /// Registers a client; the secret is 256 random bits and only its SHA-256 is stored.
    pub async fn create_client(&self, name: &str) -> Result<NewClient, Error> {
        let secret = Secret::generate()?;
        let record = ClientRecord {
            id: ClientId::generate()?.as_str().to_owned(),
            name: name.to_owned(),
            secret_hash: secret.hash(),
            created_at: self.now(),
        };
        match self.inner.stores.clients.insert_client(&record).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(Error::ClientNameTaken),
            Err(other) => return Err(other.into()),
        }
        tracing::info!(target: "tessera::audit", event = "client_created", client_id = %record.id);
        Ok(NewClient { record, secret })
    }

    /// Every client, oldest first.
    pub async fn clients(&self) -> Result<Vec<ClientRecord>, Error> {
        Ok(self.inner.stores.clients.list_clients().await?)
    }

    /// Removes a client by name.
    pub async fn delete_client(&self, name: &str) -> Result<(), Error> {
        if self.inner.stores.clients.delete_client(name).await? {
            tracing::info!(target: "tessera::audit", event = "client_deleted", name);
            Ok(())
        } else {
            Err(Error::InvalidClient)
        }
    }

    /// Checks client credentials; the comparison of secret hashes is constant-time, and an
    /// unknown id and a wrong secret are the same error.
    pub async fn authenticate_client(&self, id: &str, secret: &str) -> Result<ClientRecord, Error> {
        let (Ok(_), Ok(secret)) = (ClientId::parse(id), Secret::parse(secret)) else {
            return Err(Error::InvalidClient);
        };
        match self.inner.stores.clients.client_by_id(id).await? {
            Some(client)
                if bool::from(
                    client
                        .secret_hash
                        .as_bytes()
                        .ct_eq(secret.hash().as_bytes()),
                ) =>
            {
                Ok(client)
            }
            _ => Err(Error::InvalidClient),
        }
    }
}
