//! The built-in scenarios, and `compare`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use aci_core::{Duration, Strategy};

use crate::config::{CacheParams, Cluster, Policy, SimConfig};
use crate::faults::{Faults, Outage, ShardDrop, SlotMove};
use crate::workload::{Keys, Shape, Workload, Writers};
use crate::{Observations, Sim, SimError};

/// A named traffic and fault pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// 5 writes/s: ttl throughout.
    SteadyLow,
    /// 0 → 200 writes/s → 0 in three equal phases.
    Ramp,
    /// Oscillating ±10% around the high threshold (50 writes/s).
    Hover,
    /// 2 writes/s with 150 writes/s bursts of 10 s every minute.
    Burst,
    /// 30 writes/s (batched) over a link losing 5% and duplicating 2% of messages.
    Lossy,
    /// 100 writes/s (eager); instances 1 and 2 are cut off from Redis for a while.
    Partition,
    /// 100 writes/s; the elected controller crashes at 40% of the run (its
    /// lease left to expire), back 30 s later as a candidate.
    ControllerCrash,
    /// 100 writes/s, all on the followers: the controller writes nothing and
    /// decides on their reports alone.
    FollowerLoad,
    /// 100 writes/s on a Redis Cluster of 3 shards, invalidations over 8
    /// buckets: a bucket's slot moves at 30% of the run, the control
    /// plane's at 50%, and the shard serving bucket 0 fails over at 70%.
    Cluster,
}

impl Scenario {
    /// Every scenario, with its command-line name.
    pub const ALL: [(Scenario, &'static str); 9] = [
        (Scenario::SteadyLow, "steady-low"),
        (Scenario::Ramp, "ramp"),
        (Scenario::Hover, "hover"),
        (Scenario::Burst, "burst"),
        (Scenario::Lossy, "lossy"),
        (Scenario::Partition, "partition"),
        (Scenario::ControllerCrash, "controller-crash"),
        (Scenario::FollowerLoad, "follower-load"),
        (Scenario::Cluster, "cluster"),
    ];

    /// The scenario called `name`.
    pub fn parse(name: &str) -> Option<Scenario> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(s, _)| *s)
    }

    /// What it does, in one line (`aci-sim list` prints it).
    pub fn description(self) -> &'static str {
        match self {
            Scenario::SteadyLow => "5 writes/s: ttl throughout",
            Scenario::Ramp => "0 → 200 writes/s → 0 in three equal phases",
            Scenario::Hover => "writes oscillating ±10% around the high threshold (50 writes/s)",
            Scenario::Burst => "2 writes/s with 150 writes/s bursts of 10 s every minute",
            Scenario::Lossy => {
                "30 writes/s (batched) over a link losing 5% and duplicating 2% of messages"
            }
            Scenario::Partition => {
                "100 writes/s (eager); instances 1 and 2 are cut off from Redis for a while"
            }
            Scenario::ControllerCrash => {
                "100 writes/s; the controller crashes at 40% of the run, back 30 s later"
            }
            Scenario::FollowerLoad => {
                "100 writes/s, all on the followers: the controller decides on their reports"
            }
            Scenario::Cluster => {
                "100 writes/s on a 3-shard cluster, 8 invalidation buckets: slots move, a shard fails over"
            }
        }
    }

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map_or("?", |(_, n)| n)
    }
}

