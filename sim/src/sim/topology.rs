//! Which shard serves each of the fleet's channels on a simulated Redis
//! Cluster: slots in equal ranges per shard, as `redis-cli --cluster
//! create` assigns them, then whatever moved.

use std::collections::HashMap;

use aci_core::naming::{slot_of, SLOTS};

pub(crate) struct Topology {
    shards: usize,
    /// Slots moved away from their first owner, and where to.
    moved: HashMap<u16, usize>,
}

impl Topology {
    pub(crate) fn new(shards: usize) -> Self {
        Topology {
            shards: shards.max(1),
            moved: HashMap::new(),
        }
    }

    /// The shard owning `channel`'s slot.
    pub(crate) fn shard_of(&self, channel: &str) -> usize {
        let slot = slot_of(channel);
        self.moved
            .get(&slot)
            .copied()
            .unwrap_or(usize::from(slot) * self.shards / usize::from(SLOTS))
    }

    /// Moves `channel`'s slot to the next shard; returns the slot.
    pub(crate) fn move_slot_of(&mut self, channel: &str) -> u16 {
        let to = (self.shard_of(channel) + 1) % self.shards;
        let slot = slot_of(channel);
        self.moved.insert(slot, to);
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_split_evenly_then_move_to_the_next_shard() {
        let mut topology = Topology::new(3);
        // `foo` is in slot 12182: the third of three ranges.
        assert_eq!(topology.shard_of("foo"), 2);
        assert_eq!(topology.shard_of("{foo}:bar"), 2);
        assert_eq!(topology.move_slot_of("foo"), 12_182);
        assert_eq!(topology.shard_of("{foo}:bar"), 0);
        topology.move_slot_of("foo");
        assert_eq!(topology.shard_of("foo"), 1);
    }
}
