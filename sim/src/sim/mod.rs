//! The run loop: a virtual clock, one random stream, a simulated Redis, and
//! the fleet's instances — each the real [`Instance`] of `aci-cache`, the code
//! the blocking and async caches run — exchanging messages as events.
//!
//! The loop pops the earliest event, advances the clock to it, handles it and
//! schedules what follows (a reply after a latency, a delivery per
//! subscriber, the instance's next timer). Ties are broken by scheduling
//! order, so a seed determines the run bit for bit.
//!
//! By concern, as turmoil separates its world, hosts and links: this file
//! holds the world (the state, the event loop and the dispatch); `link` the
//! link model (latency, partitions, a delivery's fate) as one object; `event`
//! the events and the queue's entries; `paths` the workload and the read
//! and write paths; `messages` publishing, fan-out through the links and
//! the adversary; `lifecycle` timers, elections, crashes and restarts;
//! `channels` and `topology` a Redis Cluster's channels, lost one at a time;
//! `oracle` the invariants and the measurements checked against them.

mod channels;
mod event;
mod lifecycle;
mod link;
mod messages;
mod oracle;
mod paths;
mod published;
pub(crate) mod topology;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use aci_cache::instance::{Fill, Instance};
use aci_cache::transports::TransportError;
use aci_cache::{Builder, Role};
use aci_core::naming::Naming;
use aci_core::{Duration, Instant, Strategy};

use crate::config::{Policy, SimConfig};
use crate::observe::{Observations, TraceHash};
use crate::rng::SimRng;
use crate::server::Server;
use crate::slab::Slab;
use crate::workload::Crossing;
use channels::ChannelState;
use event::{Event, Scheduled};
use topology::Topology;

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

