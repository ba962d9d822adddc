//! The cluster's subscriber: one dedicated connection per node that owns a
//! subscribed channel, each read by its own thread.
//!
//! The topology comes from `CLUSTER SLOTS`; each channel goes to the master
//! that owns its slot (`SSUBSCRIBE`), or, in classic mode, every channel to
//! one node (`SUBSCRIBE`: the cluster forwards every `PUBLISH` to every
//! node). A loss on any connection — an unsolicited `sunsubscribe` (the
//! slot moved), an error reply such as `MOVED` to the subscribe, a closed
//! connection, a health check unanswered within the timeout — ends the
//! whole subscription with an error: the cache drops what it may have
//! missed and subscribes again on its backoff, with a fresh topology.
//!
//! The connections speak RESP3, where everything a subscribed connection
//! receives is a push: the `redis` crate's blocking connection, after a
//! read timed out, skips the next *reply* as the late answer to the read
//! that gave up, but never a push. The health check is therefore not a
//! `PING` (its `PONG` is a reply, which would be skipped) but the first
//! channel's subscribe sent again, which Redis confirms with a push and
//! which changes nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aci_core::naming::slot_of;
use bytes::Bytes;
use redis::{Connection, ConnectionAddr, ProtocolVersion, Value};

use super::{PubSubMode, RedisClusterTransport};
use crate::{Deliver, Received, Subscription, TransportError};

/// How often a reader checks whether it should stop.
const POLL: Duration = Duration::from_millis(50);
/// After this long without a message a reader checks its node is there.
const HEALTH_CHECK_AFTER: Duration = Duration::from_secs(1);

/// Where readers put what they read and the error that ends them; whether
/// anyone is still listening.
pub(crate) type Sink = Arc<dyn Fn(Result<Received, TransportError>) -> bool + Send + Sync>;

/// A live subscription over the nodes that own its channels.
pub struct ClusterSubscription {
    /// What the readers send, unless they were given another sink.
    rx: Option<mpsc::Receiver<Result<Received, TransportError>>>,
    stop: Arc<AtomicBool>,
    readers: Vec<JoinHandle<()>>,
    nodes: Vec<String>,
}

impl std::fmt::Debug for ClusterSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSubscription")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

/// `(first slot, last slot, master host, master port)` of every range.
pub(super) fn slot_ranges(
    conn: &mut impl redis::ConnectionLike,
) -> redis::RedisResult<Vec<(u16, u16, String, u16)>> {
    let ranges: Vec<Value> = redis::cmd("CLUSTER").arg("SLOTS").query(conn)?;
    let malformed =
        || redis::RedisError::from((redis::ErrorKind::Parse, "malformed CLUSTER SLOTS answer"));
    ranges
        .into_iter()
        .map(|range| {
            let Value::Array(parts) = range else {
                return Err(malformed());
            };
            let start: u16 = redis::from_redis_value(parts.first().ok_or_else(malformed)?.clone())?;
            let end: u16 = redis::from_redis_value(parts.get(1).ok_or_else(malformed)?.clone())?;
            let Some(Value::Array(master)) = parts.get(2) else {
                return Err(malformed());
            };
            let host: String =
                redis::from_redis_value(master.first().ok_or_else(malformed)?.clone())?;
            let port: u16 = redis::from_redis_value(master.get(1).ok_or_else(malformed)?.clone())?;
            Ok((start, end, host, port))
        })
        .collect()
}

impl ClusterSubscription {
    /// Finds the node of every channel, subscribes on each, and returns once
    /// every node has confirmed, or with the first error.
    pub(super) fn start(
        transport: &RedisClusterTransport,
        channels: &[&str],
        deliver: Option<Arc<dyn Deliver>>,
    ) -> Result<Self, TransportError> {
        let (tx, rx) = mpsc::channel();
        let sink: Sink = Arc::new(move |item| tx.send(item).is_ok());
        let mut subscription = Self::start_into(transport, channels, deliver, sink)?;
        subscription.rx = Some(rx);
        Ok(subscription)
    }

