//! The run loop: a virtual clock, one random stream, a simulated Redis, and
//! the fleet's instances — each the real [`Instance`] of `aci-cache`, the code
//! the blocking and async caches run — exchanging messages as events.
//!
//! The loop pops the earliest event, advances the clock to it, handles it and
//! schedules what follows (a reply after a latency, a delivery per
//! subscriber, the instance's next timer). Ties are broken by scheduling
//! order, so a seed determines the run bit for bit.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::rc::Rc;

use aci_cache::instance::{Fill, Instance, LeaseCall, Lookup, Outbound, PreparedWrite};
use aci_cache::transports::{LeaseState, TransportError};
use aci_cache::{Builder, Role};
use aci_core::engine::MessageKind;
use aci_core::{Duration, Instant, Mode, Strategy};
use bytes::Bytes;

use crate::config::{Policy, SimConfig};
use crate::faults::Fate;
use crate::observe::{Observations, Sample, TraceHash};
use crate::rng::SimRng;
use crate::server::Server;
use crate::slab::Slab;
use crate::workload::{Crossing, Writers};

/// The largest fleet [`Sim::new`] accepts: ~1.1 GB of instances.
pub const MAX_INSTANCES: usize = 10_000;

/// Most expected events × instances a run may cost. An event's cost grows
/// with the fleet (every instance's engine and near cache in memory, fewer
/// of them in the processor's caches): 10,000 instances for 10 s, about
/// 3e8 events, ran for minutes and took 4.8 GB. Generous for everything the
/// scenarios, tests and benchmarks run (a 20-instance hour is ~1e9).
pub const MAX_COST: f64 = 2e11;

