//! Why the middleware could not start, or why one fetch from Tessera failed.

/// Why [`TesseraAuthBuilder::build`](crate::TesseraAuthBuilder::build) failed. Nothing is
/// served on a guess: without discovery, keys and a first revocation snapshot there is no
/// layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The builder has no client credentials; the revocation feed needs them.
    #[error("client credentials are required to follow the revocation feed")]
    MissingClientCredentials,
    /// The audience is empty: every token would be refused.
    #[error("the audience must not be empty")]
    EmptyAudience,
    /// The HTTP client could not be built (TLS backend, resolver).
    #[error("the HTTP client could not be built")]
    HttpClient(#[source] reqwest::Error),
    /// The metadata document names another issuer than the one configured (RFC 8414 §3.3).
    #[error("the metadata document names the issuer {found:?}, not the one configured")]
    IssuerMismatch {
        /// The `issuer` the document names.
        found: String,
    },
    /// Session credentials are to be accepted, but the metadata names no
    /// `introspection_endpoint` to check them at.
    #[error("the metadata document names no introspection endpoint")]
    NoIntrospectionEndpoint,
    /// Discovery, the key set or the first revocation snapshot could not be fetched.
    #[error("fetching from Tessera failed")]
    Fetch(#[from] FetchError),
}

/// One request to Tessera that did not produce a usable document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Connecting, sending or reading failed, or the answer was not `200`.
    #[error("request to {url} failed")]
    Http {
        /// The URL requested.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The body is not the JSON document expected.
    #[error("the document at {url} is not valid")]
    Document {
        /// The URL requested.
        url: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The key set has a key the verifier refuses (private members, wrong `use`, weak RSA…).
    #[error("the key set has an unusable key")]
    Keys(#[from] tessera_jose::KeyError),
    /// A revocation entry's time is not an RFC 3339 timestamp.
    #[error("a revocation entry has an invalid time")]
    Time(#[from] humantime::TimestampError),
    /// A revocation entry of a kind this verifier does not know, or missing what its kind
    /// needs: the follower fails closed rather than skip it.
    #[error("a revocation entry is not understood: {0}")]
    Entry(&'static str),
    /// The revocation stream ended or broke; the follower reconnects.
    #[error("the revocation stream broke")]
    Stream(#[source] Box<dyn std::error::Error + Send + Sync>),
}
