//! Session reads of concurrent requests, sent to Redis together: see "Reads under load" in
//! the module above. Sent one by one, each read costs Redis a wake-up, a `read` and a `write`,
//! and the server a `writev` and a `recvfrom`; under load that system time was most of the
//! cost of a session check.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tessera_core::StoreError;
use tokio::sync::{mpsc, oneshot};

use super::within;

/// Reads sent in one `MGET` at most; more wait for the next batch.
const MAX_BATCH: usize = 128;

/// One queued read: the key, and where its value goes.
struct Read {
    key: Vec<u8>,
    reply: oneshot::Sender<Result<Option<Vec<u8>>, StoreError>>,
}

/// The queue of a [`RedisStore`](super::RedisStore)'s session reads. Its task ends when the
/// last clone of the store is dropped.
pub(super) struct Reads {
    queue: mpsc::UnboundedSender<Read>,
}

impl Reads {
    /// Starts the task that sends queued reads over `connection`.
    pub(super) fn start(connection: ConnectionManager, timeout: Duration) -> Reads {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(send_batches(connection, timeout, waiting));
        Reads { queue }
    }

    /// The value at `key`, or `None`, within about the command timeout: the read's batch is
    /// sent at once and runs under that timeout, and a batch that ends any other way (its task
    /// dropped at shutdown, say) drops the reply, which fails the read.
    pub(super) async fn get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        let (reply, value) = oneshot::channel();
        self.queue
            .send(Read { key, reply })
            .map_err(|_| StoreError::unavailable(BatchFailed("the read queue is closed")))?;
        value
            .await
            .unwrap_or_else(|_| Err(StoreError::unavailable(BatchFailed("the read was dropped"))))
    }
}

/// Takes queued reads in batches and sends each batch in a task of its own, so a slow batch
/// never holds up the next.
async fn send_batches(
    connection: ConnectionManager,
    timeout: Duration,
    mut waiting: mpsc::UnboundedReceiver<Read>,
) {
    while let Some(first) = waiting.recv().await {
        // Let the other tasks that are ready in this turn of the scheduler queue their reads:
        // a yielded task runs again only after them.
        tokio::task::yield_now().await;
        let mut batch = Vec::with_capacity((waiting.len() + 1).min(MAX_BATCH));
        batch.push(first);
        while batch.len() < MAX_BATCH
            && let Ok(read) = waiting.try_recv()
        {
            batch.push(read);
        }
        tokio::spawn(send(connection.clone(), timeout, batch));
    }
}

/// Sends one batch and hands each value to its reader.
async fn send(mut connection: ConnectionManager, timeout: Duration, batch: Vec<Read>) {
    let values: Result<Vec<Option<Vec<u8>>>, StoreError> = if let [read] = &batch[..] {
        within(
            timeout,
            redis::cmd("GET")
                .arg(&read.key)
                .query_async(&mut connection),
        )
        .await
        .map(|value| vec![value])
    } else {
        let mut mget = redis::cmd("MGET");
        for read in &batch {
            mget.arg(&read.key);
        }
        within(timeout, mget.query_async(&mut connection)).await
    };
    match values {
        Ok(values) if values.len() == batch.len() => {
            for (read, value) in batch.into_iter().zip(values) {
                // A reader that gave up (timed out, or its request ended) dropped its end.
                let _ = read.reply.send(Ok(value));
            }
        }
        Ok(_) => fail(batch, || StoreError::corrupt(BatchFailed(MISCOUNTED))),
        Err(error) => {
            // One failure, shared by every reader of the batch.
            let error = Arc::new(error);
            fail(batch, || StoreError::unavailable(Arc::clone(&error)));
        }
    }
}

/// Fails every read of `batch` with an error from `error`.
fn fail(batch: Vec<Read>, error: impl Fn() -> StoreError) {
    for read in batch {
        let _ = read.reply.send(Err(error()));
    }
}

const MISCOUNTED: &str = "MGET answered a different number of values than it was sent keys";

/// Why a batched read failed without an error from Redis.
#[derive(Debug, Clone, Copy)]
struct BatchFailed(&'static str);

impl fmt::Display for BatchFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BatchFailed {}