    /// [`ClusterSubscription::start`], the readers sending into `sink`.
    pub(crate) fn start_into(
        transport: &RedisClusterTransport,
        channels: &[&str],
        deliver: Option<Arc<dyn Deliver>>,
        sink: Sink,
    ) -> Result<Self, TransportError> {
        let ranges = transport.with_connection(slot_ranges)?;
        let mut by_node: BTreeMap<(String, u16), Vec<String>> = BTreeMap::new();
        for channel in channels {
            let node = match transport.mode {
                PubSubMode::Sharded => {
                    let slot = slot_of(channel);
                    ranges
                        .iter()
                        .find(|(start, end, _, _)| (*start..=*end).contains(&slot))
                        .map(|(_, _, host, port)| (host.clone(), *port))
                        .ok_or_else(|| {
                            TransportError::Unavailable(
                                format!("no master owns the slot of channel {channel}").into(),
                            )
                        })?
                }
                // Any node hears every classic publish: the first master.
                PubSubMode::Classic => ranges
                    .iter()
                    .map(|(_, _, host, port)| (host.clone(), *port))
                    .min()
                    .ok_or_else(|| TransportError::Unavailable("no master known".into()))?,
            };
            by_node.entry(node).or_default().push((*channel).to_owned());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut subscription = ClusterSubscription {
            rx: None,
            stop: Arc::clone(&stop),
            readers: Vec::new(),
            nodes: by_node.keys().map(|(h, p)| format!("{h}:{p}")).collect(),
        };
        let mut confirmations = Vec::new();
        for ((host, port), channels) in by_node {
            let conn = connect(transport, &host, port)?;
            let (ready_tx, ready_rx) = mpsc::channel();
            let reader = Reader {
                channels,
                verbs: Verbs::of(transport.mode),
                timeout: transport.timeout,
                sink: Arc::clone(&sink),
                deliver: deliver.clone(),
                stop: Arc::clone(&stop),
            };
            let handle = std::thread::Builder::new()
                .name("aci-cluster-subscriber".into())
                .spawn(move || reader.run(conn, &ready_tx))
                .map_err(|e| TransportError::Backend(Box::new(e)))?;
            subscription.readers.push(handle);
            confirmations.push(ready_rx);
        }
        for ready in confirmations {
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(TransportError::SubscriptionClosed),
            }
        }
        Ok(subscription)
    }

    /// The nodes subscribed on, as `host:port`.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// A connection to one master with the seed's credentials, timeouts set;
/// refused if the node is not a master.
pub(super) fn connect(
    transport: &RedisClusterTransport,
    host: &str,
    port: u16,
) -> Result<Connection, TransportError> {
    let map = |e| TransportError::from_redis(e, transport.timeout);
    let addr = match transport.template.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host.to_owned(), port),
    };
    let resp3 = transport
        .template
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = transport
        .template
        .clone()
        .set_addr(addr)
        .set_redis_settings(resp3);
    let client = redis::Client::open(info).map_err(map)?;
    let mut conn = client
        .get_connection_with_timeout(transport.timeout)
        .map_err(map)?;
    conn.set_write_timeout(Some(transport.timeout))
        .map_err(map)?;
    conn.set_read_timeout(Some(transport.timeout))
        .map_err(map)?;
    // The topology may be a moment old: a master just demoted by a
    // failover still accepts a sharded subscribe, and may miss what its new
    // master publishes while it catches up. Subscribe on masters only; a
    // stale view fails here, and the subscription is tried again.
    let role: Vec<Value> = redis::cmd("ROLE").query(&mut conn).map_err(map)?;
    let is_master = match role.first() {
        Some(Value::BulkString(r)) => r == b"master",
        Some(Value::SimpleString(r)) => r == "master",
        _ => false,
    };
    if !is_master {
        return Err(TransportError::Unavailable(
            format!("{host}:{port} is no longer a master (the topology is changing)").into(),
        ));
    }
    Ok(conn)
}

/// The commands and message kinds of one Pub/Sub flavour.
#[derive(Clone, Copy)]
struct Verbs {
    subscribe: &'static str,
    subscribed: &'static [u8],
    unsubscribed: &'static [u8],
    message: &'static [u8],
}

impl Verbs {
    fn of(mode: PubSubMode) -> Self {
        match mode {
            PubSubMode::Sharded => Verbs {
                subscribe: "SSUBSCRIBE",
                subscribed: b"ssubscribe",
                unsubscribed: b"sunsubscribe",
                message: b"smessage",
            },
            PubSubMode::Classic => Verbs {
                subscribe: "SUBSCRIBE",
                subscribed: b"subscribe",
                unsubscribed: b"unsubscribe",
                message: b"message",
            },
        }
    }
}

/// One node's reader.
struct Reader {
    channels: Vec<String>,
    verbs: Verbs,
    timeout: Duration,
    sink: Sink,
    deliver: Option<Arc<dyn Deliver>>,
    stop: Arc<AtomicBool>,
}

/// What one frame read from a subscribed connection was.
enum Frame {
    Message(Vec<u8>, Vec<u8>),
    Subscribed,
    Unsubscribed(String),
    Other,
}

