//! The Redis transport, on the `redis` crate's blocking connections.

mod subscription;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use redis::{Client, Connection, IntoConnectionInfo, RedisResult};

pub use subscription::RedisSubscription;

use crate::error::{split_publish_failure, split_publish_failure_after};
use crate::lease::{lease_value, millis, scripts, term_key};
use crate::{Deliver, LeaseState, Outgoing, Transport, TransportError};

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 16;

/// Redis through blocking connections: a small pool for commands, one
/// dedicated connection (and reader thread) per subscription.
///
/// URLs are the `redis` crate's: `redis://[user:password@]host:port[/db]`,
/// or `unix:///path`. Every operation, connecting included, fails after the
/// timeout (default 1 s) instead of hanging on a dead server.
///
/// ```no_run
/// use aci_transports::{RedisTransport, Transport};
/// let redis = RedisTransport::open("redis://127.0.0.1:6379")?;
/// redis.set("greeting", b"hello", std::time::Duration::from_secs(10), &[])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisTransport {
    client: Client,
    /// `client` without its database: connecting through it sends at most
    /// one command (`AUTH`), and `SELECT` follows within what is left of
    /// the budget (see [`RedisTransport::connect`]).
    connector: Client,
    /// The database to select, when not 0.
    db: i64,
    timeout: Duration,
    /// Idle connections, each with the read timeout its socket has now.
    idle: Mutex<Vec<(Connection, Duration)>>,
    /// Bumped by [`Transport::close`]: a connection checked out before it
    /// is closed when its call ends, not pooled.
    generation: AtomicU64,
}

