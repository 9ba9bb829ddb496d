//! The few documents the middleware reads from Tessera, off the request path.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::FetchError;

/// Tessera as seen from this service: an HTTP client, a per-request timeout, and the client
/// credentials for the revocation feed.
#[derive(Debug)]
pub(crate) struct Tessera {
    pub(crate) http: reqwest::Client,
    pub(crate) timeout: Duration,
    pub(crate) credentials: ClientCredentials,
}

impl Tessera {
    /// `GET url`, answered `200`: the body bytes. `authenticated` sends the client
    /// credentials (HTTP Basic).
    pub(crate) async fn bytes(
        &self,
        url: &str,
        authenticated: bool,
    ) -> Result<Vec<u8>, FetchError> {
        let mut request = self.http.get(url).timeout(self.timeout);
        if authenticated {
            request = self.credentials.apply(request);
        }
        let failed = |source| FetchError::Http {
            url: url.to_owned(),
            source,
        };
        let response = request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed)?;
        Ok(response.bytes().await.map_err(failed)?.to_vec())
    }

    /// `POST url` with a form body and the client credentials (HTTP Basic), answered `200`,
    /// as a JSON document of type `T`.
    pub(crate) async fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<T, FetchError> {
        let request = self.http.post(url).timeout(self.timeout).form(form);
        let failed = |source| FetchError::Http {
            url: url.to_owned(),
            source,
        };
        let response = self
            .credentials
            .apply(request)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed)?;
        let body = response.bytes().await.map_err(failed)?;
        serde_json::from_slice(&body).map_err(|source| FetchError::Document {
            url: url.to_owned(),
            source,
        })
    }

    /// `GET url` as a JSON document of type `T`.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        url: &str,
        authenticated: bool,
    ) -> Result<T, FetchError> {
        let body = self.bytes(url, authenticated).await?;
        serde_json::from_slice(&body).map_err(|source| FetchError::Document {
            url: url.to_owned(),
            source,
        })
    }
}

/// The service's client credentials at Tessera (`tessera client add NAME`).
#[derive(Clone)]
pub(crate) struct ClientCredentials {
    pub(crate) id: String,
    pub(crate) secret: String,
}

impl ClientCredentials {
    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.basic_auth(&self.id, Some(&self.secret))
    }
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        formatter
            .debug_struct("ClientCredentials")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
