//! [`RevocationNotifier`] for [`RedisStore`]: a dedicated RESP3 connection subscribed to
//! `<prefix>revocations`, on which every logged revocation publishes a wake-up.

use std::fmt;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind};
use tessera_core::{RevocationNotifier, RevocationSubscription, StoreError};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::{RedisStore, within};

#[async_trait]
impl RevocationNotifier for RedisStore {
    async fn subscribe(&self) -> Result<Box<dyn RevocationSubscription>, StoreError> {
        let options = &self.shared.options;
        let (pushes, receiver) = unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_push_sender(pushes);
        let mut connection = within(
            options.connect_timeout,
            self.shared
                .subscriber
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await?;
        within(
            options.command_timeout,
            connection.subscribe(self.key_names().channel()),
        )
        .await?;
        Ok(Box::new(RedisSubscription {
            _connection: connection,
            receiver,
        }))
    }
}

/// A subscription to one prefix's revocation wake-ups.
struct RedisSubscription {
    /// Kept so the connection stays open; messages arrive through `receiver`.
    _connection: MultiplexedConnection,
    receiver: UnboundedReceiver<PushInfo>,
}

impl fmt::Debug for RedisSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSubscription").finish_non_exhaustive()
    }
}

#[async_trait]
impl RevocationSubscription for RedisSubscription {
    async fn notified(&mut self) -> Result<(), StoreError> {
        loop {
            match self.receiver.recv().await {
                Some(push) if push.kind == PushKind::Message => {
                    // Fold whatever else is already queued into this one notification.
                    while let Ok(next) = self.receiver.try_recv() {
                        if next.kind == PushKind::Disconnection {
                            return Err(StoreError::unavailable(SubscriptionLost));
                        }
                    }
                    return Ok(());
                }
                Some(push) if push.kind == PushKind::Disconnection => {
                    return Err(StoreError::unavailable(SubscriptionLost));
                }
                // Subscription confirmations and other pushes carry no news.
                Some(_) => {}
                None => return Err(StoreError::unavailable(SubscriptionLost)),
            }
        }
    }
}

/// The subscription's connection dropped; messages may have been missed.
#[derive(Debug)]
struct SubscriptionLost;

impl fmt::Display for SubscriptionLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the Redis connection carrying revocation wake-ups was lost")
    }
}

impl std::error::Error for SubscriptionLost {}
