//! One round trip for a write and its publishes when one master owns them
//! all.
//!
//! Through the cluster client a write and its publishes take two round
//! trips ([`RedisClusterTransport::then_publish`]): a pipeline through it
//! may send them to two nodes at once, and a publish that overtook its
//! write would let a subscriber refill the old value. When the key's slot
//! and every channel's slot belong to one master — about one eager write in
//! three on three masters; every write in classic mode, whose `PUBLISH` any
//! node forwards — the write and its publishes go as one pipeline on one
//! connection to that master, which runs them in order.
//!
//! Correctness does not rest on the slot map being current. A master that
//! does not own the key refuses the write with a redirect, and the write is
//! then sent the two-round-trip way: a publish it ran anyway only
//! invalidates early, and the publish after the acknowledged write
//! invalidates again. A master that owns the key but no longer the channel
//! runs the write and refuses the publish, which is then sent through the
//! cluster client. Either way the slot map is read again (at most every
//! [`REFRESH_EVERY`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aci_core::naming::slot_of;
use redis::{Connection, FromRedisValue, ServerErrorKind, Value};

use super::subscription::{connect, slot_ranges};
use super::{PubSubMode, RedisClusterTransport, MAX_IDLE};
use crate::{Outgoing, TransportError};

/// Least time between two reads of the slot map.
pub(super) const REFRESH_EVERY: Duration = Duration::from_millis(100);

type Node = (String, u16);

/// The slot map and a pool of connections per master.
#[derive(Default)]
pub(super) struct Direct {
    map: Mutex<SlotMap>,
    idle: Mutex<HashMap<Node, Vec<Connection>>>,
}

#[derive(Default)]
struct SlotMap {
    /// `(first slot, last slot, master)`, as `CLUSTER SLOTS` gave them.
    ranges: Option<Arc<Vec<(u16, u16, Node)>>>,
    /// When the map was last read, or tried.
    read_at: Option<Instant>,
}

/// What the pipeline to one master did.
pub(super) enum Outcome<T> {
    /// The write and every publish ran, in that order.
    Done(T),
    /// The write ran; a publish was refused (its channel moved): publish
    /// again through the cluster client.
    WrittenNotPublished(T),
    /// The write was refused with a redirect, or the connection failed
    /// before an answer: send it the two-round-trip way.
    NotRun,
}

