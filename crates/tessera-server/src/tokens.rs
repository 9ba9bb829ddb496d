//! Access tokens: the signing keys (generated on first start, persisted, rotated without
//! downtime), signing the engine's grants into JWTs, and verifying bearer JWTs.
//!
//! The keyring is reloaded from the key store every few seconds, so a rotation made by the
//! CLI or another instance reaches every running instance within that period. Readers take
//! the current keyring without a lock (`ArcSwap`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use sha2::{Digest, Sha256};
use tessera_core::store::KeyRecord;
use tessera_core::{AccessGrant, KeyStore, StoreError, Timestamp, TokenId};
use tessera_jose::{
    AccessClaims, Algorithm, Audience, Keyring, StoredKey, Verifier, VerifierSettings,
};

use crate::config::TokenConfig;

/// Why the token machinery could not start or act.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The key store failed.
    #[error("the key store is unavailable")]
    Store(#[from] StoreError),
    /// A key could not be generated or parsed.
    #[error("invalid signing key")]
    Key(#[from] tessera_jose::KeyError),
    /// HS256 keys come from configuration: rotate by changing `token.hs256_secret`.
    #[error("an HS256 key is configured, not generated; change token.hs256_secret to rotate it")]
    SymmetricRotation,
    /// No key may sign right now (only during a misconfigured rotation).
    #[error("no signing key is active")]
    NoSigningKey,
    /// Signing failed.
    #[error("signing failed")]
    Sign(#[from] tessera_jose::SignError),
    /// The operating system's random number generator failed.
    #[error("no randomness available")]
    Randomness,
}

/// Verified tokens remembered at most; beyond it new ones are verified every time.
const VERIFIED_CACHE_CAPACITY: usize = 100_000;

/// The current keyring, the verifier built from it, and its key ids.
#[derive(Debug)]
struct Current {
    keyring: Keyring,
    verifier: Verifier,
    kids: Vec<String>,
    /// The most recently created key of the configured algorithm: `(kid, created_at)`.
    newest: Option<(String, i64)>,
}

/// Signing keys, signer and verifier, shared by the handlers.
#[derive(Debug, Clone)]
pub struct Tokens {
    current: Arc<ArcSwap<Current>>,
    /// Tokens already verified, by SHA-256 of the whole token, until they expire: a token
    /// seen before costs a hash and a map read instead of a signature check. Revocation is
    /// unaffected — the session is checked on every request after this.
    verified: Arc<DashMap<[u8; 32], Arc<AccessClaims>>>,
    /// About how many entries `verified` holds: `DashMap::len` would lock every shard on
    /// the path of every never-seen token. Recounted exactly by every sweep.
    verified_count: Arc<AtomicUsize>,
    keys: Arc<dyn KeyStore>,
    config: TokenConfig,
    issuer: String,
    settings: VerifierSettings,
}

impl Tokens {
    /// Loads the keys, creating the first one if there is none for the configured algorithm.
    pub async fn start(
        keys: Arc<dyn KeyStore>,
        config: &TokenConfig,
        issuer: String,
        now: i64,
    ) -> Result<Tokens, TokenError> {
        let mut settings = VerifierSettings::new(issuer.clone(), config.audience.clone());
        settings.leeway = config.leeway;
        if config.algorithm != Algorithm::HS256 {
            create_first_key(keys.as_ref(), config.algorithm, now).await?;
        }
        let current = load(keys.as_ref(), config, &settings).await?;
        Ok(Tokens {
            current: Arc::new(ArcSwap::from_pointee(current)),
            verified: Arc::new(DashMap::new()),
            verified_count: Arc::new(AtomicUsize::new(0)),
            keys,
            config: config.clone(),
            issuer,
            settings,
        })
    }

    /// Re-reads the keys from the store (picks up rotations made elsewhere).
    pub async fn reload(&self) -> Result<(), TokenError> {
        let current = load(self.keys.as_ref(), &self.config, &self.settings).await?;
        let previous = self.current.swap(Arc::new(current));
        // A key that disappeared (deleted after a compromise, or long retired) must not keep
        // vouching for tokens through the cache.
        let kept = self.current.load();
        if previous.kids.iter().any(|kid| !kept.kids.contains(kid)) {
            self.verified.clear();
            self.verified_count.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Drops verified tokens that have expired (called by the maintenance task).
    pub fn sweep(&self, now: i64) {
        let leeway = seconds(self.config.leeway);
        self.verified
            .retain(|_, claims| now < claims.exp.saturating_add(leeway));
        // Off the request path, so the exact (all-shard) count is affordable here.
        self.verified_count
            .store(self.verified.len(), Ordering::Relaxed);
    }

    /// Adds a new key that is published at once and signs after `publish_lead`; the keys it
    /// replaces stop signing then and stay published until their tokens have expired.
    pub async fn rotate(&self, now: i64) -> Result<String, TokenError> {
        if self.config.algorithm == Algorithm::HS256 {
            return Err(TokenError::SymmetricRotation);
        }
        let activates_at = now + seconds(self.config.key_publish_lead);
        let key = StoredKey::generate(self.config.algorithm, now, activates_at)?;
        self.install(key, now).await
    }

    /// Rotates if the newest signing key is older than `token.key_rotation`, unless another
    /// instance is already doing it. Returns the new key id when this call rotated.
    ///
    /// Instances agree on one rotator per due key through the key store's atomic
    /// get-or-create: the first candidate stored under `rotation:<old kid>:<hour>` wins. The
    /// hour in the name lets a later attempt take over if the winner died before inserting
    /// its key.
    pub async fn rotate_if_due(&self, now: i64) -> Result<Option<String>, TokenError> {
        let interval = seconds(self.config.key_rotation);
        if interval == 0 || self.config.algorithm == Algorithm::HS256 {
            return Ok(None);
        }
        let due = |current: &Current| {
            current
                .newest
                .clone()
                .map(|(kid, created_at)| (kid, created_at.saturating_add(interval)))
                .filter(|(_, due_at)| *due_at <= now)
        };
        if due(&self.current.load()).is_none() {
            return Ok(None);
        }
        // Decide on the store's view, not a possibly stale keyring, so every instance names
        // the same key in its claim.
        self.reload().await?;
        let Some((newest_kid, due_at)) = due(&self.current.load()) else {
            return Ok(None);
        };
        let attempt = (now - due_at) / 3600;
        let claim = format!("rotation:{newest_kid}:{attempt}");
        let candidate = TokenId::generate().map_err(|_| TokenError::Randomness)?;
        let winner = self
            .keys
            .server_secret(&claim, candidate.as_str().as_bytes())
            .await?;
        if winner != candidate.as_str().as_bytes() {
            // Another instance rotates; its key arrives with a reload.
            return Ok(None);
        }
        let activates_at = now + seconds(self.config.key_publish_lead);
        let key = StoredKey::generate(self.config.algorithm, now, activates_at)?;
        self.install(key, now).await.map(Some)
    }

    /// Stores `key`, retires the keys it replaces from its activation on, forgets keys whose
    /// tokens have all expired, and reloads.
    async fn install(&self, key: StoredKey, now: i64) -> Result<String, TokenError> {
        let activates_at = key.activates_at;
        self.keys.insert_signing_key(&record_of(&key)).await?;
        self.keys
            .retire_signing_keys(&key.kid, activates_at)
            .await?;
        let forget_before =
            now - seconds(self.publish_after_retirement()) - seconds(self.config.key_publish_lead);
        self.keys
            .delete_signing_keys_retired_before(forget_before)
            .await?;
        tracing::info!(target: "tessera::audit", event = "key_rotated", kid = %key.kid, activates_at);
        self.reload().await?;
        Ok(key.kid)
    }

    /// Signs an access grant into a compact JWS.
    pub fn sign(&self, grant: &AccessGrant, now: i64) -> Result<String, TokenError> {
        let current = self.current.load();
        let signer = current
            .keyring
            .signer(now)
            .ok_or(TokenError::NoSigningKey)?;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: grant.user_id.as_str().to_owned(),
            aud: Audience::Many(self.config.audience.clone()),
            exp: grant.expires_at.unix_millis().div_euclid(1000),
            iat: grant.issued_at.unix_millis().div_euclid(1000),
            nbf: None,
            jti: grant.token_id.clone(),
            sid: grant.session_id.as_str().to_owned(),
            scope: None,
            roles: Vec::new(),
            client_id: None,
        };
        Ok(signer.sign(&claims)?)
    }

    /// Verifies a bearer JWT (signature, header, issuer, audience, times), or finds it among
    /// the tokens verified before and not yet expired.
    pub fn verify(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Arc<AccessClaims>, tessera_jose::VerifyError> {
        let leeway = seconds(self.config.leeway);
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified.get(&key)
            && now < claims.exp.saturating_add(leeway)
        {
            return Ok(Arc::clone(claims.value()));
        }
        let claims = Arc::new(self.current.load().verifier.verify(token, now)?);
        if self.verified_count.load(Ordering::Relaxed) < VERIFIED_CACHE_CAPACITY
            && self.verified.insert(key, Arc::clone(&claims)).is_none()
        {
            self.verified_count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(claims)
    }

    /// The published verification keys as JSON.
    pub fn jwks_json(&self, now: i64) -> Vec<u8> {
        serde_json::to_vec(&self.current.load().keyring.jwks(now)).unwrap_or_default()
    }

    /// The `iss` of every token.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Access-token lifetime in whole seconds, for `expires_in`.
    pub fn access_ttl_seconds(&self, grant: &AccessGrant) -> i64 {
        (grant.expires_at.unix_millis() - grant.issued_at.unix_millis()).div_euclid(1000)
    }

    /// How long after a revocation a verifier must remember it: the longest an access token
    /// naming the session can still be accepted.
    pub fn remember_revocations_for(&self) -> Duration {
        self.config.access_ttl + self.config.leeway
    }

    fn publish_after_retirement(&self) -> Duration {
        publish_after_retirement(&self.config)
    }
}

/// Unix seconds of a timestamp.
pub fn unix_seconds(timestamp: Timestamp) -> i64 {
    timestamp.unix_millis().div_euclid(1000)
}

/// An old key stays published until every token it signed has expired.
fn publish_after_retirement(config: &TokenConfig) -> Duration {
    config.access_ttl + config.leeway
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// Creates the first signing key of `algorithm` unless one exists. When several instances
/// start on an empty store at once, one wins the claim and creates it; the others wait for it.
async fn create_first_key(
    keys: &dyn KeyStore,
    algorithm: Algorithm,
    now: i64,
) -> Result<(), TokenError> {
    let has_key = |records: &[KeyRecord]| {
        records
            .iter()
            .any(|key| key.algorithm == algorithm.as_str() && key.retired_at.is_none())
    };
    if has_key(&keys.signing_keys().await?) {
        return Ok(());
    }
    // The minute in the name lets a later start take over if the winner died first.
    let claim = format!("first-key:{}:{}", algorithm.as_str(), now.div_euclid(60));
    let candidate = TokenId::generate().map_err(|_| TokenError::Randomness)?;
    let winner = keys
        .server_secret(&claim, candidate.as_str().as_bytes())
        .await?;
    if winner == candidate.as_str().as_bytes() {
        // The first key signs at once: nothing can have cached a JWKS without it yet.
        let key = StoredKey::generate(algorithm, now, now)?;
        keys.insert_signing_key(&record_of(&key)).await?;
        keys.retire_signing_keys(&key.kid, now).await?;
        tracing::info!(target: "tessera::audit", event = "key_created", kid = %key.kid, algorithm = algorithm.as_str());
        return Ok(());
    }
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if has_key(&keys.signing_keys().await?) {
            return Ok(());
        }
    }
    Err(TokenError::NoSigningKey)
}

async fn load(
    keys: &dyn KeyStore,
    config: &TokenConfig,
    settings: &VerifierSettings,
) -> Result<Current, TokenError> {
    let mut stored: Vec<StoredKey> = Vec::new();
    if config.algorithm == Algorithm::HS256 {
        let secret = config
            .hs256_secret
            .as_ref()
            .map(|secret| secret.expose().as_bytes().to_vec())
            .unwrap_or_default();
        stored.push(StoredKey::hmac(secret, 0)?);
    } else {
        for record in keys.signing_keys().await? {
            let Ok(algorithm) = record.algorithm.parse::<Algorithm>() else {
                tracing::warn!(kid = %record.kid, "skipping a stored key of an unknown algorithm");
                continue;
            };
            stored.push(StoredKey {
                kid: record.kid,
                algorithm,
                secret: record.secret,
                created_at: record.created_at,
                activates_at: record.activates_at,
                retired_at: record.retired_at,
            });
        }
    }
    let kids = stored.iter().map(|key| key.kid.clone()).collect();
    let newest = stored
        .iter()
        .filter(|key| key.algorithm == config.algorithm)
        .max_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)))
        .map(|key| (key.kid.clone(), key.created_at));
    let keyring = Keyring::new(stored, publish_after_retirement(config))?;
    let verifier = keyring.verifier(settings.clone());
    Ok(Current {
        keyring,
        verifier,
        kids,
        newest,
    })
}

fn record_of(key: &StoredKey) -> KeyRecord {
    KeyRecord {
        kid: key.kid.clone(),
        algorithm: key.algorithm.as_str().to_owned(),
        secret: key.secret.clone(),
        created_at: key.created_at,
        activates_at: key.activates_at,
        retired_at: key.retired_at,
    }
}
