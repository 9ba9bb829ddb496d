//! What a client may hold on to: the cap on open connections, which connection gives way at
//! the cap, the deadline on request bodies, and backing off when accepting fails.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::BoxError;
use axum::body::Bytes;
use axum::http::StatusCode;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::problem::Problem;

/// The open connections, up to a cap.
#[derive(Debug)]
pub(super) struct Connections {
    cap: usize,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    /// By id, so in the order they were accepted: the first sheddable one is the oldest.
    open: BTreeMap<u64, Arc<Connection>>,
}

impl Connections {
    pub(super) fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections {
            cap: cap.max(1),
            table: Mutex::new(Table::default()),
        })
    }

    /// Registers a newly accepted connection. At the cap the oldest connection that is idle
    /// or still sending its request is shed to make room; when every connection is busy
    /// with a whole request, `None`: the caller closes the new one.
    ///
    /// Shedding the oldest slow connection, rather than refusing the newest, is what keeps
    /// `/healthz` (and any client that sends its request promptly) answered while a flood
    /// of slow or idle clients holds the cap: the flood can only evict itself.
    pub(super) fn admit(self: &Arc<Self>) -> Option<Admitted> {
        // No await while locked, and every critical section is a few map operations.
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.open.len() >= self.cap {
            let oldest = table
                .open
                .iter()
                .find(|(_, connection)| connection.sheddable())
                .map(|(id, _)| *id);
            let shed = table.open.remove(&oldest?)?;
            shed.shed.notify_one();
        }
        let id = table.next_id;
        table.next_id += 1;
        let connection = Arc::new(Connection {
            phase: AtomicU8::new(IDLE),
            shed: Notify::new(),
        });
        table.open.insert(id, Arc::clone(&connection));
        Some(Admitted {
            connections: Arc::clone(self),
            id,
            connection,
        })
    }

    fn release(&self, id: u64) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.open.remove(&id);
    }
}

/// A registered connection; dropping it frees its place.
#[derive(Debug)]
pub(super) struct Admitted {
    connections: Arc<Connections>,
    id: u64,
    /// What the connection is doing, shared with its requests.
    pub(super) connection: Arc<Connection>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections.release(self.id);
    }
}

/// Waiting for (or reading) a request head, or between requests.
const IDLE: u8 = 0;
/// The head is in; the body is still arriving.
const BODY: u8 = 1;
/// A handler has the whole request.
const BUSY: u8 = 2;
/// The body missed its deadline; the request is answered `408`.
const TIMED_OUT: u8 = 3;

/// One open connection, as the cap sees it.
#[derive(Debug)]
pub(super) struct Connection {
    phase: AtomicU8,
    shed: Notify,
}

impl Connection {
    /// Completes when the connection was shed to make room for a newer one.
    pub(super) async fn shed(&self) {
        self.shed.notified().await;
    }

    /// A request whose whole body is in (or that has none) reached its handler.
    pub(super) fn start_request(&self, has_body: bool) {
        let phase = if has_body { BODY } else { BUSY };
        self.phase.store(phase, Ordering::Relaxed);
    }

    /// The request was answered; whether its body missed the deadline.
    pub(super) fn finish_request(&self) -> bool {
        self.phase.swap(IDLE, Ordering::Relaxed) == TIMED_OUT
    }

    fn sheddable(&self) -> bool {
        self.phase.load(Ordering::Relaxed) != BUSY
    }

