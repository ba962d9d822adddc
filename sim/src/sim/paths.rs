//! The workload and the read and write paths: arrivals, the instance that
//! makes each, and the round trips to the simulated Redis.

use aci_cache::instance::{Lookup, PreparedWrite};
use aci_cache::transports::TransportError;
use aci_core::{Duration, Mode};
use bytes::Bytes;

use super::event::Event;
use super::{Node, Sim};
use crate::workload::Writers;

impl Sim {
    pub(super) fn next_arrival(&mut self, rate: f64, event: Event) {
        // Poisson arrivals at the current rate; an idle shape is polled every 100 ms.
        let gap = if rate > 0.0 {
            Duration::from_nanos((self.workload_rng.exponential(1e9 / rate)) as u64)
        } else {
            Duration::from_millis(100)
        };
        self.schedule(self.now + gap, event);
    }

    pub(super) fn pick_node(&mut self, writers: Option<Writers>) -> Option<usize> {
        let anyone = matches!(writers, None | Some(Writers::All));
        if anyone && self.nodes.iter().all(|n| n.alive) {
            // The common case, without counting: the same draw as below.
            return Some(self.workload_rng.below(self.nodes.len() as u64) as usize);
        }
        let eligible = |_: usize, n: &Node| {
            n.alive
                && match writers {
                    Some(Writers::Controller) => n.controller,
                    Some(Writers::Followers) => !n.controller,
                    _ => true,
                }
        };
        let count = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| eligible(*i, n))
            .count();
        if count == 0 {
            return None;
        }
        let nth = self.workload_rng.below(count as u64) as usize;
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| eligible(*i, n))
            .nth(nth)
            .map(|(i, _)| i)
    }

    /// A Poisson arrival of the workload: a write or a read of a key drawn
    /// by popularity, at an instance drawn among those that may make it.
    pub(super) fn arrival(&mut self, write: bool) {
        let t = self.secs();
        let workload = &self.config.workload;
        let (rate, writers) = if write {
            (workload.writes.rate(t), Some(workload.writers))
        } else {
            (workload.reads.rate(t), None)
        };
        if rate > 0.0 {
            if let Some(node) = self.pick_node(writers) {
                let key = self.config.workload.keys.pick(&mut self.workload_rng);
                if write {
                    self.write(node, key);
                } else {
                    self.read(node, key);
                }
            }
        }
        let next = if write {
            Event::WriteArrival
        } else {
            Event::ReadArrival
        };
        self.next_arrival(rate, next);
    }

    pub(super) fn write(&mut self, node: usize, key: usize) {
        self.trace.add(key as u64);
        let mode = self.nodes[node].instance.mode();
        let prepared = self.nodes[node]
            .instance
            // No TTL cap: the simulated values live `default_ttl`, at least
            // as long as any near-cache entry in the scenarios (local_ttl).
            .prepare_write(&self.keys[key], None, self.now);
        let write = match prepared {
            Ok(write) => write,
            Err(_) => {
                self.obs.failed_writes += 1;
                return;
            }
        };
        self.after(node);
        let Some(at) = self.links.send(node, self.now, &mut self.rng) else {
            // The SET never reaches Redis: the cache forgets the key locally.
            let cut_off = Err(TransportError::Unavailable("partitioned".into()));
            let _ = self.nodes[node].instance.finish_write(
                write,
                &self.keys[key],
                &[],
                cut_off,
                self.now,
            );
            self.obs.failed_writes += 1;
            return;
        };
        let life = self.nodes[node].life;
        self.schedule(
            at,
            Event::WriteAtServer {
                node,
                life,
                key,
                mode,
                write: Box::new(write),
            },
        );
    }

    pub(super) fn write_at_server(
        &mut self,
        node: usize,
        life: u32,
        key: usize,
        mode: Mode,
        write: Box<PreparedWrite>,
    ) {
        let version = self.server.set(key, self.now, mode, node);
        self.obs.writes_acked += 1;
        self.fan_out(&write.outbound);
        let ack = self.now + self.links.hop(&mut self.rng);
        self.schedule(
            ack,
            Event::WriteAck {
                node,
                life,
                key,
                version,
                write,
            },
        );
    }

    pub(super) fn read(&mut self, node: usize, key: usize) {
        self.trace.add(key as u64);
        let strategy = self.nodes[node].instance.strategy();
        match self.nodes[node].instance.lookup(&self.keys[key], self.now) {
            Lookup::Hit(value) => {
                let version = decode_version(&value);
                self.trace.add(version);
                let stats = &mut self.obs.by_strategy[strategy.index()];
                stats.reads += 1;
                stats.hits += 1;
                self.check_fresh(node, key, version);
            }
            Lookup::Fill(fill) => {
                let slot = self.reads.insert((fill, key));
                if let Some(exec) = self.links.send(node, self.now, &mut self.rng) {
                    // One event for the round trip: the GET runs one hop out
                    // (`exec`), its answer is read from the server's history
                    // when the reply lands.
                    let reply = exec + self.links.hop(&mut self.rng);
                    let life = self.nodes[node].life;
                    self.schedule(
                        reply,
                        Event::ReadReply {
                            node,
                            life,
                            read: slot,
                            exec,
                        },
                    );
                } else {
                    self.finish_read(node, self.nodes[node].life, slot, Err(()));
                }
            }
            Lookup::Wait(_) => self.obs.coalesced_reads += 1,
        }
    }

    pub(super) fn finish_read(
        &mut self,
        node: usize,
        life: u32,
        slot: usize,
        result: Result<Option<u64>, ()>,
    ) {
        let Some((fill, _)) = self.reads.remove(slot) else {
            return;
        };
        let read = match result {
            Ok(version) => Ok(version.map(|v| Bytes::copy_from_slice(&v.to_le_bytes()))),
            Err(()) => Err(TransportError::Unavailable("partitioned".into())),
        };
        let failed = read.is_err();
        if self.live(node, life) {
            let strategy = self.nodes[node].instance.strategy();
            let _ = self.nodes[node].instance.finish_fill(fill, read, self.now);
            if failed {
                self.obs.failed_reads += 1;
            } else {
                self.obs.by_strategy[strategy.index()].reads += 1;
            }
            self.after(node);
        } else {
            // The process died with the read in flight; the fill is dropped with it.
            drop(fill);
        }
    }
}

pub(super) fn decode_version(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}
