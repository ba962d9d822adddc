//! The events of a run, and the small entries the queue orders them by.

use std::cmp::Ordering;
use std::rc::Rc;

use aci_cache::instance::{LeaseCall, Outbound, PreparedWrite};
use aci_cache::transports::{LeaseState, TransportError};
use aci_core::{Instant, Mode, Strategy};

use super::published::Published;

/// Kept small (the rare, large payloads are boxed): every event is moved
/// into the slab and out again.
pub(super) enum Event {
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
        /// Shared by every subscriber's copy (the run is single-threaded),
        /// decoded once.
        payload: Rc<Published>,
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
    /// An instance tries to subscribe again, when its backoff says.
    Resubscribe {
        node: usize,
        life: u32,
    },
    Crash,
    /// The adversary publishes a forged decision.
    Forgery,
    Restart,
    /// A cluster's slot moves (`Faults::slot_moves[index]`).
    SlotMove {
        index: usize,
    },
    /// A shard's subscriber connections drop (`Faults::shard_drops[index]`).
    ShardDrop {
        index: usize,
    },
    /// A subscriber hears that Redis dropped its subscription to a channel.
    ChannelLostNotice {
        node: usize,
        life: u32,
        channel: usize,
        generation: u32,
    },
    /// Its new subscription to the channel reaches Redis.
    ChannelBackAtServer {
        node: usize,
        life: u32,
        channel: usize,
        generation: u32,
    },
    /// Redis's confirmation reaches it.
    ChannelRestored {
        node: usize,
        life: u32,
        channel: usize,
        generation: u32,
    },
    Sample,
    ConvergenceCheck {
        controller: usize,
        strategy: Strategy,
        since: Instant,
    },
}

/// A heap entry: small, so the heap moves little; the event waits in a slab.
pub(super) struct Scheduled {
    pub(super) at: Instant,
    pub(super) seq: u64,
    pub(super) slot: u32,
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
