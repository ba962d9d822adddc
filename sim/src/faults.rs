//! Every fault knob in one struct, and the link model that applies them.
//!
//! A message from Redis to a subscriber passes through a chain of link
//! stages — latency (delay), loss (drop), duplication — and a partition
//! fails everything between an instance and Redis for a while. Each stage is
//! a plain function of the random stream, so a run is a seed.
//!
//! The same struct drives two things: the simulator's links, in virtual
//! time, and [`FaultyTransport`](crate::faulty::FaultyTransport), which wraps
//! any real [`Transport`](aci_cache::transports::Transport) and applies the
//! same stages in real time.

use aci_core::Duration;

use crate::rng::SimRng;

/// An instance cut off from Redis for a while: commands fail, the
/// subscription drops, messages to it are lost; then it reconnects.
#[derive(Clone, Debug, PartialEq)]
pub struct Outage {
    /// Which instance.
    pub instance: usize,
    /// When it starts (seconds).
    pub at: f64,
    /// How long it lasts (seconds).
    pub duration: f64,
}

/// On a Redis Cluster ([`SimConfig::cluster`](crate::SimConfig::cluster)):
/// the shard's subscriber connections drop — its master failed over, or
/// the connection broke — and every channel that shard serves is lost to
/// the subscribers it names, until they subscribe again.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardDrop {
    /// Which shard (0-based, as the cluster's slot ranges are numbered).
    pub shard: usize,
    /// When (seconds).
    pub at: f64,
    /// Whose connection drops: one instance's, or (`None`) every
    /// subscriber's, as a failover of the shard's master does.
    pub instance: Option<usize>,
}

/// On a Redis Cluster: the slot of one of the fleet's channels moves to the
/// next shard (`CLUSTER SETSLOT … NODE`). Redis tells every subscriber of a
/// channel in that slot with an unsolicited `sunsubscribe` and delivers
/// nothing more on it until they subscribe again at the new owner.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotMove {
    /// Whose channel: an invalidation bucket's, or (`None`) the control
    /// plane's (decisions; with one bucket its invalidations too).
    pub bucket: Option<u16>,
    /// When (seconds).
    pub at: f64,
}

/// The fault settings of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Smallest one-way latency between an instance and Redis.
    pub latency_min: Duration,
    /// Mean of the exponential part added to it.
    pub latency_mean_extra: Duration,
    /// Largest one-way latency (the tail is cut here, so bounds are finite).
    pub latency_max: Duration,
    /// Probability that a Pub/Sub message to one subscriber is lost.
    pub loss: f64,
    /// Probability that it is delivered twice.
    pub duplication: f64,
    /// Partitions / subscriber disconnects.
    pub outages: Vec<Outage>,
    /// Whoever acts as the controller at this time (seconds) crashes, without
    /// a word (instance 0 if nobody does)…
    pub controller_crash_at: Option<f64>,
    /// …and comes back (as a new process, empty near cache) after this long.
    pub controller_restart_after: Option<f64>,
    /// Forged decisions per second, published by an adversary with PUBLISH
    /// rights and no lease: a random strategy from a made-up source under
    /// any term (small, huge, the largest allowed), or from a real
    /// instance's id under a term already granted to another. Never a term
    /// and holder the store granted together, nor a real id under a term
    /// not granted yet (it may be that instance's next grant): only message
    /// signing tells those from the controller's own decisions.
    pub forgeries: f64,
    /// Shards whose subscriber connections drop (a cluster only).
    pub shard_drops: Vec<ShardDrop>,
    /// Channels whose slot moves to another shard (a cluster only).
    pub slot_moves: Vec<SlotMove>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_min: Duration::from_micros(200),
            latency_mean_extra: Duration::from_micros(300),
            latency_max: Duration::from_millis(5),
            loss: 0.0,
            duplication: 0.0,
            outages: Vec::new(),
            controller_crash_at: None,
            controller_restart_after: None,
            forgeries: 0.0,
            shard_drops: Vec::new(),
            slot_moves: Vec::new(),
        }
    }
}

/// What the link does with one message, as delays from when it was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Lost.
    Drop,
    /// Arrives after this long.
    After(Duration),
    /// Arrives twice, after each of these.
    Twice(Duration, Duration),
}

impl Faults {
    /// No faults at all: no added latency, nothing lost, no outage. The
    /// starting point for wrapping a real transport.
    pub fn none() -> Self {
        Faults {
            latency_min: Duration::ZERO,
            latency_mean_extra: Duration::ZERO,
            latency_max: Duration::ZERO,
            ..Faults::default()
        }
    }

    /// A one-way latency.
    pub fn latency(&self, rng: &mut SimRng) -> Duration {
        let extra = rng.exponential(self.latency_mean_extra.as_nanos() as f64) as u64;
        Duration::from_nanos(self.latency_min.as_nanos().saturating_add(extra))
            .min(self.latency_max)
    }

    /// The fate of one Pub/Sub message on its way to one subscriber.
    pub fn fate(&self, rng: &mut SimRng) -> Fate {
        if rng.chance(self.loss) {
            return Fate::Drop;
        }
        let first = self.latency(rng);
        if rng.chance(self.duplication) {
            Fate::Twice(first, self.latency(rng))
        } else {
            Fate::After(first)
        }
    }

    /// Whether `instance` is cut off from Redis at `t` seconds.
    pub fn partitioned(&self, instance: usize, t: f64) -> bool {
        self.outages
            .iter()
            .any(|o| o.instance == instance && t >= o.at && t < o.at + o.duration)
    }

    /// Whether any fault can make an instance miss an invalidation silently.
    pub fn lossy(&self) -> bool {
        self.loss > 0.0
    }
}
