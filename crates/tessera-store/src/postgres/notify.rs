//! [`RevocationNotifier`] for [`PgStore`]: `LISTEN` on the channel the `revocations` trigger
//! notifies (see `migrations-postgres/0002_revocation_notify.sql`).

use std::fmt;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tessera_core::{RevocationNotifier, RevocationSubscription, StoreError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{PgStore, bounded, unavailable};

/// An open `LISTEN` on a [`PgStore`]'s revocation channel; see
/// [`RevocationSubscription`].
///
/// It holds a connection of its own, outside the store's pool, until dropped. A background
/// task reads it, so [`notified`](RevocationSubscription::notified) can be cancelled (in a
/// `select!` beside a poll timer) without losing the connection's place.
pub struct PgSubscription {
    channel: String,
    /// `Ok` for notifications (at most one waits: the rest fold into it), then one `Err`
    /// when the connection is lost.
    events: mpsc::Receiver<Result<(), StoreError>>,
    reader: JoinHandle<()>,
}

impl fmt::Debug for PgSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSubscription")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl Drop for PgSubscription {
    fn drop(&mut self) {
        // The reader would otherwise wait on the connection until the next notification.
        self.reader.abort();
    }
}

/// The subscription's connection was lost.
#[derive(Debug)]
struct SubscriptionLost;

impl fmt::Display for SubscriptionLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the LISTEN connection was lost; subscribe again")
    }
}

impl std::error::Error for SubscriptionLost {}

#[async_trait]
impl RevocationNotifier for PgStore {
    async fn subscribe(&self) -> Result<Box<dyn RevocationSubscription>, StoreError> {
        if self.pool.is_closed() {
            return Err(unavailable(sqlx::Error::PoolClosed));
        }
        // A pool of one, only because `PgListener` opens its connection through a pool: the
        // connection stays out of the store's pool, so a long-lived subscription neither
        // takes a slot from queries nor holds up `close`.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.shared.connect_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with((*self.pool.connect_options()).clone());
        let channel = self.shared.channel.clone();
        let listener = bounded(self.shared.connect_timeout, async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // A lost connection ends the subscription rather than being replaced unseen:
            // notifications sent meanwhile are gone, so the caller must read the log again.
            listener.eager_reconnect(false);
            listener.listen(&channel).await?;
            Ok::<_, sqlx::Error>(listener)
        })
        .await?
        .map_err(unavailable)?;

        let (sender, events) = mpsc::channel(1);
        let reader = tokio::spawn(read_notifications(listener, sender));
        Ok(Box::new(PgSubscription {
            channel,
            events,
            reader,
        }))
    }
}

/// Forwards notifications from `listener` until its connection is lost or the subscription
/// is dropped.
async fn read_notifications(
    mut listener: PgListener,
    sender: mpsc::Sender<Result<(), StoreError>>,
) {
    let lost = loop {
        match listener.try_recv().await {
            Ok(Some(_)) => match sender.try_send(Ok(())) {
                // A full channel already holds a wake-up, which covers this one too.
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            },
            Ok(None) => break StoreError::unavailable(SubscriptionLost),
            Err(error) => break unavailable(error),
        }
    };
    // Ignored when the subscription is already gone.
    let _ = sender.send(Err(lost)).await;
}

#[async_trait]
impl RevocationSubscription for PgSubscription {
    async fn notified(&mut self) -> Result<(), StoreError> {
        match self.events.recv().await {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) => Err(error),
            None => Err(StoreError::unavailable(SubscriptionLost)),
        }
    }
}
