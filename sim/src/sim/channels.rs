//! A cluster's subscription losing one channel while the others hold: a
//! slot that moved, a shard whose connections dropped.
//!
//! Redis stops delivering on the channel at once; the subscriber hears of
//! it one hop later (an unsolicited `sunsubscribe`, or the broken
//! connection), drops what the channel covers ([`Instance::channel_lost`]),
//! asks for the topology again and subscribes at the channel's owner; once
//! Redis has the subscription it delivers again, and one hop later the
//! subscriber calls [`Instance::channel_restored`] — the order the cluster
//! subscriber of `aci-transports` follows. The partial drop is checked as
//! it happens: every entry the lost channel covers goes, every other stays.
//!
//! [`Instance::channel_lost`]: aci_cache::instance::Instance::channel_lost
//! [`Instance::channel_restored`]: aci_cache::instance::Instance::channel_restored

use aci_core::naming::slot_of;
use aci_core::Instant;

use super::event::Event;
use super::{at_secs, Sim};

/// One subscriber's view of one channel, as Redis holds it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ChannelState {
    /// Whether Redis has stopped delivering on it to this subscriber.
    pub(super) down: bool,
    /// Bumped at every loss and every whole resubscription: the late steps
    /// of an earlier loss are ignored.
    pub(super) generation: u32,
    /// When Redis last stopped delivering on it…
    pub(super) lost_at: Option<Instant>,
    /// …and when it delivered again (`None` while down).
    pub(super) back_at: Option<Instant>,
}

impl ChannelState {
    /// Whether it was down at some time in `from..=to`.
    pub(super) fn down_during(&self, from: Instant, to: Instant) -> bool {
        self.lost_at
            .is_some_and(|lost| lost <= to && self.back_at.is_none_or(|back| back >= from))
    }
}

impl Sim {
    pub(super) fn schedule_cluster_faults(&mut self) {
        let faults = &self.config.faults;
        let drops: Vec<f64> = faults.shard_drops.iter().map(|d| d.at).collect();
        let moves: Vec<f64> = faults.slot_moves.iter().map(|m| m.at).collect();
        for (index, at) in drops.into_iter().enumerate() {
            self.schedule(at_secs(at), Event::ShardDrop { index });
        }
        for (index, at) in moves.into_iter().enumerate() {
            self.schedule(at_secs(at), Event::SlotMove { index });
        }
    }

    /// A slot moves to the next shard: every subscriber loses every channel
    /// in it.
    pub(super) fn slot_move(&mut self, index: usize) {
        let bucket = self.config.faults.slot_moves[index].bucket;
        let channel = bucket.map_or(self.strategy_channel, usize::from);
        let Some(topology) = self.topology.as_mut() else {
            return;
        };
        let slot = topology.move_slot_of(&self.channels[channel]);
        self.obs.slot_moves += 1;
        for c in 0..self.channels.len() {
            if slot_of(&self.channels[c]) == slot {
                for node in 0..self.nodes.len() {
                    self.lose_channel(node, c);
                }
            }
        }
    }

    /// A shard's subscriber connections drop: every channel it serves is
    /// lost to the subscribers named.
    pub(super) fn shard_drop(&mut self, index: usize) {
        let drop = self.config.faults.shard_drops[index].clone();
        let Some(topology) = self.topology.as_ref() else {
            return;
        };
        let served: Vec<usize> = (0..self.channels.len())
            .filter(|&c| topology.shard_of(&self.channels[c]) == drop.shard)
            .collect();
        self.obs.shard_drops += 1;
        for node in 0..self.nodes.len() {
            if drop.instance.is_none_or(|only| only == node) {
                for &c in &served {
                    self.lose_channel(node, c);
                }
            }
        }
    }

    /// Redis stops delivering `channel` to `node`; the node hears of it
    /// one hop later.
    fn lose_channel(&mut self, node: usize, channel: usize) {
        let n = &self.nodes[node];
        if !n.alive || !n.instance.is_subscribed() || self.cut_off(node) {
            // No subscription to lose: the next one covers every channel.
            return;
        }
        let now = self.now;
        let n = &mut self.nodes[node];
        let state = &mut n.channels[channel];
        state.down = true;
        state.generation += 1;
        state.lost_at = Some(now);
        state.back_at = None;
        let (life, generation) = (n.life, state.generation);
        let at = now + self.links.hop(&mut self.rng);
        self.schedule(
            at,
            Event::ChannelLostNotice {
                node,
                life,
                channel,
                generation,
            },
        );
    }

