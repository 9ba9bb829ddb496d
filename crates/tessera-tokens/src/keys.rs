//! Signing keys: generated on first start, persisted in the key store, rotated without
//! downtime, and re-read from the store so a rotation made by the CLI or another instance
//! reaches every running instance within `token.key_reload`. Readers take the current
//! keyring without a lock (`ArcSwap`).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tessera_core::store::KeyRecord;
use tessera_core::{Actor, AuditKind, Engine, KeyStore, TokenId};
use tessera_jose::{Algorithm, Keyring, Signer, StoredKey, Verifier, VerifierSettings};

use crate::error::TokenError;
use crate::settings::TokenSettings;
use crate::time::UnixSeconds;

/// The current keyring, the verifier built from it, and its key ids.
#[derive(Debug)]
pub(crate) struct Current {
    pub(crate) keyring: Keyring,
    pub(crate) verifier: Verifier,
    pub(crate) kids: Vec<String>,
    /// The most recently created key of the configured algorithm: `(kid, created_at)`.
    newest: Option<(String, i64)>,
}

/// The keys, shared by every clone.
#[derive(Debug)]
pub(crate) struct SigningKeys {
    current: ArcSwap<Current>,
    store: Arc<dyn KeyStore>,
    settings: TokenSettings,
    verifier_settings: VerifierSettings,
    /// How long an old key stays published after it stops signing: until every token it
    /// signed has expired.
    publish_after_retirement: Duration,
}

impl SigningKeys {
    /// Loads the keys, creating the first one if there is none for the configured algorithm.
    pub(crate) async fn start(
        store: Arc<dyn KeyStore>,
        settings: TokenSettings,
        access_ttl: Duration,
        now: UnixSeconds,
    ) -> Result<SigningKeys, TokenError> {
        let mut verifier_settings =
            VerifierSettings::new(settings.issuer.clone(), settings.audience.clone());
        verifier_settings.leeway = settings.leeway;
        // No token this server signs lives longer; one that claims to was not minted here.
        verifier_settings.max_lifetime = Some(access_ttl);
        if settings.algorithm != Algorithm::HS256 {
            create_first_key(store.as_ref(), settings.algorithm, now).await?;
        }
        let publish_after_retirement = access_ttl + settings.leeway;
        let keys = SigningKeys {
            current: ArcSwap::from_pointee(
                load(
                    store.as_ref(),
                    &settings,
                    &verifier_settings,
                    publish_after_retirement,
                )
                .await?,
            ),
            store,
            settings,
            verifier_settings,
            publish_after_retirement,
        };
        Ok(keys)
    }

    pub(crate) fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// Every stored key, oldest first, read from the store (not this instance's keyring).
    pub(crate) async fn stored(&self) -> Result<Vec<KeyRecord>, TokenError> {
        Ok(self.store.signing_keys().await?)
    }

    /// A verifier like the current one that accepts `audiences` instead of the configured
    /// ones (token exchange takes subject tokens issued for registered services).
    pub(crate) fn verifier_for(&self, audiences: Vec<String>) -> Verifier {
        let mut settings = self.verifier_settings.clone();
        settings.audiences = audiences;
        self.current.load().keyring.verifier(settings)
    }

    pub(crate) fn current(&self) -> arc_swap::Guard<Arc<Current>> {
        self.current.load()
    }

    pub(crate) fn signer(&self, now: UnixSeconds) -> Result<Signer, TokenError> {
        self.current
            .load()
            .keyring
            .signer(now.get())
            .ok_or(TokenError::NoSigningKey)
    }

    /// Re-reads the keys from the store. Returns whether a key known before is gone (deleted
    /// after a compromise, or long retired), so callers can drop what it vouched for.
    pub(crate) async fn reload(&self) -> Result<bool, TokenError> {
        let current = load(
            self.store.as_ref(),
            &self.settings,
            &self.verifier_settings,
            self.publish_after_retirement,
        )
        .await?;
        let previous = self.current.swap(Arc::new(current));
        let kept = self.current.load();
        Ok(previous.kids.iter().any(|kid| !kept.kids.contains(kid)))
    }

    /// Adds a new key that is published at once and signs after `key_publish_lead`, and
    /// records `key_rotated` with `engine`'s audit context.
    pub(crate) async fn rotate(
        &self,
        now: UnixSeconds,
        engine: &Engine,
    ) -> Result<String, TokenError> {
        if self.settings.algorithm == Algorithm::HS256 {
            return Err(TokenError::SymmetricRotation);
        }
        self.install(self.generate(now)?, now, engine, false).await
    }