impl Reader {
    fn run(self, mut conn: Connection, ready: &mpsc::Sender<Result<(), TransportError>>) {
        let map = |e| TransportError::from_redis(e, self.timeout);
        // Subscribe and wait for one confirmation per channel. One command
        // per channel: a sharded subscribe names channels of one slot only.
        let subscribed = (|| {
            for channel in &self.channels {
                let mut cmd = redis::cmd(self.verbs.subscribe);
                cmd.arg(channel);
                conn.send_packed_command(&cmd.get_packed_command())
                    .map_err(map)?;
            }
            conn.set_read_timeout(Some(self.timeout)).map_err(map)?;
            let mut confirmed = 0;
            while confirmed < self.channels.len() {
                match self.read(&mut conn).map_err(map)? {
                    Frame::Subscribed => confirmed += 1,
                    Frame::Message(channel, payload) => {
                        if !self.hand_over(&channel, &payload) {
                            return Err(TransportError::SubscriptionClosed);
                        }
                    }
                    Frame::Unsubscribed(channel) => {
                        return Err(lost(&channel));
                    }
                    Frame::Other => {}
                }
            }
            conn.set_read_timeout(Some(POLL)).map_err(map)
        })();
        let failed = subscribed.is_err();
        let _ = ready.send(subscribed);
        if failed {
            return;
        }
        if let Err(e) = self.serve(&mut conn) {
            let _ = (self.sink)(Err(e));
        }
    }

    fn serve(&self, conn: &mut Connection) -> Result<(), TransportError> {
        let map = |e| TransportError::from_redis(e, self.timeout);
        let mut last_heard = Instant::now();
        let mut check_sent: Option<Instant> = None;
        let check = {
            let mut cmd = redis::cmd(self.verbs.subscribe);
            cmd.arg(self.channels.first());
            cmd.get_packed_command()
        };
        while !self.stop.load(Ordering::SeqCst) {
            match check_sent {
                Some(at) if at.elapsed() >= self.timeout => {
                    return Err(TransportError::Timeout(self.timeout));
                }
                None if last_heard.elapsed() >= HEALTH_CHECK_AFTER => {
                    conn.send_packed_command(&check).map_err(map)?;
                    check_sent = Some(Instant::now());
                }
                _ => {}
            }
            match self.read(conn) {
                Ok(frame) => {
                    last_heard = Instant::now();
                    match frame {
                        Frame::Message(channel, payload) => {
                            if !self.hand_over(&channel, &payload) {
                                return Ok(());
                            }
                        }
                        Frame::Subscribed => check_sent = None,
                        Frame::Unsubscribed(channel) => return Err(lost(&channel)),
                        Frame::Other => {}
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(map(e)),
            }
        }
        Ok(())
    }

    /// Reads one frame. An error reply (`MOVED` to the subscribe, `NOPERM`)
    /// is an error.
    fn read(&self, conn: &mut Connection) -> redis::RedisResult<Frame> {
        let value = conn.recv_response()?.extract_error()?;
        let parts = match value {
            Value::Array(parts) => parts,
            Value::Push { kind, data } => {
                let mut parts = vec![Value::BulkString(kind.to_string().into_bytes())];
                parts.extend(data);
                parts
            }
            _ => return Ok(Frame::Other),
        };
        let text = |v: Option<&Value>| match v {
            Some(Value::BulkString(b)) => b.clone(),
            Some(Value::SimpleString(s)) => s.clone().into_bytes(),
            _ => Vec::new(),
        };
        let kind = text(parts.first()).to_ascii_lowercase();
        Ok(if kind == self.verbs.message {
            Frame::Message(text(parts.get(1)), text(parts.get(2)))
        } else if kind == self.verbs.subscribed {
            Frame::Subscribed
        } else if kind == self.verbs.unsubscribed {
            Frame::Unsubscribed(String::from_utf8_lossy(&text(parts.get(1))).into_owned())
        } else {
            Frame::Other
        })
    }

    /// Hands a message to the `Deliver`, or queues it; whether anyone is
    /// still listening.
    fn hand_over(&self, channel: &[u8], payload: &[u8]) -> bool {
        let channel = String::from_utf8_lossy(channel);
        if self
            .deliver
            .as_deref()
            .is_some_and(|d| d.deliver(&channel, payload))
        {
            return true;
        }
        let received = Received {
            channel: channel.into_owned(),
            payload: Bytes::copy_from_slice(payload),
        };
        (self.sink)(Ok(received))
    }
}

/// The node stopped serving `channel` (its slot moved).
fn lost(channel: &str) -> TransportError {
    TransportError::ChannelLost {
        channel: channel.to_owned(),
    }
}

impl Subscription for ClusterSubscription {
    fn recv(&mut self, timeout: Duration) -> Result<Option<Received>, TransportError> {
        let Some(rx) = &self.rx else {
            // Started into another sink: nothing arrives here.
            std::thread::sleep(timeout);
            return Ok(None);
        };
        match rx.recv_timeout(timeout) {
            Ok(Ok(message)) => Ok(Some(message)),
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(TransportError::SubscriptionClosed),
        }
    }
}

impl Drop for ClusterSubscription {
    fn drop(&mut self) {
        self.shutdown();
    }
}
