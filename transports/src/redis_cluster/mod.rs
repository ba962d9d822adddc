//! Redis Cluster through the `redis` crate's blocking cluster client, with a
//! sharded subscriber of our own.
//!
//! Data commands, scripts and publishes go through
//! `redis::cluster::ClusterConnection`, which follows `MOVED` and `ASK`
//! redirects itself, reads from masters only (a reader that refills after
//! an invalidation must not read a lagging replica), and refreshes its slot
//! map when a slot moves. Pub/Sub does not: the crate's cluster Pub/Sub does
//! not keep sharded subscriptions alive across a slot move or a failover
//! (`../shared/DESIGN.md`, "Redis Cluster"), so [`ClusterSubscription`]
//! keeps one dedicated connection per node that owns one of the channels.

#[cfg(feature = "tokio")]
mod asynchronous;
mod direct;
mod subscription;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{ConnectionInfo, RedisResult};

#[cfg(feature = "tokio")]
pub use asynchronous::{ClusterAsyncSubscription, RedisClusterAsyncTransport};
pub use subscription::ClusterSubscription;

use crate::lease::scripts;
use crate::redis::{
    lean_connection_info, lease_acquire_cmd, lease_query_cmd, lease_release_cmd, lease_renew_cmd,
    scan_cmd, with_ttl,
};
use crate::{Deliver, LeaseState, Outgoing, Transport, TransportError};

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 16;

/// How messages travel on the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PubSubMode {
    /// Sharded Pub/Sub (`SPUBLISH` / `SSUBSCRIBE`): a message is carried by
    /// the shard that owns its channel's slot. The default.
    Sharded,
    /// Plain `PUBLISH` / `SUBSCRIBE`, which a cluster forwards to every
    /// node: for a fleet mixed with the Python original, which subscribes
    /// so. Costs the cluster bus one message per node per publish.
    Classic,
}

impl PubSubMode {
    /// The command that publishes in this mode.
    fn publish_verb(self) -> &'static str {
        match self {
            PubSubMode::Sharded => "SPUBLISH",
            PubSubMode::Classic => "PUBLISH",
        }
    }
}

/// Redis Cluster through blocking connections: a small pool of cluster
/// connections for commands (each follows redirects and keeps a slot map),
/// and per subscription one dedicated connection per node that owns a
/// subscribed channel.
///
/// Seeds are the `redis` crate's URLs (`redis://[user:password@]host:port`);
/// any reachable node will do, the rest of the topology is discovered. Every
/// operation fails after the timeout (default 1 s).
///
/// ```no_run
/// use aci_transports::{RedisClusterTransport, Transport};
/// let cluster = RedisClusterTransport::open(["redis://127.0.0.1:7001", "redis://127.0.0.1:7002"])?;
/// cluster.set("greeting", b"hello", std::time::Duration::from_secs(10), &[])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisClusterTransport {
    client: ClusterClient,
    seeds: Vec<ConnectionInfo>,
    /// The first seed's connection settings (credentials, TLS): what a
    /// subscriber's connection to a discovered node uses.
    template: ConnectionInfo,
    timeout: Duration,
    mode: PubSubMode,
    idle: Mutex<Vec<ClusterConnection>>,
    /// Bumped by [`Transport::close`]: connections checked out before are
    /// not pooled again.
    generation: AtomicU64,
    /// A write and its publishes in one round trip when one master owns
    /// them all.
    direct: direct::Direct,
}