    fn body_complete(&self) {
        // Only from BODY: a timed-out request stays timed out.
        let _ = self
            .phase
            .compare_exchange(BODY, BUSY, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn time_out(&self) {
        self.phase.store(TIMED_OUT, Ordering::Relaxed);
    }
}

/// 408 `request_timeout`: the body did not arrive within `server.body_timeout`.
pub(super) fn request_timeout() -> Problem {
    Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "Request timeout",
        "the request body did not arrive in time",
    )
}

/// A request body that fails once `deadline` passes before its end has arrived, so a client
/// that trickles or stops its body cannot hold a connection (and a descriptor) for ever.
/// One deadline for the whole body: a timer reset by every frame would let one byte every
/// few seconds keep it open.
#[derive(Debug)]
pub(super) struct DeadlineBody {
    body: Incoming,
    deadline: Pin<Box<Sleep>>,
    connection: Arc<Connection>,
}

impl DeadlineBody {
    pub(super) fn new(body: Incoming, timeout: Duration, connection: Arc<Connection>) -> Self {
        DeadlineBody {
            body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            connection,
        }
    }
}

/// The body missed its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within server.body_timeout")]
struct BodyTimedOut;

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        // What has arrived wins over the deadline.
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(None) => {
                this.connection.body_complete();
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => {
                if this.body.is_end_stream() {
                    this.connection.body_complete();
                }
                Poll::Ready(Some(frame.map_err(Into::into)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.connection.time_out();
                    Poll::Ready(Some(Err(BodyTimedOut.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Failed accepts (out of descriptors, mostly): a growing pause between attempts, and a
/// warning at most every [`AcceptBackoff::WARN_EVERY`] that counts the ones not logged.
#[derive(Debug)]
pub(super) struct AcceptBackoff {
    pause: Duration,
    last_warning: Option<Instant>,
    suppressed: u64,
}

impl AcceptBackoff {
    const FIRST_PAUSE: Duration = Duration::from_millis(10);
    const LONGEST_PAUSE: Duration = Duration::from_secs(1);
    const WARN_EVERY: Duration = Duration::from_secs(5);

    pub(super) fn new() -> Self {
        AcceptBackoff {
            pause: Self::FIRST_PAUSE,
            last_warning: None,
            suppressed: 0,
        }
    }

    /// An accept succeeded: the next failure starts over with a short pause.
    pub(super) fn succeeded(&mut self) {
        self.pause = Self::FIRST_PAUSE;
    }

    /// An accept failed with `error`: how long to wait before the next one. Errors about a
    /// single connection (reset before it was accepted) need no pause.
    pub(super) fn failed(&mut self, error: &io::Error) -> Duration {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
        ) {
            return Duration::ZERO;
        }
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|last| now.duration_since(last) >= Self::WARN_EVERY)
        {
            tracing::warn!(
                %error,
                suppressed = self.suppressed,
                "accepting connections failed; backing off"
            );
            self.last_warning = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(Self::LONGEST_PAUSE);
        pause
    }
}

/// The default `server.max_connections`: first raises the soft open-file limit to the hard
/// one where the system allows, then leaves a quarter of it, and at least 64 plus the
/// database pool (but never more than half), to the stores, log files and the runtime.
pub(super) fn default_cap(database_connections: u32) -> usize {
    let limit = usize::try_from(open_file_limit()).unwrap_or(usize::MAX);
    let for_the_rest = (64 + database_connections as usize).min(limit / 2);
    let reserved = (limit / 4).max(for_the_rest);
    limit.saturating_sub(reserved).max(1)
}

/// The soft `RLIMIT_NOFILE` after raising it toward the hard limit.
#[cfg(unix)]
fn open_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    // Without a number (unlimited), assume the common default of 1024.
    const UNKNOWN: u64 = 1024;
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(UNKNOWN);
    match limit.maximum {
        Some(hard) if hard > soft => {
            let raised = Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => hard,
                Err(error) => {
                    tracing::debug!(%error, soft, hard, "could not raise the open-file limit");
                    soft
                }
            }
        }
        _ => soft,
    }
}

#[cfg(not(unix))]
fn open_file_limit() -> u64 {
    1024
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted_count(connections: &Connections) -> usize {
        connections.table.lock().unwrap().open.len()
    }

    #[test]
    fn at_the_cap_the_oldest_slow_connection_gives_way_and_busy_ones_never_do() {
        let connections = Connections::new(3);
        let first = connections.admit().unwrap();
        let second = connections.admit().unwrap();
        let third = connections.admit().unwrap();
        first.connection.start_request(false);
        second.connection.start_request(true);

        let fourth = connections.admit().unwrap();
        assert_eq!(admitted_count(&connections), 3);
        let shed = second.connection.shed.notified();
        assert!(futures_util::FutureExt::now_or_never(shed).is_some());

        fourth.connection.start_request(false);
        third.connection.start_request(false);
        assert!(connections.admit().is_none(), "every connection is busy");

        drop(fourth);
        assert_eq!(admitted_count(&connections), 2);
        assert!(connections.admit().is_some());
        drop((first, second, third));
    }

    #[test]
    fn accept_failures_back_off_to_a_second() {
        let mut backoff = AcceptBackoff::new();
        let exhausted = io::Error::other("too many open files");
        let pauses: Vec<Duration> = (0..9).map(|_| backoff.failed(&exhausted)).collect();
        assert_eq!(pauses[0], Duration::from_millis(10));
        assert_eq!(pauses[1], Duration::from_millis(20));
        assert_eq!(pauses[8], Duration::from_secs(1));
        assert_eq!(backoff.suppressed, 8);
        backoff.succeeded();
        assert_eq!(backoff.failed(&exhausted), Duration::from_millis(10));
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(backoff.failed(&reset), Duration::ZERO);
    }

    #[test]
    fn the_default_cap_leaves_room_below_the_open_file_limit() {
        let cap = default_cap(16);
        let limit = usize::try_from(open_file_limit()).unwrap();
        assert!(cap <= limit * 3 / 4, "{cap} of {limit}");
        assert!(cap + 80.min(limit / 2) <= limit, "{cap} of {limit}");
    }
}
