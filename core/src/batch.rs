//! The batched strategy's buffer: written keys, deduplicated, in first-written
//! order, in fixed memory.
//!
//! Keys are copied into a byte arena; an open-addressing index over a hash of
//! the key bytes makes the duplicate check O(1) expected. A full buffer hands
//! the key back ([`Full`]) so the caller flushes early and pushes again: the
//! buffer never grows and never drops a key.

use crate::wire::escaped_len;

/// Keys in the engine's batch buffer.
pub const BATCH_KEYS: usize = 256;
/// Bytes of key text in the engine's batch buffer.
pub const BATCH_BYTES: usize = 16 * 1024;
/// Index slots of the engine's batch buffer (twice the keys, a power of two).
pub const BATCH_SLOTS: usize = 512;

/// The buffer is full: flush it, then push the key again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// What [`BatchBuffer::push`] did with a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The key was new and is now buffered.
    Added,
    /// The key was already buffered; nothing changed.
    Duplicate,
}

/// Where [`BatchBuffer::probe`] found a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Already buffered.
    Found,
    /// Not buffered; it would go in this slot.
    Vacant(usize),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// Deduplicated keys in first-written order: at most `KEYS` keys and `BYTES`
/// bytes, indexed by `SLOTS` hash slots (`SLOTS` a power of two, at least
/// `2 × KEYS`; checked at compile time).
#[derive(Clone, Debug)]
pub struct BatchBuffer<const KEYS: usize, const BYTES: usize, const SLOTS: usize> {
    arena: heapless::Vec<u8, BYTES>,
    spans: heapless::Vec<Span, KEYS>,
    /// 0 is an empty slot; `i + 1` points at `spans[i]`.
    slots: [u16; SLOTS],
    /// Sum over keys of their JSON string length (quotes and escapes included).
    json_len: usize,
}

/// The engine's batch buffer.
pub type DefaultBatchBuffer = BatchBuffer<BATCH_KEYS, BATCH_BYTES, BATCH_SLOTS>;

impl<const KEYS: usize, const BYTES: usize, const SLOTS: usize> Default
    for BatchBuffer<KEYS, BYTES, SLOTS>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<const KEYS: usize, const BYTES: usize, const SLOTS: usize> BatchBuffer<KEYS, BYTES, SLOTS> {
    const VALID: () = assert!(
        SLOTS.is_power_of_two()
            && SLOTS >= 2 * KEYS
            && KEYS < u16::MAX as usize
            && BYTES <= u32::MAX as usize,
        "BatchBuffer needs SLOTS a power of two >= 2 * KEYS, KEYS < 65535"
    );

    /// An empty buffer.
    pub const fn new() -> Self {
        let () = Self::VALID;
        BatchBuffer {
            arena: heapless::Vec::new(),
            spans: heapless::Vec::new(),
            slots: [0; SLOTS],
            json_len: 0,
        }
    }

    /// Buffers `key` unless it is already there. `Err(Full)` when it does not fit:
    /// nothing was changed, flush and push again. A key longer than `BYTES` never fits.
    pub fn push(&mut self, key: &str) -> Result<Pushed, Full> {
        match self.probe(key) {
            Probe::Found => Ok(Pushed::Duplicate),
            Probe::Vacant(slot) => self.insert(slot, key).map(|()| Pushed::Added),
        }
    }

    /// Looks `key` up: found, or the slot where it would go. The slot is valid
    /// until the buffer next changes.
    pub fn probe(&self, key: &str) -> Probe {
        let bytes = key.as_bytes();
        let mut slot = (hash(bytes) as usize) & (SLOTS - 1);
        // Bounded: SLOTS >= 2 * KEYS, so an empty slot always exists.
        loop {
            match self.slots[slot] {
                0 => return Probe::Vacant(slot),
                tagged if self.key_bytes(usize::from(tagged) - 1) == bytes => return Probe::Found,
                _ => slot = (slot + 1) & (SLOTS - 1),
            }
        }
    }

    /// Inserts `key` at the slot [`BatchBuffer::probe`] returned for it.
    pub fn insert(&mut self, slot: usize, key: &str) -> Result<(), Full> {
        let bytes = key.as_bytes();
        debug_assert!(self.slots[slot] == 0, "insert at a stale probe");
        if self.spans.is_full() || BYTES - self.arena.len() < bytes.len() || self.slots[slot] != 0 {
            return Err(Full);
        }
        let span = Span {
            start: self.arena.len() as u32,
            len: bytes.len() as u32,
        };
        self.arena.extend_from_slice(bytes).map_err(|_| Full)?;
        // Cannot fail: checked `is_full` above.
        self.spans.push(span).map_err(|_| Full)?;
        self.slots[slot] = self.spans.len() as u16;
        self.json_len += escaped_len(key);
        Ok(())
    }

    /// Whether `key` is buffered.
    pub fn contains(&self, key: &str) -> bool {
        self.probe(key) == Probe::Found
    }

    /// Buffered keys, in first-written order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + Clone + '_ {
        // Spans were copied from `&str`s whole, so they are valid UTF-8.
        (0..self.spans.len()).map(|i| core::str::from_utf8(self.key_bytes(i)).unwrap_or_default())
    }

    /// Number of buffered keys.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes of key text buffered.
    pub fn bytes(&self) -> usize {
        self.arena.len()
    }

    /// Length of the keys written as a JSON array body: each key quoted and
    /// escaped, separated by `", "`.
    pub fn json_len(&self) -> usize {
        self.json_len + 2 * self.spans.len().saturating_sub(1)
    }

    /// Empties the buffer.
    pub fn clear(&mut self) {
        self.arena.clear();
        self.spans.clear();
        self.slots = [0; SLOTS];
        self.json_len = 0;
    }

    /// Keeps only the keys `keep` says yes to, in their order, in place.
    ///
    /// ```
    /// use aci_core::batch::DefaultBatchBuffer;
    /// let mut batch = DefaultBatchBuffer::new();
    /// for key in ["a", "bb", "c", "dd"] {
    ///     batch.push(key).unwrap();
    /// }
    /// batch.retain(|key| key.len() == 2);
    /// assert_eq!(batch.iter().collect::<Vec<_>>(), ["bb", "dd"]);
    /// assert!(batch.contains("dd") && !batch.contains("a"));
    /// ```
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let (mut kept, mut end, mut json_len) = (0usize, 0usize, 0usize);
        for i in 0..self.spans.len() {
            let span = self.spans[i];
            let (start, len) = (span.start as usize, span.len as usize);
            let key = core::str::from_utf8(&self.arena[start..start + len]).unwrap_or_default();
            if !keep(key) {
                continue;
            }
            json_len += escaped_len(key);
            // Moving down over keys already dropped: `end <= start`.
            self.arena.copy_within(start..start + len, end);
            self.spans[kept] = Span {
                start: end as u32,
                len: span.len,
            };
            end += len;
            kept += 1;
        }
        self.arena.truncate(end);
        self.spans.truncate(kept);
        self.json_len = json_len;
        // Re-index: slot values point at span positions, which moved.
        self.slots = [0; SLOTS];
        for i in 0..kept {
            let mut slot = (hash(self.key_bytes(i)) as usize) & (SLOTS - 1);
            while self.slots[slot] != 0 {
                slot = (slot + 1) & (SLOTS - 1);
            }
            self.slots[slot] = (i + 1) as u16;
        }
    }

    fn key_bytes(&self, i: usize) -> &[u8] {
        let span = self.spans[i];
        &self.arena[span.start as usize..(span.start + span.len) as usize]
    }
}