    /// Rotates if the newest signing key is older than `key_rotation`, unless another
    /// instance is already doing it. Returns the new key id when this call rotated.
    ///
    /// Instances agree on one rotator per due key through the key store's atomic
    /// get-or-create: the first candidate stored under `rotation:<old kid>:<hour>` wins. The
    /// hour in the name lets a later attempt take over if the winner died before inserting
    /// its key.
    pub(crate) async fn rotate_if_due(
        &self,
        now: UnixSeconds,
        engine: &Engine,
    ) -> Result<Option<String>, TokenError> {
        let interval = UnixSeconds::of_duration(self.settings.key_rotation);
        if interval == 0 || self.settings.algorithm == Algorithm::HS256 {
            return Ok(None);
        }
        let due = |current: &Current| {
            current
                .newest
                .clone()
                .map(|(kid, created_at)| (kid, created_at.saturating_add(interval)))
                .filter(|(_, due_at)| *due_at <= now.get())
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
        let attempt = (now.get() - due_at) / 3600;
        let claim = format!("rotation:{newest_kid}:{attempt}");
        let candidate = TokenId::generate()?;
        let winner = self
            .store
            .server_secret(&claim, candidate.as_str().as_bytes())
            .await?;
        if winner != candidate.as_str().as_bytes() {
            // Another instance rotates; its key arrives with a reload.
            return Ok(None);
        }
        self.install(self.generate(now)?, now, engine, true)
            .await
            .map(Some)
    }

    fn generate(&self, now: UnixSeconds) -> Result<StoredKey, TokenError> {
        let activates_at = now.get() + UnixSeconds::of_duration(self.settings.key_publish_lead);
        Ok(StoredKey::generate(
            self.settings.algorithm,
            now.get(),
            activates_at,
        )?)
    }

    /// Stores `key` with its `key_rotated` audit event (by the schedule, or by whoever
    /// `engine`'s context names), retires the keys it replaces from its activation on,
    /// forgets keys whose tokens have all expired, and reloads.
    async fn install(
        &self,
        key: StoredKey,
        now: UnixSeconds,
        engine: &Engine,
        scheduled: bool,
    ) -> Result<String, TokenError> {
        let activates_at = key.activates_at;
        let mut event = engine
            .audit_event(AuditKind::KeyRotated)
            .detail("kid", &key.kid)
            .detail("algorithm", key.algorithm.as_str());
        if scheduled {
            event = event.actor(Actor::System).detail("reason", "schedule");
        }
        let inserted = self
            .store
            .insert_signing_key_audited(&record_of(&key), &event)
            .await?;
        if !inserted.recorded {
            engine.record_audit(event).await;
        }
        self.store
            .retire_signing_keys(&key.kid, activates_at)
            .await?;
        let forget_before = now.get()
            - UnixSeconds::of_duration(self.publish_after_retirement)
            - UnixSeconds::of_duration(self.settings.key_publish_lead);
        self.store
            .delete_signing_keys_retired_before(forget_before)
            .await?;
        tracing::info!(target: "tessera::audit", event = "key_rotated", kid = %key.kid, activates_at);
        self.reload().await?;
        Ok(key.kid)
    }
}

/// Creates the first signing key of `algorithm` unless one exists. When several instances
/// start on an empty store at once, one wins the claim and creates it; the others wait for it.
async fn create_first_key(
    keys: &dyn KeyStore,
    algorithm: Algorithm,
    now: UnixSeconds,
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
    let claim = format!(
        "first-key:{}:{}",
        algorithm.as_str(),
        now.get().div_euclid(60)
    );
    let candidate = TokenId::generate()?;
    let winner = keys
        .server_secret(&claim, candidate.as_str().as_bytes())
        .await?;
    if winner == candidate.as_str().as_bytes() {
        // The first key signs at once: nothing can have cached a JWKS without it yet.
        let key = StoredKey::generate(algorithm, now.get(), now.get())?;
        keys.insert_signing_key(&record_of(&key)).await?;
        keys.retire_signing_keys(&key.kid, now.get()).await?;
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
    settings: &TokenSettings,
    verifier_settings: &VerifierSettings,
    publish_after_retirement: Duration,
) -> Result<Current, TokenError> {
    let mut stored: Vec<StoredKey> = Vec::new();
    if settings.algorithm == Algorithm::HS256 {
        let secret = settings
            .hs256_secret
            .as_ref()
            .map(|secret| secret.bytes().to_vec())
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
        .filter(|key| key.algorithm == settings.algorithm)
        .max_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)))
        .map(|key| (key.kid.clone(), key.created_at));
    let keyring = Keyring::new(stored, publish_after_retirement)?;
    let verifier = keyring.verifier(verifier_settings.clone());
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