impl std::fmt::Debug for RedisClusterTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClusterTransport")
            .field("seed", self.template.addr())
            .field("timeout", &self.timeout)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl RedisClusterTransport {
    /// A transport for the cluster that `seeds` belong to. Nothing is
    /// connected yet; an empty list or a malformed URL is an error.
    pub fn open<I, S>(seeds: I) -> Result<Self, TransportError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let infos = seeds
            .into_iter()
            .map(|seed| lean_connection_info(seed.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let template = infos
            .first()
            .cloned()
            .ok_or_else(|| TransportError::Backend("no seed node given".into()))?;
        Self::build(infos, template, Duration::from_secs(1), PubSubMode::Sharded)
    }

    fn build(
        seeds: Vec<ConnectionInfo>,
        template: ConnectionInfo,
        timeout: Duration,
        mode: PubSubMode,
    ) -> Result<Self, TransportError> {
        crate::redis::ensure_crypto_provider();
        let client = cluster_client(&seeds, &template, timeout)
            .map_err(|e| TransportError::Backend(Box::new(e)))?;
        Ok(RedisClusterTransport {
            client,
            seeds,
            template,
            timeout,
            mode,
            idle: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            direct: direct::Direct::default(),
        })
    }

    /// The name (`CLIENT SETNAME`) of the connections that carry a write
    /// and its publishes in one round trip, when one master owns the key
    /// and every channel; other writes take two, through the cluster
    /// client (the publishes only once the write is acknowledged).
    pub const WRITE_CONNECTION_NAME: &'static str = "aci-cache:write";

    /// Sets how long any operation may take before failing (default 1 s).
    /// Zero is treated as 1 ms.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        let timeout = timeout.max(Duration::from_millis(1));
        // The same seeds built a client before: this cannot fail.
        if let Ok(client) = cluster_client(&self.seeds, &self.template, timeout) {
            self.client = client;
            self.timeout = timeout;
        }
        self
    }

    /// Sets how messages travel (default [`PubSubMode::Sharded`]).
    pub fn with_pubsub(mut self, mode: PubSubMode) -> Self {
        self.mode = mode;
        self
    }

    /// The operation timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How messages travel.
    pub fn pubsub(&self) -> PubSubMode {
        self.mode
    }

    /// Runs `op` on a pooled cluster connection. A connection that failed
    /// other than with an error reply is dropped, not reused.
    fn with_connection<T>(
        &self,
        op: impl FnOnce(&mut ClusterConnection) -> RedisResult<T>,
    ) -> Result<T, TransportError> {
        let map = |e| TransportError::from_redis(e, self.timeout);
        let generation = self.generation.load(Ordering::SeqCst);
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.client.get_connection().map_err(map)?,
        };
        let result = op(&mut conn);
        let reusable = match &result {
            Ok(_) => true,
            Err(e) => e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
        };
        if reusable {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE && self.generation.load(Ordering::SeqCst) == generation {
                idle.push(conn);
            }
        }
        result.map_err(map)
    }

    /// Publishes `messages` one by one, in order, each to the node that
    /// owns its channel (sharded) or to any node (classic).
    fn publish_each(
        &self,
        conn: &mut ClusterConnection,
        messages: &[Outgoing<'_>],
    ) -> RedisResult<()> {
        let verb = self.mode.publish_verb();
        for m in messages {
            redis::cmd(verb)
                .arg(m.channel)
                .arg(m.payload)
                .query::<i64>(conn)?;
        }
        Ok(())
    }

    /// A data command, then — only once it is acknowledged — its publishes:
    /// a subscriber that reacts to the message by reading the key sees the
    /// new value, whichever nodes hold the key and the channel. A failure
    /// of the publishes alone is [`TransportError::Unpublished`].
    fn then_publish<T>(
        &self,
        then: &[Outgoing<'_>],
        data: impl FnOnce(&mut ClusterConnection) -> RedisResult<T>,
    ) -> Result<T, TransportError> {
        let answer = self.with_connection(|conn| {
            let answer = data(conn)?;
            Ok((answer, self.publish_each(conn, then)))
        })?;
        match answer {
            (answer, Ok(())) => Ok(answer),
            (_, Err(e)) => Err(TransportError::unpublished(e, self.timeout)),
        }
    }

    /// `write` on `key`, then `then`'s publishes: in one round trip when
    /// one master owns the key and every channel (see [`direct`]), else
    /// with [`RedisClusterTransport::then_publish`].
    fn write_then_publish<T: redis::FromRedisValue>(
        &self,
        key: &str,
        write: &redis::Cmd,
        then: &[Outgoing<'_>],
    ) -> Result<T, TransportError> {
        if let Some(node) = (!then.is_empty())
            .then(|| self.direct.node_for(self, key, then))
            .flatten()
        {
            match self
                .direct
                .run(self, &node, write, then, self.mode.publish_verb())?
            {
                direct::Outcome::Done(answer) => return Ok(answer),
                direct::Outcome::WrittenNotPublished(answer) => {
                    return self
                        .with_connection(|c| self.publish_each(c, then))
                        .map(|()| answer)
                        .map_err(|e| TransportError::Unpublished(Box::new(e)));
                }
                direct::Outcome::NotRun => {}
            }
        }
        self.then_publish(then, |c| write.query(c))
    }

    /// Runs `pipe` (commands of many slots, each node sent its share at
    /// once); when the cluster refused some of them with a redirect — a slot
    /// being moved (`ASK`, `TRYAGAIN`) or just moved (`MOVED`) — runs
    /// `one_by_one` instead, whose single commands follow redirects. The
    /// `redis` crate's cluster pipeline hands redirects back as errors
    /// rather than following them; a user must not see them.
    fn pipeline_or_one_by_one<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::cluster::ClusterPipeline,
        one_by_one: impl Fn(&mut ClusterConnection) -> RedisResult<T>,
    ) -> Result<T, TransportError> {
        self.with_connection(|c| match pipe.query(c) {
            Err(e) if redirected(&e) => one_by_one(c),
            other => other,
        })
    }

    /// The masters, as `(host, port)`, sorted: the order a scan visits them.
    fn masters(&self) -> Result<Vec<(String, u16)>, TransportError> {
        let ranges = self.with_connection(subscription::slot_ranges)?;
        let mut masters: Vec<(String, u16)> = ranges
            .into_iter()
            .map(|(_, _, host, port)| (host, port))
            .collect();
        masters.sort();
        masters.dedup();
        Ok(masters)
    }
}

/// A scan's cursor packs the master's index (top 16 bits) with that
/// master's own `SCAN` cursor (the low 48).
const NODE_SHIFT: u32 = 48;
const NODE_CURSOR: u64 = (1 << NODE_SHIFT) - 1;

impl Transport for RedisClusterTransport {
    type Subscription = ClusterSubscription;

    fn get(&self, key: &str) -> Result<Option<Bytes>, TransportError> {
        let value: Option<Vec<u8>> =
            self.with_connection(|c| redis::cmd("GET").arg(key).query(c))?;
        Ok(value.map(Bytes::from))
    }

    fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Option<Duration>)>, TransportError> {
        // `GET` and `PTTL` of one key: one slot, one node, one round trip.
        let mut pipe = redis::cluster::cluster_pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let answer = self.pipeline_or_one_by_one(&pipe, |c| get_then_pttl(c, key))?;
        Ok(with_ttl(answer))
    }

    fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError> {
        let mut write = redis::cmd("SET");
        write.arg(key).arg(value).arg("PX").arg(px_millis(ttl));
        self.write_then_publish(key, &write, then)
    }

    fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<bool, TransportError> {
        let mut write = redis::cmd("SET");
        write
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(px_millis(ttl));
        let written: Option<String> = self.write_then_publish(key, &write, then)?;
        Ok(written.is_some())
    }

    fn get_many_with_ttl(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Option<(Bytes, Option<Duration>)>>, TransportError> {
        // Keys of many slots: `MGET` would be refused as CROSSSLOT. The
        // cluster pipeline sends each node its keys' commands at once.
        let mut pipe = redis::cluster::cluster_pipe();
        for key in keys {
            pipe.cmd("GET").arg(*key).cmd("PTTL").arg(*key);
        }
        let answer: Vec<(Option<Vec<u8>>, i64)> = if keys.is_empty() {
            Vec::new()
        } else {
            self.pipeline_or_one_by_one(&pipe, |c| {
                keys.iter().map(|key| get_then_pttl(c, key)).collect()
            })?
        };
        Ok(answer.into_iter().map(with_ttl).collect())
    }

    fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError> {
        let mut pipe = redis::cluster::cluster_pipe();
        for (key, value) in entries {
            pipe.cmd("SET")
                .arg(*key)
                .arg(*value)
                .arg("PX")
                .arg(px_millis(ttl))
                .ignore();
        }
        let one_by_one = |c: &mut ClusterConnection| {
            for (key, value) in entries {
                redis::cmd("SET")
                    .arg(*key)
                    .arg(*value)
                    .arg("PX")
                    .arg(px_millis(ttl))
                    .query::<()>(c)?;
            }
            Ok(())
        };
        self.then_publish(then, |c| {
            if entries.is_empty() {
                return Ok(());
            }
            match pipe.query::<()>(c) {
                // Writing a key again with the same value and TTL is harmless.
                Err(e) if redirected(&e) => one_by_one(c),
                other => other,
            }
        })
    }

    fn delete(&self, key: &str, then: &[Outgoing<'_>]) -> Result<bool, TransportError> {
        let mut write = redis::cmd("DEL");
        write.arg(key);
        let removed: i64 = self.write_then_publish(key, &write, then)?;
        Ok(removed > 0)
    }

    fn publish(&self, messages: &[Outgoing<'_>]) -> Result<(), TransportError> {
        if messages.is_empty() {
            return Ok(());
        }
        self.with_connection(|c| self.publish_each(c, messages))
    }

    fn subscribe(&self, channels: &[&str]) -> Result<ClusterSubscription, TransportError> {
        ClusterSubscription::start(self, channels, None)
    }

    fn subscribe_delivering(
        &self,
        channels: &[&str],
        deliver: Arc<dyn Deliver>,
    ) -> Result<ClusterSubscription, TransportError> {
        ClusterSubscription::start(self, channels, Some(deliver))
    }

    fn flush_db(&self) -> Result<(), TransportError> {
        // The cluster client sends `FLUSHDB` to every master.
        self.with_connection(|c| redis::cmd("FLUSHDB").query::<()>(c))
    }

    fn scan_prefix(
        &self,
        cursor: u64,
        prefix: &str,
        count: usize,
    ) -> Result<(u64, Vec<String>), TransportError> {
        let masters = self.masters()?;
        let index = usize::try_from(cursor >> NODE_SHIFT).unwrap_or(usize::MAX);
        let Some((host, port)) = masters.get(index) else {
            return Ok((0, Vec::new()));
        };
        let cmd = scan_cmd(cursor & NODE_CURSOR, prefix, count);
        let route = redis::cluster_routing::RoutingInfo::SingleNode(
            redis::cluster_routing::SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port: *port,
            },
        );
        let answer = self.with_connection(|c| c.route_command(&cmd, route))?;
        let (next, keys): (u64, Vec<String>) =
            redis::from_redis_value(answer).map_err(|e| TransportError::Backend(Box::new(e)))?;
        if next > NODE_CURSOR {
            return Err(TransportError::Backend(
                "a node's SCAN cursor does not fit 48 bits".into(),
            ));
        }
        let next = match (next, index + 1 < masters.len()) {
            (0, true) => ((index as u64) + 1) << NODE_SHIFT,
            (0, false) => 0,
            (next, _) => ((index as u64) << NODE_SHIFT) | next,
        };
        Ok((next, keys))
    }

    fn unlink(&self, keys: &[String], then: &[Outgoing<'_>]) -> Result<u64, TransportError> {
        let mut pipe = redis::cluster::cluster_pipe();
        for key in keys {
            pipe.cmd("UNLINK").arg(key);
        }
        let removed: Vec<u64> = self.then_publish(then, |c| {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            match pipe.query(c) {
                // Removed again one by one, a key the pipeline did remove
                // counts 0: under a slot move the count may fall short.
                Err(e) if redirected(&e) => keys
                    .iter()
                    .map(|key| redis::cmd("UNLINK").arg(key).query(c))
                    .collect(),
                other => other,
            }
        })?;
        Ok(removed.iter().sum())
    }

    fn close(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        idle.clear();
        self.direct.close();
    }

    // The lease and its term counter share a hash tag (`aci:{ns}:lease`,
    // `aci:{ns}:lease:term`): each script runs on the one master of that slot.

    fn lease_acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        min_term: u64,
    ) -> Result<LeaseState, TransportError> {
        let cmd = lease_acquire_cmd(key, holder, ttl, min_term);
        self.with_connection(|c| cmd.query(c)).map(scripts::state)
    }

    fn lease_renew(
        &self,
        key: &str,
        holder: &str,
        term: u64,
        ttl: Duration,
    ) -> Result<LeaseState, TransportError> {
        let cmd = lease_renew_cmd(key, holder, term, ttl);
        self.with_connection(|c| cmd.query(c)).map(scripts::state)
    }

    fn lease_query(&self, key: &str) -> Result<LeaseState, TransportError> {
        let cmd = lease_query_cmd(key);
        self.with_connection(|c| cmd.query(c)).map(scripts::state)
    }

    fn lease_release(&self, key: &str, holder: &str, term: u64) -> Result<(), TransportError> {
        let cmd = lease_release_cmd(key, holder, term);
        self.with_connection(|c| cmd.query::<i64>(c)).map(drop)
    }
}

/// Whether `error` is a pipeline's redirects only (`MOVED`, `ASK`,
/// `TRYAGAIN`): the commands they name were refused, not run.
fn redirected(error: &redis::RedisError) -> bool {
    use redis::ServerErrorKind::{Ask, Moved, TryAgain};
    error.clone().into_server_errors().is_some_and(|errors| {
        !errors.is_empty()
            && errors
                .iter()
                .all(|(_, e)| matches!(e.kind(), Some(Moved | Ask | TryAgain)))
    })
}

/// `GET` then `PTTL` of `key` as two single commands, each following its
/// redirect.
fn get_then_pttl(c: &mut ClusterConnection, key: &str) -> RedisResult<(Option<Vec<u8>>, i64)> {
    let value: Option<Vec<u8>> = redis::cmd("GET").arg(key).query(c)?;
    let left: i64 = redis::cmd("PTTL").arg(key).query(c)?;
    Ok((value, left))
}

/// The cluster client for `seeds`, with the first seed's credentials and
/// `timeout` for connecting and for every reply.
fn cluster_client(
    seeds: &[ConnectionInfo],
    template: &ConnectionInfo,
    timeout: Duration,
) -> RedisResult<ClusterClient> {
    // The client retries a failed command (reconnecting to a dead node,
    // following a redirect): two retries cover a `MOVED` then an `ASK`,
    // and each attempt gets half the timeout, so that a call to a frozen
    // node fails within about 1.5× the timeout instead of 16 attempts.
    let attempt = (timeout / 2).max(Duration::from_millis(1));
    let mut builder = ClusterClient::builder(seeds.to_vec())
        .connection_timeout(attempt)
        .response_timeout(attempt)
        .retries(2);
    if let Some(user) = template.redis_settings().username() {
        builder = builder.username(user);
    }
    if let Some(password) = template.redis_settings().password() {
        builder = builder.password(password);
    }
    builder.build()
}

/// A TTL as `PX` takes it: whole milliseconds, at least 1.
fn px_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