struct Node {
    instance: Instance,
    /// Bumped on crash: events of an earlier life are ignored.
    life: u32,
    alive: bool,
    timer_at: Option<Instant>,
    strategy: Strategy,
    /// Whether it acted as the controller after the last event it handled.
    controller: bool,
    /// Whether an outage cuts its subscription off now: attempts to
    /// subscribe fail until it ends.
    in_outage: bool,
    /// Each channel's subscription, as Redis holds it (by channel index).
    channels: Vec<ChannelState>,
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
    links: link::Links,
    /// The workload's own stream (arrivals, keys, which instance): a seed
    /// offers every policy the same reads and writes, so that `compare`
    /// sees their differences rather than different traffic.
    workload_rng: SimRng,
    nodes: Vec<Node>,
    server: Server,
    keys: Vec<String>,
    /// Each key's invalidation bucket (0 without buckets).
    key_bucket: Vec<u16>,
    /// Every channel the fleet subscribes to: the invalidation channels,
    /// bucket by bucket, then the strategy channel.
    channels: Vec<String>,
    /// The index of each channel's name.
    channel_index: HashMap<String, usize>,
    /// The strategy channel's index: the last.
    strategy_channel: usize,
    /// Which shard serves each channel, on a cluster.
    topology: Option<Topology>,
    /// What every instance's decoder accepts (one configuration for the fleet).
    limits: aci_core::wire::Limits,
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
        check_cluster_faults(&config).map_err(fail)?;
        let probe = settings(&config, 0, &mut rng).map_err(|e| fail(e.to_string()))?;
        let channels = probe.channels();
        let channel_index = (0..channels.len())
            .map(|i| (channels[i].clone(), i))
            .collect();
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
                in_outage: false,
                channels: vec![ChannelState::default(); channels.len()],
            });
        }
        let keys: Vec<String> = (0..config.workload.keys.len())
            .map(|k| format!("k{k}"))
            .collect();
        let key_bucket = keys.iter().map(|k| probe.core().bucket_of(k)).collect();
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
            links: link::Links::new(config.faults.clone()),
            nodes,
            keys,
            key_bucket,
            strategy_channel: channels.len() - 1,
            channels,
            channel_index,
            topology: config.cluster.map(|c| Topology::new(c.shards)),
            limits: aci_core::wire::Limits::from_config(probe.core()),
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
        self.schedule_cluster_faults();
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
                let result = if self.links.cut_off(node, exec) {
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
                    let at = self.now + self.links.hop(&mut self.rng);
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
                    let out = self.nodes[node].instance.handle_decoded(
                        &self.channels[channel],
                        payload.bytes(),
                        payload.message(),
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
                self.nodes[node].in_outage = true;
                if self.nodes[node].alive {
                    self.lose_subscription(node);
                }
            }
            Event::OutageEnd { node } => {
                // Noticed at the instance's next attempt, on its backoff.
                self.nodes[node].in_outage = false;
            }
            Event::Resubscribe { node, life } => {
                if self.live(node, life) && !self.nodes[node].instance.is_subscribed() {
                    if self.nodes[node].in_outage {
                        self.obs.failed_resubscribes += 1;
                        self.lose_subscription(node);
                    } else {
                        self.nodes[node].instance.subscribed();
                        self.every_channel_heard(node);
                        self.obs.resubscribed.push((self.secs(), node));
                        self.after(node);
                    }
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
            Event::SlotMove { index } => self.slot_move(index),
            Event::ShardDrop { index } => self.shard_drop(index),
            Event::ChannelLostNotice {
                node,
                life,
                channel,
                generation,
            } => self.channel_lost_noticed(node, life, channel, generation),
            Event::ChannelBackAtServer {
                node,
                life,
                channel,
                generation,
            } => self.channel_back_at_server(node, life, channel, generation),
            Event::ChannelRestored {
                node,
                life,
                channel,
                generation,
            } => self.channel_restored(node, life, channel, generation),
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
        self.links.cut_off(node, self.now)
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

pub(crate) fn settings(
    config: &SimConfig,
    index: usize,
    rng: &mut SimRng,
) -> aci_cache::Result<aci_cache::Settings> {
    let c = &config.cache;
    let std = |d: Duration| std::time::Duration::from_nanos(d.as_nanos());
    let naming = match config.cluster {
        Some(cluster) => Naming::Sharded {
            buckets: cluster.buckets,
        },
        None => Naming::Server,
    };
    Builder::new()
        .naming(naming)
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

/// Cluster faults name a shard, a bucket and an instance that exist, on a
/// cluster.
fn check_cluster_faults(config: &SimConfig) -> Result<(), String> {
    let faults = &config.faults;
    let Some(cluster) = config.cluster else {
        if faults.shard_drops.is_empty() && faults.slot_moves.is_empty() {
            return Ok(());
        }
        return Err("shard drops and slot moves need a cluster (SimConfig::cluster)".into());
    };
    if cluster.shards == 0 || cluster.shards > usize::from(aci_core::naming::SLOTS) {
        return Err(format!(
            "a cluster of {} shards: between 1 and 16384",
            cluster.shards
        ));
    }
    for drop in &faults.shard_drops {
        if drop.shard >= cluster.shards {
            return Err(format!(
                "a drop of shard {} on a cluster of {} (shards count from 0)",
                drop.shard, cluster.shards
            ));
        }
        if drop.instance.is_some_and(|i| i >= config.instances) {
            return Err(format!(
                "a shard drop for instance {:?} in a fleet of {}",
                drop.instance, config.instances
            ));
        }
    }
    let buckets = Naming::Sharded {
        buckets: cluster.buckets,
    }
    .buckets();
    for moved in &faults.slot_moves {
        if moved.bucket.is_some_and(|b| b >= buckets) {
            return Err(format!(
                "a slot move of bucket {:?} with {buckets} buckets (they count from 0)",
                moved.bucket
            ));
        }
    }
    Ok(())
}

fn secs_of(t: Instant) -> f64 {
    t.as_nanos() as f64 / 1e9
}

fn at_secs(s: f64) -> Instant {
    Instant::from_nanos((s.max(0.0) * 1e9) as u64)
}