impl std::fmt::Debug for RedisTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTransport")
            .field("server", &self.client.get_connection_info().addr())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisTransport {
    /// A transport for the server at `url`. Nothing is connected yet.
    /// `rediss://` URLs need the `tls` feature.
    pub fn open<T: IntoConnectionInfo>(url: T) -> Result<Self, TransportError> {
        let client = Client::open(lean_connection_info(url)?)
            .map_err(|e| TransportError::Backend(Box::new(e)))?;
        Ok(Self::from_client(client))
    }

    /// A transport over an existing client (for example one made with
    /// `redis::Client::build_with_tls` to trust a private CA).
    pub fn from_client(client: Client) -> Self {
        ensure_crypto_provider();
        let info = client.get_connection_info().clone();
        let db = info.redis_settings().db();
        let settings = info.redis_settings().clone().set_db(0);
        let connector = Client::open(info.set_redis_settings(settings)).unwrap_or(client.clone());
        RedisTransport {
            connector,
            db,
            client,
            timeout: Duration::from_secs(1),
            idle: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// Sets how long any operation may take before failing (default 1 s).
    /// Zero is treated as 1 ms.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The operation timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The client this transport connects with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A new connection, within `budget`. The `redis` crate's handshake
    /// waits its whole timeout for each reply (`AUTH`, then `SELECT`), so a
    /// frozen server cost twice the budget to a URL with a password and a
    /// database; here the crate sends at most `AUTH`, and `SELECT` gets
    /// what is left.
    fn connect(&self, budget: Duration) -> RedisResult<Connection> {
        let started = std::time::Instant::now();
        let mut conn = self.connector.get_connection_with_timeout(budget)?;
        if self.db != 0 {
            let left = budget.saturating_sub(started.elapsed());
            conn.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            redis::cmd("SELECT").arg(self.db).query::<()>(&mut conn)?;
        }
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }

    /// Runs `op` (one command) on a pooled connection. A connection that
    /// failed in any way other than a server error reply is dropped, not reused.
    fn with_connection<T>(
        &self,
        op: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, TransportError> {
        self.with_pipeline(1, op)
    }

    /// Runs `op`, which reads `replies` replies, within the timeout. The
    /// `redis` crate reads every reply of a pipeline even after one timed
    /// out, each with the socket's read timeout: a frozen server would cost
    /// `replies` × the timeout, so each read gets its share. Connecting, when
    /// no pooled connection is left, comes out of the same budget.
    fn with_pipeline<T>(
        &self,
        replies: usize,
        op: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, TransportError> {
        let map = |e| TransportError::from_redis(e, self.timeout);
        let started = std::time::Instant::now();
        let generation = self.generation.load(Ordering::SeqCst);
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (mut conn, set) = match pooled {
            Some(pooled) => pooled,
            None => (self.connect(self.timeout).map_err(map)?, self.timeout),
        };
        let budget = self.timeout.saturating_sub(started.elapsed());
        let divisor = u32::try_from(replies.max(1)).unwrap_or(u32::MAX);
        let per_read = (budget / divisor).max(Duration::from_millis(1));
        // A system call only when the share changes (a pooled connection
        // mostly serves calls of one shape); shares within 1 ms are alike.
        let read_timeout = if set.abs_diff(per_read) > Duration::from_millis(1) {
            conn.set_read_timeout(Some(per_read)).map_err(map)?;
            per_read
        } else {
            set
        };
        let result = op(&mut conn);
        self.finish((conn, read_timeout), generation, result)
    }

    /// Pools `conn` again unless it failed in a way other than an error
    /// reply, or `close` ran since it was taken (`generation`).
    fn finish<T>(
        &self,
        conn: (Connection, Duration),
        generation: u64,
        result: RedisResult<T>,
    ) -> Result<T, TransportError> {
        let reusable = match &result {
            Ok(_) => true,
            Err(e) => e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
        };
        if reusable {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // Checked under the pool's lock, which `close` takes too.
            if idle.len() < MAX_IDLE && self.generation.load(Ordering::SeqCst) == generation {
                idle.push(conn);
            }
        }
        result.map_err(|e| TransportError::from_redis(e, self.timeout))
    }
}

/// The connection info of `url`, without the `CLIENT SETINFO` the `redis`
/// crate pipelines into every new connection: on a server that accepts
/// connections but does not answer, each of its replies waits the read
/// timeout, so connecting alone took twice the timeout. (Shared with the
/// async transport.)
pub(crate) fn lean_connection_info<T: IntoConnectionInfo>(
    url: T,
) -> Result<redis::ConnectionInfo, TransportError> {
    let info = url
        .into_connection_info()
        .map_err(|e| TransportError::Backend(Box::new(e)))?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    Ok(info.set_redis_settings(settings))
}

/// With TLS, rustls needs a process-wide crypto provider; install ring's
/// unless the application installed one already.
pub(crate) fn ensure_crypto_provider() {
    #[cfg(feature = "tls")]
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// `MGET` of `keys`, then `PTTL` of each. (Shared with the async transport.)
pub(crate) fn get_many_with_ttl_pipe(keys: &[&str]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("MGET").arg(keys);
    for key in keys {
        pipe.cmd("PTTL").arg(*key);
    }
    pipe
}

/// The answer of [`get_many_with_ttl_pipe`]: each value with its time left.
pub(crate) fn many_with_ttl(
    count: usize,
    answer: Vec<redis::Value>,
) -> Result<Vec<Option<crate::ValueWithTtl>>, TransportError> {
    let malformed = || TransportError::Backend("malformed MGET/PTTL answer".into());
    let mut replies = answer.into_iter();
    let values: Vec<Option<Vec<u8>>> =
        redis::from_redis_value(replies.next().ok_or_else(malformed)?)
            .map_err(|e| TransportError::Backend(Box::new(e)))?;
    if values.len() != count {
        return Err(malformed());
    }
    values
        .into_iter()
        .map(|value| {
            let left: i64 = redis::from_redis_value(replies.next().ok_or_else(malformed)?)
                .map_err(|e| TransportError::Backend(Box::new(e)))?;
            Ok(value.map(|v| {
                (
                    Bytes::from(v),
                    u64::try_from(left).ok().map(Duration::from_millis),
                )
            }))
        })
        .collect()
}

/// A TTL as `PX` takes it: whole milliseconds, at least 1.
fn px_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `SET key value [NX] PX ttl` alone, for a write with nothing to publish
/// (ttl and batched strategies): one command rather than a pipeline of one,
/// whose ignored-reply set and reply vector cost about 1,500 instructions a
/// write, and sized up front so that building it does not reallocate.
/// (Shared with the async transport.)
pub(crate) fn set_cmd(key: &str, value: &[u8], ttl: Duration, if_absent: bool) -> redis::Cmd {
    // "SET", "NX", "PX" and a TTL of up to 20 digits, beside the key and value.
    let mut cmd = redis::Cmd::with_capacity(6, key.len() + value.len() + 27);
    cmd.arg("SET").arg(key).arg(value);
    if if_absent {
        cmd.arg("NX");
    }
    cmd.arg("PX").arg(px_millis(ttl));
    cmd
}

/// `SET … PX` of every entry, then the publishes: `set` (one entry) and
/// `set_many`. (Shared with the async transport.)
pub(crate) fn set_many_pipe(
    entries: &[(&str, &[u8])],
    ttl: Duration,
    then: &[Outgoing<'_>],
) -> redis::Pipeline {
    let millis = px_millis(ttl);
    let mut pipe = redis::pipe();
    for (key, value) in entries {
        pipe.cmd("SET")
            .arg(*key)
            .arg(*value)
            .arg("PX")
            .arg(millis)
            .ignore();
    }
    add_publishes(&mut pipe, then);
    pipe
}

/// `SET key value NX PX ttl`, then the publishes. (Shared with the async transport.)
pub(crate) fn set_if_absent_pipe(
    key: &str,
    value: &[u8],
    ttl: Duration,
    then: &[Outgoing<'_>],
) -> redis::Pipeline {
    let mut pipe = redis::Pipeline::with_capacity(1 + then.len());
    pipe.add_command(set_cmd(key, value, ttl, true));
    add_publishes(&mut pipe, then);
    pipe
}

fn add_publishes(pipe: &mut redis::Pipeline, messages: &[Outgoing<'_>]) {
    for m in messages {
        pipe.cmd("PUBLISH").arg(m.channel).arg(m.payload).ignore();
    }
}

impl Transport for RedisTransport {
    type Subscription = RedisSubscription;

    fn get(&self, key: &str) -> Result<Option<Bytes>, TransportError> {
        let value: Option<Vec<u8>> =
            self.with_connection(|c| redis::cmd("GET").arg(key).query(c))?;
        Ok(value.map(Bytes::from))
    }

    fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Option<Duration>)>, TransportError> {
        let pipe = get_with_ttl_pipe(key);
        let answer = self.with_pipeline(2, |c| pipe.query(c))?;
        Ok(with_ttl(answer))
    }

    fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError> {
        if then.is_empty() {
            let cmd = set_cmd(key, value, ttl, false);
            return self.with_pipeline(1, |c| cmd.query::<()>(c));
        }
        let pipe = set_many_pipe(&[(key, value)], ttl, then);
        self.with_pipeline(1 + then.len(), |c| {
            split_publish_failure(pipe.query::<()>(c))
        })?
        .map_err(|e| TransportError::unpublished(e, self.timeout))
    }

    fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<bool, TransportError> {
        if then.is_empty() {
            let cmd = set_cmd(key, value, ttl, true);
            let written: Option<String> = self.with_pipeline(1, |c| cmd.query(c))?;
            return Ok(written.is_some());
        }
        let pipe = set_if_absent_pipe(key, value, ttl, then);
        let (written,): (Option<String>,) = self
            .with_pipeline(1 + then.len(), |c| split_publish_failure(pipe.query(c)))?
            .map_err(|e| TransportError::unpublished(e, self.timeout))?;
        Ok(written.is_some())
    }

    fn get_many_with_ttl(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Option<(Bytes, Option<Duration>)>>, TransportError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let pipe = get_many_with_ttl_pipe(keys);
        let answer = self.with_pipeline(1 + keys.len(), |c| pipe.query(c))?;
        many_with_ttl(keys.len(), answer)
    }

    fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl: Duration,
        then: &[Outgoing<'_>],
    ) -> Result<(), TransportError> {
        if entries.is_empty() {
            return self.publish(then);
        }
        let pipe = set_many_pipe(entries, ttl, then);
        self.with_pipeline(entries.len() + then.len(), |c| {
            split_publish_failure_after(entries.len(), pipe.query::<()>(c))
        })?
        .map_err(|e| TransportError::unpublished(e, self.timeout))
    }

    fn delete(&self, key: &str, then: &[Outgoing<'_>]) -> Result<bool, TransportError> {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(key);
        add_publishes(&mut pipe, then);
        let (removed,): (i64,) = self
            .with_pipeline(1 + then.len(), |c| split_publish_failure(pipe.query(c)))?
            .map_err(|e| TransportError::unpublished(e, self.timeout))?;
        Ok(removed > 0)
    }

    fn publish(&self, messages: &[Outgoing<'_>]) -> Result<(), TransportError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        add_publishes(&mut pipe, messages);
        self.with_pipeline(messages.len(), |c| pipe.query::<()>(c))
    }

    fn subscribe(&self, channels: &[&str]) -> Result<RedisSubscription, TransportError> {
        let conn = self
            .connect(self.timeout)
            .map_err(|e| TransportError::from_redis(e, self.timeout))?;
        RedisSubscription::start(conn, channels, self.timeout, None)
    }

    fn subscribe_delivering(
        &self,
        channels: &[&str],
        deliver: Arc<dyn Deliver>,
    ) -> Result<RedisSubscription, TransportError> {
        let conn = self
            .connect(self.timeout)
            .map_err(|e| TransportError::from_redis(e, self.timeout))?;
        RedisSubscription::start(conn, channels, self.timeout, Some(deliver))
    }

    fn flush_db(&self) -> Result<(), TransportError> {
        self.with_connection(|c| redis::cmd("FLUSHDB").query::<()>(c))
    }

    fn scan_prefix(
        &self,
        cursor: u64,
        prefix: &str,
        count: usize,
    ) -> Result<(u64, Vec<String>), TransportError> {
        let cmd = scan_cmd(cursor, prefix, count);
        self.with_connection(|c| cmd.query(c))
    }

    fn unlink(&self, keys: &[String], then: &[Outgoing<'_>]) -> Result<u64, TransportError> {
        if keys.is_empty() {
            self.publish(then)?;
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        pipe.cmd("UNLINK").arg(keys);
        add_publishes(&mut pipe, then);
        let (removed,): (u64,) = self
            .with_pipeline(1 + then.len(), |c| split_publish_failure(pipe.query(c)))?
            .map_err(|e| TransportError::unpublished(e, self.timeout))?;
        Ok(removed)
    }

    fn close(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        idle.clear();
    }

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

/// `EVAL` of the acquire script (shared with the async transport).
pub(crate) fn lease_acquire_cmd(
    key: &str,
    holder: &str,
    ttl: Duration,
    min_term: u64,
) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(scripts::acquire())
        .arg(2)
        .arg(key)
        .arg(term_key(key))
        .arg(holder)
        .arg(millis(ttl))
        .arg(min_term);
    cmd
}

/// `EVAL` of the renew script.
pub(crate) fn lease_renew_cmd(key: &str, holder: &str, term: u64, ttl: Duration) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(scripts::renew())
        .arg(1)
        .arg(key)
        .arg(holder)
        .arg(millis(ttl))
        .arg(term);
    cmd
}

/// `GET key` then `PTTL key`, in one pipeline (shared with the async transport).
pub(crate) fn get_with_ttl_pipe(key: &str) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
    pipe
}

/// A value and its `PTTL`: -1 (no expiry) is unknown; -2 (gone since the
/// `GET`) or 0 leaves no time to keep it.
pub(crate) fn with_ttl((value, pttl): (Option<Vec<u8>>, i64)) -> Option<(Bytes, Option<Duration>)> {
    let left = match pttl {
        -1 => None,
        ms => Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
    };
    value.map(|v| (Bytes::from(v), left))
}

/// `SCAN cursor MATCH {prefix}* COUNT count`, the prefix's glob characters
/// escaped (shared with the async transport).
pub(crate) fn scan_cmd(cursor: u64, prefix: &str, count: usize) -> redis::Cmd {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count.max(1));
    cmd
}

/// `EVAL` of the query script.
pub(crate) fn lease_query_cmd(key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(scripts::query()).arg(1).arg(key);
    cmd
}

/// `EVAL` of the release script.
pub(crate) fn lease_release_cmd(key: &str, holder: &str, term: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(scripts::RELEASE)
        .arg(1)
        .arg(key)
        .arg(lease_value(term, holder));
    cmd
}