    /// Whether an event of `channel`'s loss `generation` still applies.
    fn current(&self, node: usize, life: u32, channel: usize, generation: u32) -> bool {
        let n = &self.nodes[node];
        self.live(node, life)
            && n.instance.is_subscribed()
            && n.channels[channel].generation == generation
    }

    /// The subscriber hears that `channel` is lost: it drops what the
    /// channel covers, then asks for the topology again and subscribes at
    /// the channel's owner ([`Cluster::resubscribe`](crate::Cluster::resubscribe)).
    pub(super) fn channel_lost_noticed(
        &mut self,
        node: usize,
        life: u32,
        channel: usize,
        generation: u32,
    ) {
        if !self.current(node, life, channel, generation) {
            return;
        }
        self.drop_channel_checked(node, channel);
        self.after(node);
        let resubscribe = self.config.cluster.and_then(|c| c.resubscribe);
        let took = resubscribe.unwrap_or_else(|| {
            // Four round trips and the subscription's own hop to Redis.
            (0..7).fold(self.links.hop(&mut self.rng), |sum, _| {
                sum + self.links.hop(&mut self.rng)
            })
        });
        let at = self.now + took;
        let event = Event::ChannelBackAtServer {
            node,
            life,
            channel,
            generation,
        };
        self.schedule(at, event);
    }

    /// The new subscription reaches Redis: it delivers again, and confirms
    /// one hop later. A node cut off from Redis fails to subscribe and
    /// falls back to losing its whole subscription.
    pub(super) fn channel_back_at_server(
        &mut self,
        node: usize,
        life: u32,
        channel: usize,
        generation: u32,
    ) {
        if !self.current(node, life, channel, generation) {
            return;
        }
        if self.cut_off(node) {
            self.obs.failed_resubscribes += 1;
            self.lose_subscription(node);
            return;
        }
        let state = &mut self.nodes[node].channels[channel];
        state.down = false;
        state.back_at = Some(self.now);
        let at = self.now + self.links.hop(&mut self.rng);
        let event = Event::ChannelRestored {
            node,
            life,
            channel,
            generation,
        };
        self.schedule(at, event);
    }

    pub(super) fn channel_restored(
        &mut self,
        node: usize,
        life: u32,
        channel: usize,
        generation: u32,
    ) {
        if !self.current(node, life, channel, generation) {
            return;
        }
        self.obs.channel_restores += 1;
        let name = &self.channels[channel];
        self.nodes[node].instance.channel_restored(name, self.now);
        self.after(node);
    }

    /// A whole new subscription is up (after an outage, or a restart):
    /// Redis delivers every channel again, and what was pending of an
    /// earlier channel loss no longer applies.
    pub(super) fn every_channel_heard(&mut self, node: usize) {
        let now = self.now;
        for state in &mut self.nodes[node].channels {
            state.generation += 1;
            if state.down {
                state.down = false;
                state.back_at = Some(now);
            }
        }
    }

    /// [`Instance::channel_lost`](aci_cache::instance::Instance::channel_lost),
    /// checked: of the entries cached before, those the channel covers (its
    /// bucket's keys; every key for the control channel or a single
    /// invalidation channel) are gone and all the others are still there.
    fn drop_channel_checked(&mut self, node: usize, channel: usize) {
        let now = self.now;
        let covers_all = channel == self.strategy_channel || self.strategy_channel == 1;
        let instance = &self.nodes[node].instance;
        let before: Vec<bool> = self
            .keys
            .iter()
            .map(|k| instance.is_cached(k, now))
            .collect();
        instance.channel_lost(&self.channels[channel]);
        let (mut dropped, mut kept) = (0, 0);
        let mut wrong = Vec::new();
        for (key, _) in before.iter().enumerate().filter(|(_, &cached)| cached) {
            let covered = covers_all || usize::from(self.key_bucket[key]) == channel;
            match (covered, instance.is_cached(&self.keys[key], now)) {
                (true, false) => dropped += 1,
                (false, true) => kept += 1,
                (true, true) => wrong.push(format!("kept k{key}, which it covers")),
                (false, false) => wrong.push(format!("dropped k{key}, which it does not cover")),
            }
        }
        self.obs.channel_losses += 1;
        self.obs.dropped_by_channel_loss += dropped;
        self.obs.kept_by_channel_loss += kept;
        if let Some(first) = wrong.first() {
            let msg = format!(
                "instance {node} lost {} and {first} ({} wrong in all)",
                self.channels[channel],
                wrong.len()
            );
            self.obs.violation(now, msg);
        }
    }
}