/// FxHash over 8-byte words: fast for short keys, good enough for an index
/// whose every hit is confirmed by comparing the bytes.
#[inline]
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    let rest = chunks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    // The top bits are the best mixed; fold them down for the mask.
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Small = BatchBuffer<4, 32, 8>;

    #[test]
    fn dedups_in_first_written_order() {
        let mut b = Small::new();
        for k in ["b:1", "b:2", "b:1", "b:3"] {
            b.push(k).unwrap();
        }
        let mut it = b.iter();
        assert_eq!(it.next(), Some("b:1"));
        assert_eq!(it.next(), Some("b:2"));
        assert_eq!(it.next(), Some("b:3"));
        assert_eq!(it.next(), None);
        assert!(b.contains("b:2") && !b.contains("b:4"));
        assert_eq!(b.json_len(), r#""b:1", "b:2", "b:3""#.len());
    }

    #[test]
    fn full_hands_the_key_back() {
        let mut b = Small::new();
        for k in ["a", "b", "c", "d"] {
            assert_eq!(b.push(k), Ok(Pushed::Added));
        }
        assert_eq!(b.push("e"), Err(Full));
        assert_eq!(b.push("a"), Ok(Pushed::Duplicate), "a duplicate still fits");
        assert_eq!(b.len(), 4);
        b.clear();
        assert_eq!(b.push("e"), Ok(Pushed::Added));
        let long = "x".repeat(33);
        assert_eq!(b.push(&long), Err(Full));
    }

    proptest::proptest! {
        /// `retain` leaves what filtering a list would, still indexed, with
        /// its lengths right, and room for what was dropped.
        #[test]
        fn retain_is_a_filter(
            keys in proptest::collection::vec("[a-c\u{e9}\\\"]{0,6}", 0..40),
            mask in proptest::num::u64::ANY,
        ) {
            let mut b = DefaultBatchBuffer::new();
            let mut model: std::vec::Vec<std::string::String> = std::vec::Vec::new();
            for k in &keys {
                if b.push(k) == Ok(Pushed::Added) {
                    model.push(k.clone());
                }
            }
            let keep = |k: &str| mask >> (hash(k.as_bytes()) % 64) & 1 == 1;
            b.retain(keep);
            model.retain(|k| keep(k));
            proptest::prop_assert_eq!(b.iter().collect::<std::vec::Vec<_>>(), model.iter().map(|k| k.as_str()).collect::<std::vec::Vec<_>>());
            let mut fresh = DefaultBatchBuffer::new();
            for k in &model {
                fresh.push(k).unwrap();
            }
            proptest::prop_assert_eq!(b.json_len(), fresh.json_len());
            proptest::prop_assert_eq!(b.bytes(), fresh.bytes());
            for k in &keys {
                proptest::prop_assert_eq!(b.contains(k), model.contains(k));
            }
            for k in &keys {
                let added = b.push(k).unwrap();
                proptest::prop_assert_eq!(added == Pushed::Added, !model.contains(k));
                if added == Pushed::Added {
                    model.push(k.clone());
                }
            }
        }
    }

    #[test]
    fn escaped_length_is_tracked() {
        let mut b = Small::new();
        b.push("caf\u{e9}").unwrap();
        assert_eq!(b.json_len(), r#""caf\u00e9""#.len());
    }
}