/// A failed run — the invariant or limit broken, and how to replay it — or
/// a configuration refused before running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError {
    /// What went wrong.
    pub message: String,
    /// The seed that replays the failure (`SIM_SEED=…`); `None` when the
    /// configuration was refused and nothing ran.
    pub seed: Option<u64>,
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seed {
            Some(seed) => write!(f, "{} (replay with SIM_SEED={seed})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SimError {}

/// Kept small (the rare, large payloads are boxed): every event is moved
/// into the slab and out again.
enum Event {
    WriteArrival,
    ReadArrival,
    WriteAtServer {
        node: usize,
        life: u32,
        key: usize,
        mode: Mode,
        write: Box<PreparedWrite>,
    },
    WriteAck {
        node: usize,
        life: u32,
        key: usize,
        version: u64,
        write: Box<PreparedWrite>,
    },
    /// The GET ran at `exec` (one hop after it was sent) and its answer arrives now.
    ReadReply {
        node: usize,
        life: u32,
        read: usize,
        exec: Instant,
    },
    PublishAtServer {
        node: usize,
        outbound: Box<Outbound>,
    },
    LeaseAtServer {
        node: usize,
        life: u32,
        call: Box<LeaseCall>,
    },
    LeaseReply {
        node: usize,
        life: u32,
        answer: Box<Result<LeaseState, TransportError>>,
    },
    Deliver {
        node: usize,
        life: u32,
        channel: usize,
        /// Shared by every subscriber's copy (the run is single-threaded).
        payload: Rc<[u8]>,
    },
    Timer {
        node: usize,
        life: u32,
        at: Instant,
    },
    OutageStart {
        node: usize,
    },
    OutageEnd {
        node: usize,
    },
    Crash,
    /// The adversary publishes a forged decision.
    Forgery,
    Restart,
    Sample,
    ConvergenceCheck {
        controller: usize,
        strategy: Strategy,
        since: Instant,
    },
}

/// A heap entry: small, so the heap moves little; the event waits in a slab.
struct Scheduled {
    at: Instant,
    seq: u64,
    slot: u32,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Node {
    instance: Instance,
    /// Bumped on crash: events of an earlier life are ignored.
    life: u32,
    alive: bool,
    timer_at: Option<Instant>,
    strategy: Strategy,
    /// Whether it acted as the controller after the last event it handled.
    controller: bool,
}

/// One simulation run.
pub struct Sim {
    config: SimConfig,
    now: Instant,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    events: Slab<Event>,
    /// The network's and the adversary's randomness.
    rng: SimRng,
    /// The workload's own stream (arrivals, keys, which instance): a seed
    /// offers every policy the same reads and writes, so that `compare`
    /// sees their differences rather than different traffic.
    workload_rng: SimRng,
    nodes: Vec<Node>,
    server: Server,
    keys: Vec<String>,
    channels: [String; 2],
    /// Reads in flight: the leader's fill and the key index.
    reads: Slab<(Fill, usize)>,
    obs: Observations,
    trace: TraceHash,
    disagree_since: Option<Instant>,
    /// Where the offered write rate crosses a threshold.
    crossings: Vec<Crossing>,
    /// The crashed controller and when it crashed.
    crashed: Option<(usize, Instant)>,
}

/// How long a lease request from a cut-off instance takes to fail.
const LEASE_TIMEOUT: Duration = Duration::from_secs(1);

const INVALIDATION: usize = 0;
const STRATEGY: usize = 1;

impl Sim {
    /// A run, ready to start.
    pub fn new(config: SimConfig) -> Result<Sim, SimError> {
        let mut rng = SimRng::new(config.seed);
        let workload_rng = rng.fork();
        let fail = |message: String| SimError {
            message,
            seed: None,
        };
        if config.instances > MAX_INSTANCES {
            return Err(fail(format!(
                "{} instances: at most {MAX_INSTANCES} are simulated (each holds a \
                 whole engine, ~110 KB)",
                config.instances
            )));
        }
        // Refuse at once a run that could only end at the event limit, after
        // minutes or hours (a mistyped rate, say), rather than at it.
        let events = expected_events(&config);
        if events > config.max_events as f64 {
            return Err(fail(format!(
                "this run would take about {events:.1e} events, over the limit of {}: \
                 lower the rates, the fleet or the duration",
                config.max_events
            )));
        }
        let cost = events * config.instances as f64;
        if cost > MAX_COST {
            return Err(fail(format!(
                "this run would take about {events:.1e} events across {} instances \
                 (cost {cost:.1e}, over the limit of {MAX_COST:.0e}): every instance \
                 hears every other, so cost grows with the square of the fleet; \
                 lower the fleet or the duration",
                config.instances
            )));
        }
        let probe = settings(&config, 0, &mut rng).map_err(|e| fail(e.to_string()))?;
        let channels = [
            probe.core().invalidation_channel().to_owned(),
            probe.core().strategy_channel().to_owned(),
        ];
        let mut nodes = Vec::with_capacity(config.instances);
        for i in 0..config.instances.max(1) {
            let s = settings(&config, i, &mut rng).map_err(|e| fail(e.to_string()))?;
            let instance = Instance::new(s).map_err(|e| fail(e.to_string()))?;
            nodes.push(Node {
                strategy: instance.strategy(),
                instance,
                life: 0,
                alive: true,
                timer_at: None,
                controller: false,
            });
        }
        let keys = (0..config.workload.keys.len())
            .map(|k| format!("k{k}"))
            .collect();
        let crossings = config.workload.writes.crossings(
            config.cache.low_threshold,
            config.cache.high_threshold,
            config.duration.as_secs_f64(),
        );
        Ok(Sim {
            server: Server::new(config.workload.keys.len(), config.cache.default_ttl),
            now: Instant::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Slab::default(),
            rng,
            workload_rng,
            nodes,
            keys,
            channels,
            reads: Slab::default(),
            obs: Observations::default(),
            trace: TraceHash::default(),
            disagree_since: None,
            crossings,
            crashed: None,
            config,
        })
    }

    /// Runs to the end; `progress` is told the fraction done now and then,
    /// and 1.0 once the run is complete.
    pub fn run(mut self, mut progress: impl FnMut(f64)) -> Result<Observations, SimError> {
        self.start();
        let end = Instant::ZERO + self.config.duration;
        let mut next_report = 0u64;
        while let Some(Reverse(scheduled)) = self.queue.pop() {
            if scheduled.at > end {
                break;
            }
            self.now = scheduled.at;
            self.obs.events += 1;
            if self.obs.events > self.config.max_events {
                return Err(self.error(format!(
                    "more than {} events: a runaway loop",
                    self.config.max_events
                )));
            }
            let Some(event) = self.events.remove(scheduled.slot as usize) else {
                continue;
            };
            self.handle(event);
            if self.obs.events >= next_report {
                next_report += 50_000;
                progress(self.now.as_nanos() as f64 / end.as_nanos().max(1) as f64);
            }
        }
        self.now = end;
        self.finish();
        progress(1.0);
        Ok(self.obs)
    }

    fn error(&self, message: String) -> SimError {
        SimError {
            message,
            seed: Some(self.config.seed),
        }
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        // At most as many events are pending as the heap holds: u32 is ample.
        let slot = self.events.insert(event) as u32;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            slot,
        }));
    }

    fn secs(&self) -> f64 {
        self.now.as_nanos() as f64 / 1e9
    }

    fn start(&mut self) {
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            node.instance.start(Instant::ZERO, 1.8e9);
            node.instance.subscribed();
            if node.strategy != Strategy::Ttl {
                // A bounded fleet may start batched: the timeline says so.
                self.obs.timeline.push((0.0, i, Some(node.strategy)));
            }
            if let Policy::Fixed(s) = self.config.policy {
                let out = node.instance.force_strategy(Some(s), Instant::ZERO);
                self.publish_from(i, out);
            }
            self.after(i);
        }
        self.schedule(Instant::ZERO, Event::WriteArrival);
        self.schedule(Instant::ZERO, Event::ReadArrival);
        self.schedule(Instant::ZERO, Event::Sample);
        for o in self.config.faults.outages.clone() {
            if o.instance < self.nodes.len() {
                self.schedule(at_secs(o.at), Event::OutageStart { node: o.instance });
                self.schedule(
                    at_secs(o.at + o.duration),
                    Event::OutageEnd { node: o.instance },
                );
            }
        }
        self.schedule_forgery();
        if let Some(at) = self.config.faults.controller_crash_at {
            self.schedule(at_secs(at), Event::Crash);
            if let Some(after) = self.config.faults.controller_restart_after {
                self.schedule(at_secs(at + after), Event::Restart);
            }
        }
    }

    fn handle(&mut self, event: Event) {
        self.trace.add(self.now.as_nanos());
        match event {
            Event::WriteArrival => self.arrival(true),
            Event::ReadArrival => self.arrival(false),
            Event::WriteAtServer {
                node,
                life,
                key,
                mode,
                write,
            } => self.write_at_server(node, life, key, mode, write),
            Event::WriteAck {
                node,
                life,
                key,
                version,
                write,
            } => {
                self.trace.add(version);
                self.server.acknowledged(key, version, self.now);
                if self.live(node, life) {
                    let value = version.to_le_bytes();
                    // Acknowledged: cannot fail.
                    let _ = self.nodes[node].instance.finish_write(
                        *write,
                        &self.keys[key],
                        &value,
                        Ok(()),
                        self.now,
                    );
                    self.after(node);
                }
            }
            Event::ReadReply {
                node,
                life,
                read,
                exec,
            } => {
                let result = if self.config.faults.partitioned(node, secs_of(exec)) {
                    Err(())
                } else {
                    Ok(self.server.get(self.keys_index(read), exec))
                };
                self.finish_read(node, life, read, result)
            }
            Event::PublishAtServer { node, outbound } => {
                if !self.cut_off(node) {
                    self.fan_out(&outbound);
                }
            }
            Event::LeaseAtServer { node, life, call } => {
                let answer = self.server.lease(self.now, &call);
                if !matches!(call.op, aci_core::LeaseOp::Release { .. }) {
                    let at = self.now + self.config.faults.latency(&mut self.rng);
                    let answer = Box::new(Ok(answer));
                    self.schedule(at, Event::LeaseReply { node, life, answer });
                }
            }
            Event::LeaseReply { node, life, answer } => {
                if self.live(node, life) {
                    // A partition eats the answer: the client times out.
                    let answer = if self.cut_off(node) {
                        Err(TransportError::Unavailable("partitioned".into()))
                    } else {
                        *answer
                    };
                    let out = self.nodes[node].instance.handle_lease(answer, self.now);
                    self.publish_from(node, out);
                    self.after(node);
                }
            }
            Event::Deliver {
                node,
                life,
                channel,
                payload,
            } => {
                self.trace.add(node as u64);
                if self.live(node, life) && self.nodes[node].instance.is_subscribed() {
                    let out = self.nodes[node].instance.handle_message(
                        &self.channels[channel],
                        &payload,
                        self.now,
                    );
                    self.publish_from(node, out);
                    self.after(node);
                }
            }
            Event::Timer { node, life, at } => {
                if self.live(node, life) && self.nodes[node].timer_at == Some(at) {
                    self.nodes[node].timer_at = None;
                    let out = self.nodes[node].instance.handle_timeout(self.now);
                    self.publish_from(node, out);
                    self.after(node);
                }
            }
            Event::OutageStart { node } => {
                if self.nodes[node].alive {
                    self.nodes[node].instance.subscription_lost(self.now);
                    self.after(node);
                }
            }
            Event::OutageEnd { node } => {
                if self.nodes[node].alive {
                    self.nodes[node].instance.subscribed();
                    self.after(node);
                }
            }
            Event::Forgery => {
                self.forge();
                self.schedule_forgery();
            }
            Event::Crash => {
                // The controller of the moment dies, without a word.
                let victim = self.controller().unwrap_or(0);
                self.crashed = Some((victim, self.now));
                let node = &mut self.nodes[victim];
                node.alive = false;
                node.life += 1;
                node.timer_at = None;
                node.controller = false;
                self.obs.timeline.push((self.secs(), victim, None));
                self.agreement_changed();
            }
            Event::Restart => self.restart_crashed(),
            Event::Sample => self.sample(),
            Event::ConvergenceCheck {
                controller,
                strategy,
                since,
            } => self.check_convergence(controller, strategy, since),
        }
    }

    fn keys_index(&self, read: usize) -> usize {
        self.reads.get(read).map_or(0, |(_, key)| *key)
    }

    fn live(&self, node: usize, life: u32) -> bool {
        let n = &self.nodes[node];
        n.alive && n.life == life
    }

    fn cut_off(&self, node: usize) -> bool {
        self.config.faults.partitioned(node, self.secs())
    }

    // ----- the workload -----

    fn next_arrival(&mut self, rate: f64, event: Event) {
        // Poisson arrivals at the current rate; an idle shape is polled every 100 ms.
        let gap = if rate > 0.0 {
            Duration::from_nanos((self.workload_rng.exponential(1e9 / rate)) as u64)
        } else {
            Duration::from_millis(100)
        };
        self.schedule(self.now + gap, event);
    }

    fn pick_node(&mut self, writers: Option<Writers>) -> Option<usize> {
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
    fn arrival(&mut self, write: bool) {
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

    fn write(&mut self, node: usize, key: usize) {
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
        if self.cut_off(node) {
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
        }
        let at = self.now + self.config.faults.latency(&mut self.rng);
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

    fn write_at_server(
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
        let ack = self.now + self.config.faults.latency(&mut self.rng);
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

    fn read(&mut self, node: usize, key: usize) {
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
                if self.cut_off(node) {
                    self.finish_read(node, self.nodes[node].life, slot, Err(()));
                } else {
                    // One event for the round trip: the GET runs one hop out
                    // (`exec`), its answer is read from the server's history
                    // when the reply lands.
                    let exec = self.now + self.config.faults.latency(&mut self.rng);
                    let reply = exec + self.config.faults.latency(&mut self.rng);
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
                }
            }
            Lookup::Wait(_) => self.obs.coalesced_reads += 1,
        }
    }

    fn finish_read(
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

    /// Counts a stale hit (see [`crate::observe::Staleness`]); invariant 2:
    /// a hit serves a version at most its bound behind.
    fn check_fresh(&mut self, reader: usize, key: usize, version: u64) {
        let Some((superseded_at, writer_mode, writer)) = self.server.superseded(key, version)
        else {
            return;
        };
        if let Some(newer) = self.server.newer_completed(key, version) {
            let stale = &mut self.obs.stale_by_write[newer.strategy.index()];
            stale.reads += 1;
            stale.ages.push(self.now - newer.acknowledged);
        }
        // The bound is checked from when Redis ran the newer write, which
        // is stricter than from when it completed.
        let age = self.now - superseded_at;
        let bound = self.bound(writer_mode, writer, superseded_at);
        if age > bound {
            let msg = format!(
                "instance {reader} served k{key} version {version} {age} after it was superseded \
                 (writer {writer} in {}; bound {bound})",
                writer_mode.strategy()
            );
            self.obs.violation(self.now, msg);
        }
    }

    /// The staleness bound of a write committed at `committed` in `mode` by
    /// `writer`. A bounded fleet promises its bound (plus one hop of
    /// delivery) for every write outside a fault window.
    fn bound(&self, mode: Mode, writer: usize, committed: Instant) -> Duration {
        let f = &self.config.faults;
        // A writer that crashed after this write may have died with its
        // invalidation unsent (a batch not yet flushed): only local_ttl is
        // promised then. The crash takes whoever leads at the time, so the
        // victim is known only once it happened.
        let died_owing = self
            .crashed
            .is_some_and(|(victim, at)| victim == writer && committed <= at);
        let writer_faulty = f.outages.iter().any(|o| o.instance == writer) || died_owing;
        if writer_faulty {
            return self.config.staleness_bound(Strategy::Ttl);
        }
        let bound = self.config.mode_staleness_bound(mode);
        match self.config.policy {
            Policy::Bounded(promise) if !f.lossy() => bound.min(promise + f.latency_max),
            _ => bound,
        }
    }

    // ----- messages -----

    fn publish_from(&mut self, node: usize, mut outbound: Outbound) {
        if let Some(call) = outbound.take_lease() {
            let life = self.nodes[node].life;
            if self.cut_off(node) {
                // The request never arrives; the client times out.
                let at = self.now + LEASE_TIMEOUT;
                let answer = Box::new(Err(TransportError::Timeout(
                    std::time::Duration::from_secs(1),
                )));
                self.schedule(at, Event::LeaseReply { node, life, answer });
            } else {
                let at = self.now + self.config.faults.latency(&mut self.rng);
                let call = Box::new(call);
                self.schedule(at, Event::LeaseAtServer { node, life, call });
            }
        }
        if !outbound.has_messages() {
            return;
        }
        let at = self.now + self.config.faults.latency(&mut self.rng);
        let outbound = Box::new(outbound);
        self.schedule(at, Event::PublishAtServer { node, outbound });
    }

    /// The live instance acting as the controller, if any.
    fn controller(&self) -> Option<usize> {
        self.nodes.iter().position(|n| n.alive && n.controller)
    }

    /// Redis publishes: every connected subscriber gets its copy, through the link.
    fn fan_out(&mut self, outbound: &Outbound) {
        for (m, kind) in outbound.kinds() {
            let channel = if m.channel == self.channels[INVALIDATION] {
                INVALIDATION
            } else {
                STRATEGY
            };
            let bytes = m.payload.len() as u64;
            // The kind the engine gave it, not a sniff of the JSON.
            match kind {
                MessageKind::Invalidation { .. } => {
                    self.obs.invalidations += 1;
                    self.obs.invalidation_bytes += bytes;
                }
                MessageKind::RateReport => {
                    self.obs.reports += 1;
                    self.obs.report_bytes += bytes;
                }
                // Decisions (the kinds are non-exhaustive).
                _ => {
                    self.obs.decisions += 1;
                    self.obs.decision_bytes += bytes;
                }
            }
            self.deliver_to_all(channel, m.payload.into());
        }
    }

    /// Sends one published message to every subscriber, through the links.
    fn deliver_to_all(&mut self, channel: usize, payload: Rc<[u8]>) {
        for node in 0..self.nodes.len() {
            let n = &self.nodes[node];
            if !n.alive || !n.instance.is_subscribed() || self.cut_off(node) {
                continue;
            }
            let life = n.life;
            let delays = match self.config.faults.fate(&mut self.rng) {
                Fate::Drop => {
                    self.obs.lost_deliveries += 1;
                    continue;
                }
                Fate::After(d) => [Some(d), None],
                Fate::Twice(a, b) => [Some(a), Some(b)],
            };
            for delay in delays.into_iter().flatten() {
                self.obs.deliveries += 1;
                let payload = Rc::clone(&payload);
                let deliver = Event::Deliver {
                    node,
                    life,
                    channel,
                    payload,
                };
                self.schedule(self.now + delay, deliver);
            }
        }
    }

    // ----- the adversary -----

    fn schedule_forgery(&mut self) {
        let rate = self.config.faults.forgeries;
        if rate > 0.0 && rate.is_finite() {
            let gap = self.rng.exponential(1e9 / rate) as u64;
            self.schedule(self.now + Duration::from_nanos(gap.max(1)), Event::Forgery);
        }
    }

    /// Publishes a decision no controller made, under a term and source the
    /// store never granted together.
    fn forge(&mut self) {
        let strategy = Strategy::ALL[self.rng.below(Strategy::ALL.len() as u64) as usize];
        let live_term = self.server.term_counter();
        let term = match self.rng.below(4) {
            0 => aci_core::MAX_TERM,
            1 => 1 + self.rng.below(aci_core::MAX_TERM),
            _ => 1 + self.rng.below(live_term + 5),
        };
        let (term, source) = if self.rng.chance(0.5) {
            // A real instance's id under a term already granted to another
            // (or none): a future term could turn out to be its own next
            // grant, which only signing tells apart.
            let n = self.rng.below(self.nodes.len() as u64) as usize;
            let id = self.nodes[n].instance.settings().instance_id().to_owned();
            (1 + self.rng.below(live_term.max(1)), id)
        } else {
            (term, format!("mallory-{}", self.rng.below(1000)))
        };
        if self.server.granted(term, &source) {
            return;
        }
        self.obs.forgeries += 1;
        let payload = format!(
            r#"{{"action": "strategy_update", "strategy": "{strategy}", "write_rate": 0.0, "timestamp": 1.0, "source": "{source}", "term": {term}}}"#
        );
        self.deliver_to_all(STRATEGY, payload.into_bytes().into());
    }

    // ----- timers, strategies, agreement -----

    /// After anything touched `node`: arm its timer, note a strategy change.
    fn after(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        if let Some(deadline) = n.instance.next_deadline() {
            if n.timer_at.is_none_or(|t| deadline < t) {
                n.timer_at = Some(deadline);
                let (life, at) = (n.life, deadline.max(self.now));
                self.schedule(
                    at,
                    Event::Timer {
                        node,
                        life,
                        at: deadline,
                    },
                );
            }
        }
        let controller = self.nodes[node].instance.is_controller();
        if controller != self.nodes[node].controller {
            self.nodes[node].controller = controller;
            if controller {
                self.controller_elected(node);
            }
        }
        let strategy = self.nodes[node].instance.strategy();
        if strategy != self.nodes[node].strategy {
            self.nodes[node].strategy = strategy;
            self.obs.switches += 1;
            self.trace.add(strategy as u64 + 100);
            self.obs.timeline.push((self.secs(), node, Some(strategy)));
            if controller && self.config.policy.decides() {
                self.obs
                    .controller_switches
                    .push((self.secs(), node, strategy));
                self.controller_switched(node, strategy);
            }
            self.agreement_changed();
        }
    }

    /// `node` became the controller: never two at once; after a crash, how
    /// long the fleet went without one.
    fn controller_elected(&mut self, node: usize) {
        self.obs.elections += 1;
        self.trace.add(node as u64 + 1000);
        let others: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| i != node && self.nodes[i].alive && self.nodes[i].controller)
            .collect();
        if self.config.election && !others.is_empty() {
            let msg = format!("instance {node} became controller while {others:?} still were");
            self.obs.violation(self.now, msg);
        }
        if let Some((_, at)) = self.crashed {
            if self.obs.takeover.is_none() {
                self.obs.takeover = Some((self.now - at).as_secs_f64());
            }
        }
    }

    fn controller_switched(&mut self, controller: usize, strategy: Strategy) {
        // The decision reaches Redis and then every subscriber within two hops.
        let check =
            self.now + self.config.faults.latency_max.saturating_mul(2) + Duration::from_micros(1);
        self.schedule(
            check,
            Event::ConvergenceCheck {
                controller,
                strategy,
                since: self.now,
            },
        );
    }

    /// Invariant 4: every live, connected instance follows the controller's
    /// decision within the delivery delay (when the link loses nothing).
    fn check_convergence(&mut self, controller: usize, strategy: Strategy, since: Instant) {
        // A controller cut off from Redis while announcing reaches nobody;
        // its next announcement after the partition is what counts.
        let hop = self.config.faults.latency_max.as_nanos() as f64 / 1e9;
        let announced_from_cut_off = self.config.faults.partitioned(controller, secs_of(since))
            || self
                .config
                .faults
                .partitioned(controller, secs_of(since) + hop);
        let c = &self.nodes[controller];
        if c.strategy != strategy
            || !c.alive
            || !c.controller
            || self.config.faults.lossy()
            || announced_from_cut_off
        {
            return;
        }
        let laggards: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                let n = &self.nodes[i];
                i != controller
                    && n.alive
                    && n.instance.is_subscribed()
                    && !self.cut_off(i)
                    && n.strategy != strategy
            })
            .collect();
        if !laggards.is_empty() {
            let msg = format!(
                "instances {laggards:?} did not follow the switch to {strategy} made at {since}"
            );
            self.obs.violation(self.now, msg);
        }
    }

    fn agreement_changed(&mut self) {
        let live: Vec<Strategy> = self
            .nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| n.strategy)
            .collect();
        let agree = live.windows(2).all(|w| w[0] == w[1]);
        match (agree, self.disagree_since) {
            (false, None) => self.disagree_since = Some(self.now),
            (true, Some(since)) => {
                self.obs.disagreement += (self.now - since).as_secs_f64();
                self.disagree_since = None;
            }
            _ => {}
        }
    }

    fn restart_crashed(&mut self) {
        let Some((index, _)) = self.crashed else {
            return;
        };
        let life = self.nodes[index].life;
        let Ok(s) = settings(&self.config, index, &mut self.rng) else {
            return;
        };
        let Ok(instance) = Instance::new(s) else {
            return;
        };
        instance.start(self.now, 1.8e9 + self.secs());
        instance.subscribed();
        let node = &mut self.nodes[index];
        node.instance = instance;
        node.alive = true;
        node.life = life + 1;
        node.timer_at = None;
        node.strategy = node.instance.strategy();
        node.controller = false;
        let initial = node.strategy;
        self.obs.timeline.push((self.secs(), index, Some(initial)));
        if let Policy::Fixed(s) = self.config.policy {
            let out = self.nodes[index].instance.force_strategy(Some(s), self.now);
            self.publish_from(index, out);
        }
        self.after(index);
        self.agreement_changed();
    }

    /// Timeline sample; invariant 5 (memory stays within its bounds).
    fn sample(&mut self) {
        let t = self.secs();
        let mut strategies = Vec::with_capacity(self.nodes.len());
        let mut measured = 0.0;
        for (i, n) in self.nodes.iter().enumerate() {
            strategies.push(n.alive.then_some(n.strategy));
            if !n.alive {
                continue;
            }
            let stats = n.instance.stats();
            if n.controller {
                measured = stats.write_rate;
            }
            if stats.near_cache_entries > self.config.cache.near_cache_max_entries {
                let msg = format!(
                    "instance {i} holds {} near-cache entries",
                    stats.near_cache_entries
                );
                self.obs.violation(self.now, msg);
            }
        }
        self.obs.samples.push(Sample {
            t,
            offered_write_rate: self.config.workload.writes.rate(t),
            measured_write_rate: measured,
            strategies,
        });
        let next = self.now + self.config.sample_every;
        self.schedule(next, Event::Sample);
    }

    fn finish(&mut self) {
        if let Some(since) = self.disagree_since.take() {
            self.obs.disagreement += (self.now - since).as_secs_f64();
        }
        // Invariant 1: Redis holds the latest acknowledged version of every key
        // (the caches' machinery never deleted or overwrote one).
        if let Err(what) = self.server.check_latest(self.now) {
            self.obs.violation(self.now, what);
        }
        let end = self.secs();
        let fleet = self.nodes.len();
        let decisions = &self.obs.controller_switches;
        self.obs.convergence = decisions
            .iter()
            .enumerate()
            .map(|(i, &(at, _, strategy))| {
                let until = decisions.get(i + 1).map_or(end, |next| next.0);
                fleet_runs(&self.obs.timeline, fleet, at, until, strategy)
            })
            .collect();
        self.obs.load_change_to_switch = self
            .crossings
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let until = self.crossings.get(i + 1).map_or(end, |next| next.at);
                (*c, fleet_runs(&self.obs.timeline, fleet, c.at, until, c.to))
            })
            .collect();
        self.obs.trace_hash = self.trace.0;
    }
}