/// The configuration of `scenario` for a seed, fleet size and duration.
pub fn config(scenario: Scenario, seed: u64, instances: usize, duration: Duration) -> SimConfig {
    let d = duration.as_secs_f64();
    let mut faults = Faults::default();
    // Writes come from every instance; the controller decides on the sum of
    // its own rate and the rates the others report.
    let mut writers = Writers::All;
    let mut cluster = None;
    let writes = match scenario {
        Scenario::SteadyLow => Shape::Constant(5.0),
        Scenario::Ramp => Shape::Ramp {
            peak: 200.0,
            up: d / 3.0,
            hold: d / 3.0,
            down: d / 3.0,
        },
        Scenario::Hover => Shape::Sine {
            mean: 50.0,
            amplitude: 5.0,
            period: 60.0,
        },
        Scenario::Burst => Shape::Bursts {
            base: 2.0,
            burst: 150.0,
            every: 60.0,
            length: 10.0,
        },
        Scenario::Lossy => {
            faults.loss = 0.05;
            faults.duplication = 0.02;
            Shape::Constant(30.0)
        }
        Scenario::Partition => {
            faults.outages = vec![
                Outage {
                    instance: 1,
                    at: d * 0.3,
                    duration: 20.0,
                },
                Outage {
                    instance: 2 % instances.max(1),
                    at: d * 0.6,
                    duration: 5.0,
                },
            ];
            Shape::Constant(100.0)
        }
        Scenario::ControllerCrash => {
            faults.controller_crash_at = Some(d * 0.4);
            faults.controller_restart_after = Some(30.0);
            Shape::Constant(100.0)
        }
        Scenario::FollowerLoad => {
            writers = Writers::Followers;
            Shape::Constant(100.0)
        }
        Scenario::Cluster => {
            let shape = Cluster {
                shards: 3,
                buckets: 8,
                resubscribe: None,
            };
            cluster = Some(shape);
            faults.slot_moves = vec![
                SlotMove {
                    bucket: Some(3),
                    at: d * 0.3,
                },
                SlotMove {
                    bucket: None,
                    at: d * 0.5,
                },
            ];
            faults.shard_drops = vec![ShardDrop {
                shard: shard_of_bucket(shape, 0),
                at: d * 0.7,
                instance: None,
            }];
            Shape::Constant(100.0)
        }
    };
    SimConfig {
        seed,
        instances: instances.max(1),
        election: true,
        duration,
        workload: Workload {
            writes,
            reads: Shape::Constant(1_000.0),
            writers,
            keys: Keys::zipf(2_000, 0.9),
        },
        faults,
        policy: Policy::Adaptive,
        cache: CacheParams::default(),
        cluster,
        sample_every: Duration::from_secs(1),
        max_events: 2_000_000_000,
    }
}

/// The shard first serving `bucket`'s invalidation channel, of the fleet's
/// default namespace.
fn shard_of_bucket(cluster: Cluster, bucket: u16) -> usize {
    let channel = aci_core::Config::builder()
        .naming(aci_core::naming::Naming::Sharded {
            buckets: cluster.buckets,
        })
        .build()
        .map(|c| c.invalidation_channel_of(bucket).as_str().to_owned())
        .unwrap_or_default();
    crate::sim::topology::Topology::new(cluster.shards).shard_of(&channel)
}

/// The policies `compare` runs by default: the three fixed strategies, the
/// original's table, and the objective policies at a few settings — a
/// staleness bound of 1 s and of 500 ms, a budget of 5 and of 20 messages
/// per second per instance in the fleet.
pub fn compared_policies(instances: usize) -> Vec<Policy> {
    let n = instances.max(1) as f64;
    vec![
        Policy::Fixed(Strategy::Ttl),
        Policy::Fixed(Strategy::Batched),
        Policy::Fixed(Strategy::Eager),
        Policy::Adaptive,
        Policy::Bounded(Duration::from_secs(1)),
        Policy::Bounded(Duration::from_millis(500)),
        Policy::Budget(5.0 * n),
        Policy::Budget(20.0 * n),
    ]
}

/// The same seed under every policy of `policies`.
///
/// The runs are independent and each is deterministic, so they run side by
/// side, one per core: the results are the same on any machine, only
/// sooner. `progress` hears the name of the run that advanced and the
/// fraction of all of them done.
pub fn compare(
    config: &SimConfig,
    policies: &[Policy],
    progress: impl FnMut(&str, f64) + Send,
) -> Result<Vec<(Policy, Observations)>, SimError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(policies.len());
    let next = AtomicUsize::new(0);
    // Each run's fraction done, and the caller's callback.
    let shared = Mutex::new((vec![0.0; policies.len()], progress));
    let mut finished = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| scope.spawn(|| run_policies(config, policies, &next, &shared)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Vec<_>>()
    });
    finished.sort_by_key(|(i, _)| *i);
    policies
        .iter()
        .copied()
        .zip(finished)
        .map(|(policy, (_, outcome))| outcome.map(|obs| (policy, obs)))
        .collect()
}

/// One worker of [`compare`]: runs the next policy nobody has taken until
/// none is left; each outcome comes with the policy's index.
fn run_policies<F: FnMut(&str, f64)>(
    config: &SimConfig,
    policies: &[Policy],
    next: &AtomicUsize,
    shared: &Mutex<(Vec<f64>, F)>,
) -> Vec<(usize, Result<Observations, SimError>)> {
    let mut done = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(&policy) = policies.get(i) else {
            return done;
        };
        let name = policy.to_string();
        let run = SimConfig {
            policy,
            ..config.clone()
        };
        let outcome = Sim::new(run).and_then(|sim| {
            sim.run(|fraction| {
                let mut guard = lock(shared);
                let (fractions, report) = &mut *guard;
                fractions[i] = fraction;
                let done = fractions.iter().sum::<f64>() / fractions.len() as f64;
                report(&name, done);
            })
        });
        done.push((i, outcome));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A run that panicked fails the whole compare (its panic is re-raised
    // when its thread is joined); the data behind the lock is plain numbers.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