impl Direct {
    /// The master that owns `key` and every channel of `then`, if the slot
    /// map (read again when due) says one does.
    pub(super) fn node_for(
        &self,
        transport: &RedisClusterTransport,
        key: &str,
        then: &[Outgoing<'_>],
    ) -> Option<Node> {
        let ranges = self.ranges(transport)?;
        let owner = |slot: u16| {
            ranges
                .iter()
                .find(|(first, last, _)| (*first..=*last).contains(&slot))
                .map(|(_, _, node)| node)
        };
        let node = owner(slot_of(key))?;
        let together = match transport.mode {
            // Any node forwards a classic PUBLISH to every node.
            PubSubMode::Classic => true,
            PubSubMode::Sharded => then.iter().all(|m| owner(slot_of(m.channel)) == Some(node)),
        };
        together.then(|| node.clone())
    }

    /// The slot map, read now if there is none and the last try is old
    /// enough.
    fn ranges(&self, transport: &RedisClusterTransport) -> Option<Arc<Vec<(u16, u16, Node)>>> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ranges) = &map.ranges {
            return Some(Arc::clone(ranges));
        }
        if map.read_at.is_some_and(|at| at.elapsed() < REFRESH_EVERY) {
            return None;
        }
        map.read_at = Some(Instant::now());
        drop(map);
        // Other writers take the two-round-trip way meanwhile, rather than
        // all asking at once or waiting for this answer.
        let ranges = transport.with_connection(slot_ranges).ok()?;
        let ranges = Arc::new(
            ranges
                .into_iter()
                .map(|(first, last, host, port)| (first, last, (host, port)))
                .collect::<Vec<_>>(),
        );
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ranges = Some(Arc::clone(&ranges));
        Some(ranges)
    }

    /// Drops the slot map: something moved.
    pub(super) fn forget_map(&self) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ranges = None;
    }

    /// Drops every idle connection ([`Transport::close`](crate::Transport::close)).
    pub(super) fn close(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.forget_map();
    }

    /// Sends `write` and then `then`'s publishes to `node` as one pipeline.
    pub(super) fn run<T: FromRedisValue>(
        &self,
        transport: &RedisClusterTransport,
        node: &Node,
        write: &redis::Cmd,
        then: &[Outgoing<'_>],
        verb: &str,
    ) -> Result<Outcome<T>, TransportError> {
        let map = |e| TransportError::from_redis(e, transport.timeout);
        let generation = transport.generation.load(Ordering::SeqCst);
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(node)
            .and_then(Vec::pop);
        let mut conn = match pooled {
            Some(conn) => conn,
            None => match connect(transport, &node.0, node.1) {
                Ok(mut conn) => {
                    // Named for whoever looks at CLIENT LIST; a user whose
                    // ACL refuses it just has an unnamed connection.
                    let _ = redis::cmd("CLIENT")
                        .arg("SETNAME")
                        .arg(RedisClusterTransport::WRITE_CONNECTION_NAME)
                        .query::<()>(&mut conn);
                    conn
                }
                // Not reached, or no longer a master: nothing was sent.
                Err(_) => {
                    self.forget_map();
                    return Ok(Outcome::NotRun);
                }
            },
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors().add_command(write.clone());
        for m in then {
            pipe.cmd(verb).arg(m.channel).arg(m.payload);
        }
        let answers: Vec<Value> = match pipe.query(&mut conn) {
            Ok(answers) => answers,
            // A frozen master: the cluster client would wait for it too.
            Err(e) if e.is_timeout() => return Err(map(e)),
            Err(_) => {
                // The connection broke (a master restarted, say). As the
                // cluster client does with its own commands, the write is
                // sent again; it sets the same value and TTL.
                self.forget_map();
                return Ok(Outcome::NotRun);
            }
        };
        let mut answers = answers.into_iter();
        let written = match answers.next() {
            Some(Value::ServerError(e)) if not_run(e.kind()) => {
                self.forget_map();
                self.pool(transport, node, conn, generation);
                return Ok(Outcome::NotRun);
            }
            Some(Value::ServerError(e)) => {
                self.pool(transport, node, conn, generation);
                return Err(map(e.into()));
            }
            Some(value) => T::from_redis_value(value).map_err(|e| map(e.into()))?,
            None => return Ok(Outcome::NotRun),
        };
        let published = answers.all(|a| !matches!(a, Value::ServerError(_)));
        self.pool(transport, node, conn, generation);
        if published {
            Ok(Outcome::Done(written))
        } else {
            self.forget_map();
            Ok(Outcome::WrittenNotPublished(written))
        }
    }

    fn pool(
        &self,
        transport: &RedisClusterTransport,
        node: &Node,
        conn: Connection,
        generation: u64,
    ) {
        if transport.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let conns = idle.entry(node.clone()).or_default();
        if conns.len() < MAX_IDLE {
            conns.push(conn);
        }
    }
}

/// Whether a refusal means the command did not run on this node, and may
/// run elsewhere: a redirect, or a cluster in the middle of a change.
fn not_run(kind: Option<ServerErrorKind>) -> bool {
    use ServerErrorKind::{Ask, ClusterDown, MasterDown, Moved, ReadOnly, TryAgain};
    matches!(
        kind,
        Some(Moved | Ask | TryAgain | ClusterDown | MasterDown | ReadOnly)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_redirect_or_a_changing_cluster_means_not_run() {
        use ServerErrorKind::*;
        for kind in [Moved, Ask, TryAgain, ClusterDown, MasterDown, ReadOnly] {
            assert!(not_run(Some(kind)), "{kind:?}");
        }
        // Refusals of the command itself: it would fail anywhere.
        for kind in [ResponseError, NoPerm, CrossSlot, ExecAbort, BusyLoading] {
            assert!(!not_run(Some(kind)), "{kind:?}");
        }
        assert!(!not_run(None));
    }
}
