//! API clients (resource servers) and what they may ask: token introspection, revocation by
//! token, and the revocation feed.

use subtle::ConstantTimeEq;

use super::Engine;
use crate::error::Error;
use crate::id::{ClientId, RefreshToken, Secret, SessionId};
use crate::session::SessionRecord;
use crate::store::{ClientRecord, RefreshRecord, Revocation, StoreError};

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

    /// The refresh token's record and its session, if the token is unspent, unexpired and its
    /// session live — for introspection. Changes nothing.
    pub async fn inspect_refresh(
        &self,
        token: &RefreshToken,
    ) -> Result<Option<(RefreshRecord, SessionRecord)>, Error> {
        let now = self.now();
        let stores = &self.inner.stores;
        let Some(record) = stores.refresh.refresh_by_token(&token.hash()).await? else {
            return Ok(None);
        };
        if record.spent_at.is_some() || now >= record.expires_at {
            return Ok(None);
        }
        match stores.sessions.session_by_id(&record.session_id).await? {
            Some(session) if session.is_live(now) => Ok(Some((record, session))),
            _ => Ok(None),
        }
    }

    /// Revokes the session a refresh token belongs to (RFC 7009: revoking a refresh token
    /// ends the grant, access tokens included). `false` if the token is unknown.
    pub async fn revoke_by_refresh(&self, token: &RefreshToken) -> Result<bool, Error> {
        let Some(record) = self
            .inner
            .stores
            .refresh
            .refresh_by_token(&token.hash())
            .await?
        else {
            return Ok(false);
        };
        self.revoke_quietly(&record.session_id).await
    }

    /// Revokes a session by id if it is still live; `false` if it was not.
    pub async fn revoke_quietly(&self, id: &SessionId) -> Result<bool, Error> {
        match self.revoke_session(id).await {
            Ok(()) => Ok(true),
            Err(Error::SessionNotFound) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Revocations after `after`, oldest first, at most `limit`: the feed verifiers outside
    /// the server follow.
    pub async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Revocation>, Error> {
        Ok(self
            .inner
            .stores
            .sessions
            .revocations_since(after, limit)
            .await?)
    }

    /// The newest revocation sequence.
    pub async fn revocation_cursor(&self) -> Result<u64, Error> {
        Ok(self.inner.stores.sessions.revocation_cursor().await?)
    }
}