/// Events a run is expected to take: per write its arrival, the command and
/// its reply and a delivery to every subscriber (twice when duplicated); per
/// read its arrival and, on a miss, the reply; per controller interval, every
/// instance's rate report or decision delivered to every instance (the part
/// that grows with the square of the fleet) and its lease request.
fn expected_events(config: &SimConfig) -> f64 {
    let seconds = config.duration.as_secs_f64();
    let fan_out = config.instances as f64 * (1.0 + config.faults.duplication);
    let writes = config.workload.writes.expected(seconds) * (4.0 + fan_out);
    let reads = config.workload.reads.expected(seconds) * 2.0;
    let intervals = seconds / config.cache.controller_interval.as_secs_f64().max(1e-3);
    let per_interval = config.instances as f64 * (fan_out + 3.0);
    writes + reads + intervals * per_interval
}

fn settings(
    config: &SimConfig,
    index: usize,
    rng: &mut SimRng,
) -> aci_cache::Result<aci_cache::Settings> {
    let c = &config.cache;
    let std = |d: Duration| std::time::Duration::from_nanos(d.as_nanos());
    Builder::new()
        .high_threshold(c.high_threshold)
        .low_threshold(c.low_threshold)
        .default_ttl(std(c.default_ttl))
        .local_ttl(std(c.local_ttl))
        .batch_interval(std(c.batch_interval))
        .controller_interval(std(c.controller_interval))
        .sliding_window(std(c.sliding_window))
        .hysteresis(c.hysteresis)
        .objective(config.policy.objective())
        .near_cache_max_entries(c.near_cache_max_entries)
        .role(if config.election {
            Role::Auto
        } else if index == 0 {
            Role::Controller
        } else {
            Role::Follower
        })
        .instance_id(format!("sim-{index}-{:08x}", rng.next_u64() as u32))
        .settings()
}

