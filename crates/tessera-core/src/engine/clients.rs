//! API clients (resource servers, and operators' scripts with the admin scope): register,
//! list, remove, authenticate.

use std::net::IpAddr;

use subtle::ConstantTimeEq;

use super::Engine;
use crate::audit::{AuditKind, Audited};
use crate::error::Error;
use crate::id::{ClientId, Secret};
use crate::store::{ClientRecord, StoreError};
use crate::throttle::ThrottleKey;

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
    /// Records `client_created` (actor from the context) with the client's insertion.
    pub async fn create_client(&self, name: &str) -> Result<NewClient, Error> {
        self.add_client(name, false).await
    }

    /// Registers a client with the admin scope: its credentials also open the admin API.
    pub async fn create_admin_client(&self, name: &str) -> Result<NewClient, Error> {
        self.add_client(name, true).await
    }

    async fn add_client(&self, name: &str, admin: bool) -> Result<NewClient, Error> {
        let secret = Secret::generate()?;
        let record = ClientRecord {
            id: ClientId::generate()?.as_str().to_owned(),
            name: name.to_owned(),
            secret_hash: secret.hash(),
            created_at: self.now(),
            admin,
        };
        let event = self
            .audit_event(AuditKind::ClientCreated)
            .detail("client_id", &record.id)
            .detail("name", &record.name);
        let clients = &self.inner.stores.clients;
        let inserted = if self.audits() {
            clients.insert_client_audited(&record, &event).await
        } else {
            clients
                .insert_client(&record)
                .await
                .map(Audited::left_to_caller)
        };
        match inserted {
            Ok(inserted) => self.settle(inserted, |()| true, event).await,
            Err(StoreError::Conflict) => return Err(Error::ClientNameTaken),
            Err(other) => return Err(other.into()),
        }
        tracing::info!(target: "tessera::audit", event = "client_created", client_id = %record.id, admin);
        Ok(NewClient { record, secret })
    }

    /// Every client, oldest first.
    pub async fn clients(&self) -> Result<Vec<ClientRecord>, Error> {
        Ok(self.inner.stores.clients.list_clients().await?)
    }

    /// Removes a client by name; [`Error::ClientNotFound`] if there is none. Records
    /// `client_deleted` (actor from the context) with the removal.
    pub async fn delete_client(&self, name: &str) -> Result<(), Error> {
        let event = self
            .audit_event(AuditKind::ClientDeleted)
            .detail("name", name);
        let clients = &self.inner.stores.clients;
        let deleted = if self.audits() {
            clients.delete_client_audited(name, &event).await?
        } else {
            Audited::left_to_caller(clients.delete_client(name).await?)
        };
        if self.settle(deleted, |deleted| *deleted, event).await {
            tracing::info!(target: "tessera::audit", event = "client_deleted", name);
            Ok(())
        } else {
            Err(Error::ClientNotFound)
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

    /// [`Engine::authenticate_client`] for credential checks that a client address could
    /// repeat at will (the admin API): refused with [`Error::RateLimited`] while `ip` is over
    /// the per-address login limit, and every failure counts towards that limit, like a
    /// failed login from the address.
    pub async fn authenticate_client_from(
        &self,
        id: &str,
        secret: &str,
        ip: Option<IpAddr>,
    ) -> Result<ClientRecord, Error> {
        let address = ip.map(ThrottleKey::for_address);
        let throttle = &self.inner.stores.throttle;
        let rule = self.inner.config.address_throttle;
        if let Some(address) = &address
            && let Some(retry_after) = throttle.blocked_for(address, rule, self.now()).await?
        {
            tracing::info!(target: "tessera::audit", event = "client_auth_throttled", retry_after_secs = retry_after.as_secs());
            return Err(Error::RateLimited { retry_after });
        }
        let result = self.authenticate_client(id, secret).await;
        if let (Err(Error::InvalidClient), Some(address)) = (&result, &address) {
            throttle.record_failure(address, rule, self.now()).await?;
            tracing::info!(
                target: "tessera::audit",
                event = "client_auth_failed",
                ip = ip.map(tracing::field::display),
            );
        }
        result
    }
}
