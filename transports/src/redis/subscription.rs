//! A Redis subscription: a dedicated connection read by its own thread.
//!
//! The `redis` crate's blocking `PubSub` borrows its connection, so it cannot
//! be stored beside it; a reader thread owns both and forwards messages over a
//! channel — or, given a [`Deliver`], hands it each message itself, on its
//! own thread. Dropping the subscription stops the thread (within one poll
//! interval), which unsubscribes and closes the connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use redis::Connection;

use crate::{Deliver, Received, Subscription, TransportError};

/// How often the reader thread checks whether it should stop.
const POLL: Duration = Duration::from_millis(50);
/// After this long without a message the reader pings the server: a server
/// that stopped answering without closing the connection (a silent network
/// partition, a frozen process) would otherwise go unnoticed until TCP gives
/// up, while invalidations are being missed.
const HEALTH_CHECK_AFTER: Duration = Duration::from_secs(1);

/// A live subscription on its own Redis connection.
pub struct RedisSubscription {
    rx: mpsc::Receiver<Result<Received, TransportError>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RedisSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSubscription").finish_non_exhaustive()
    }
}

impl RedisSubscription {
    /// Subscribes on `conn` and starts the reader. Returns once Redis has
    /// confirmed the subscription, or with the error that prevented it.
    pub(super) fn start(
        conn: Connection,
        channels: &[&str],
        timeout: Duration,
        deliver: Option<Arc<dyn Deliver>>,
    ) -> Result<Self, TransportError> {
        let channels: Vec<String> = channels.iter().map(|c| (*c).to_owned()).collect();
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("aci-redis-subscriber".into())
                .spawn(move || {
                    let out = Out {
                        tx: &tx,
                        deliver: deliver.as_deref(),
                    };
                    read_loop(conn, &channels, timeout, &ready_tx, &out, &stop);
                })
                .map_err(|e| TransportError::Backend(Box::new(e)))?
        };
        let mut subscription = RedisSubscription {
            rx,
            stop,
            reader: Some(reader),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(subscription),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                subscription.shutdown();
                Err(TransportError::SubscriptionClosed)
            }
        }
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Where the reader puts what it reads.
struct Out<'a> {
    tx: &'a mpsc::Sender<Result<Received, TransportError>>,
    deliver: Option<&'a dyn Deliver>,
}

impl Out<'_> {
    /// Hands a message to the `Deliver`, or queues it; whether the
    /// receiving side is still there.
    fn message(&self, channel: &str, payload: &[u8]) -> bool {
        if self.deliver.is_some_and(|d| d.deliver(channel, payload)) {
            return true;
        }
        let received = Received {
            channel: channel.to_owned(),
            payload: Bytes::copy_from_slice(payload),
        };
        self.tx.send(Ok(received)).is_ok()
    }

    fn error(&self, e: TransportError) {
        let _ = self.tx.send(Err(e));
    }
}

fn read_loop(
    mut conn: Connection,
    channels: &[String],
    timeout: Duration,
    ready: &mpsc::Sender<Result<(), TransportError>>,
    out: &Out<'_>,
    stop: &AtomicBool,
) {
    let _ = conn.set_write_timeout(Some(timeout));
    let mut pubsub = conn.as_pubsub();
    serve(&mut pubsub, channels, timeout, ready, out, stop);
    // Dropping `PubSub` leaves subscribed mode: UNSUBSCRIBE, then a wait for
    // its replies, a whole timeout on a frozen server (the caller joins this
    // thread, so connecting to one took twice the timeout). The connection
    // is closed right after, which unsubscribes anyway: wait no longer.
    let _ = pubsub.set_read_timeout(Some(LEAVE_WAIT));
}

/// How long leaving subscribed mode waits for Redis's replies.
const LEAVE_WAIT: Duration = Duration::from_millis(1);

fn serve(
    pubsub: &mut redis::PubSub<'_>,
    channels: &[String],
    timeout: Duration,
    ready: &mpsc::Sender<Result<(), TransportError>>,
    out: &Out<'_>,
    stop: &AtomicBool,
) {
    if let Err(e) = pubsub.subscribe(channels) {
        let _ = ready.send(Err(TransportError::from_redis(e, timeout)));
        return;
    }
    // The crate ignores an error reply to `SUBSCRIBE` (no password, an ACL
    // user without channel rights): confirm before saying ready.
    if let Err(e) = confirm_subscribed(pubsub, timeout) {
        let _ = ready.send(Err(e));
        return;
    }
    let _ = ready.send(Ok(()));
    let mut last_heard = std::time::Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if last_heard.elapsed() >= HEALTH_CHECK_AFTER {
            if let Err(e) = health_check(pubsub, timeout) {
                out.error(e);
                return;
            }
            last_heard = std::time::Instant::now();
        }
        match pubsub.get_message() {
            Ok(msg) => {
                last_heard = std::time::Instant::now();
                if !out.message(msg.get_channel_name(), msg.get_payload_bytes()) {
                    return;
                }
            }
            Err(e) if e.is_timeout() => {}
            Err(e) => {
                out.error(TransportError::from_redis(e, timeout));
                return;
            }
        }
    }
}

/// Proves the connection is subscribed: in subscribed mode `PING` answers
/// `["pong", …]`; a connection whose `SUBSCRIBE` was refused answers a plain
/// `PONG`, or the refusal itself (`NOAUTH`).
fn confirm_subscribed(
    pubsub: &mut redis::PubSub<'_>,
    timeout: Duration,
) -> Result<(), TransportError> {
    let map = |e| TransportError::from_redis(e, timeout);
    pubsub.set_read_timeout(Some(timeout)).map_err(map)?;
    let answer = pubsub
        .ping::<redis::Value>()
        .and_then(redis::Value::extract_error)
        .map_err(map)?;
    if !matches!(answer, redis::Value::Array(_) | redis::Value::Push { .. }) {
        return Err(TransportError::Denied(
            "Redis refused the SUBSCRIBE: the user needs rights to the cache's channels (&{prefix}:{namespace}:*)".into(),
        ));
    }
    pubsub.set_read_timeout(Some(POLL)).map_err(map)
}

/// `PING` on the subscribed connection, answered within `timeout` or failed.
fn health_check(pubsub: &mut redis::PubSub<'_>, timeout: Duration) -> Result<(), TransportError> {
    let map = |e| TransportError::from_redis(e, timeout);
    pubsub.set_read_timeout(Some(timeout)).map_err(map)?;
    // Messages that arrive before the answer are kept for `get_message`.
    // An error reply parses as a `Value` too: extract it.
    pubsub
        .ping::<redis::Value>()
        .and_then(redis::Value::extract_error)
        .map_err(map)?;
    pubsub.set_read_timeout(Some(POLL)).map_err(map)
}

impl Subscription for RedisSubscription {
    fn recv(&mut self, timeout: Duration) -> Result<Option<Received>, TransportError> {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(message)) => Ok(Some(message)),
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(TransportError::SubscriptionClosed),
        }
    }
}

impl Drop for RedisSubscription {
    fn drop(&mut self) {
        self.shutdown();
    }
}