/// The first time at or after `change` when every instance runs `target`
/// (`None` if the fleet never got there before the load changed again).
/// Seconds from `from` until every live instance ran `target` (at least
/// one live), if that happened before `until`. Every instance starts in ttl.
fn fleet_runs(
    timeline: &[(f64, usize, Option<Strategy>)],
    nodes: usize,
    from: f64,
    until: f64,
    target: Strategy,
) -> Option<f64> {
    let mut current = vec![Some(Strategy::Ttl); nodes];
    let agree = |current: &[Option<Strategy>]| {
        current.iter().any(Option::is_some) && current.iter().flatten().all(|&s| s == target)
    };
    let already = timeline.partition_point(|&(t, _, _)| t <= from);
    for &(_, i, s) in &timeline[..already] {
        current[i] = s;
    }
    if agree(&current) {
        return Some(0.0);
    }
    for &(t, i, s) in &timeline[already..] {
        if t >= until {
            break;
        }
        current[i] = s;
        if agree(&current) {
            return Some(t - from);
        }
    }
    None
}

fn secs_of(t: Instant) -> f64 {
    t.as_nanos() as f64 / 1e9
}

fn at_secs(s: f64) -> Instant {
    Instant::from_nanos((s.max(0.0) * 1e9) as u64)
}

fn decode_version(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}
