//! Background jobs of a serving instance: following the revocation log, purging ended
//! sessions and old audit events, reloading (and, when due, rotating) the signing keys.

use std::time::Duration;

use tessera_core::RevocationSubscription;

use crate::Services;

/// Keeps the engine's view of the revocation log current: at once when the stores push a
/// notification (PostgreSQL `NOTIFY`, Redis pub/sub), and every `poll` regardless, so a lost
/// notification costs at most one poll. After every (re)subscription the log is read, which
/// covers anything sent while disconnected. While this fails, the feed ages and the engine
/// stops answering from its cache once it is older than `revocation.max_staleness`.
pub(crate) async fn follow_revocations(services: Services, poll: Duration) {
    let Services {
        engine, notifier, ..
    } = services;
    // The engine read the log when it was built; the first poll is one period away.
    let mut poll_timer = tokio::time::interval_at(tokio::time::Instant::now() + poll, poll);
    poll_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut subscription: Option<Box<dyn RevocationSubscription>> = None;
    // Poll ticks left before the next attempt to (re)subscribe after a failure.
    let mut resubscribe_in = 0u32;
    let mut health = Health::new("reading the revocation log");
    loop {
        if subscription.is_none()
            && let Some(notifier) = &notifier
        {
            if resubscribe_in == 0 {
                match notifier.subscribe().await {
                    Ok(opened) => {
                        tracing::debug!("subscribed to revocation notifications");
                        subscription = Some(opened);
                    }
                    Err(error) => {
                        tracing::debug!(%error, "revocation notifications unavailable; polling");
                        resubscribe_in = 5;
                    }
                }
            } else {
                resubscribe_in -= 1;
            }
        }
        health.record(engine.sync_revocations().await);
        let notified = async {
            match subscription.as_mut() {
                Some(subscription) => subscription.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            outcome = notified => {
                if let Err(error) = outcome {
                    tracing::debug!(%error, "revocation notifications lost; resubscribing");
                    subscription = None;
                }
            }
            _ = poll_timer.tick() => {}
        }
    }
}

/// Purges ended sessions and audit events older than `audit_retention`, and reloads (and,
/// when due, rotates) the signing keys.
pub(crate) async fn maintain(
    services: Services,
    purge: Duration,
    key_reload: Duration,
    audit_retention: Duration,
) {
    let Services { engine, tokens, .. } = services;
    let mut purge_timer = tokio::time::interval(purge);
    let mut key_timer = tokio::time::interval(key_reload);
    for timer in [&mut purge_timer, &mut key_timer] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut health = Health::new("session maintenance");
    loop {
        let result: Result<(), Box<dyn std::error::Error + Send + Sync>> = tokio::select! {
            _ = purge_timer.tick() => match engine.purge_expired().await {
                Ok(purged) => {
                    if purged > 0 {
                        tracing::debug!(purged, "purged ended sessions");
                    }
                    engine.purge_audit(audit_retention).await.map(|purged| {
                        if purged > 0 {
                            tracing::debug!(purged, "purged old audit events");
                        }
                    }).map_err(Into::into)
                }
                Err(error) => Err(error.into()),
            },
            _ = key_timer.tick() => {
                tokens.sweep();
                match tokens.reload().await {
                    Ok(()) => tokens.rotate_if_due().await.map(|_| ()).map_err(Into::into),
                    Err(error) => Err(error.into()),
                }
            }
        };
        health.record(result);
    }
}

/// Whether a background job is failing, so it logs once per change between working and
/// failing rather than once per attempt.
#[derive(Debug)]
struct Health {
    job: &'static str,
    failing: bool,
}

impl Health {
    fn new(job: &'static str) -> Health {
        Health {
            job,
            failing: false,
        }
    }

    fn record<T, E: std::fmt::Display>(&mut self, result: Result<T, E>) {
        match (result, self.failing) {
            (Err(error), false) => {
                tracing::warn!(%error, job = self.job, "background job failing");
                self.failing = true;
            }
            (Ok(_), true) => {
                tracing::info!(job = self.job, "background job recovered");
                self.failing = false;
            }
            _ => {}
        }
    }
}
