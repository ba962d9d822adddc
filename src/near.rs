//! The near cache (L1): a bounded in-process map of stored keys to values,
//! with expiry, and the bookkeeping that keeps a slow read from caching a
//! value that an invalidation has already condemned.
//!
//! # The fill/invalidate race
//!
//! A reader misses, asks Redis, and gets the value back some time later. If
//! an invalidation of that key arrived in between, the value read may be the
//! old one and must not be cached. Every key hashes to one of `STRIPES`
//! generation counters; an invalidation or a local write bumps the key's
//! counter, dropping the whole cache bumps a global epoch. A fill remembers
//! both when its read starts ([`NearCache::begin_fill`]) and caches its value
//! only if neither moved ([`NearCache::finish_fill`]). Two keys sharing a
//! stripe only cost a skipped fill, never a stale entry.
//!
//! While the subscription is down the cache is disabled: nothing is cached,
//! because nothing would tell us to drop it.
//!
//! # Time
//!
//! Time is an argument, as in the engine: the blocking and async caches pass
//! the OS's coarse clock (see `clock.rs`), the simulator its virtual one.

use crate::sync::{lock, AtomicBool, AtomicU64, Mutex, Ordering};
use aci_core::{Duration, Instant};

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

/// Generation counters; a power of two.
const STRIPES: usize = 256;
/// Bytes charged per entry on top of its key and value: the map's slot, the
/// key and `Bytes` headers, the expiry.
pub(crate) const ENTRY_OVERHEAD: u64 = 64;

/// Keys up to 24 bytes are stored inline: a lookup compares them without
/// another trip to memory.
type Key = compact_str::CompactString;

#[derive(Clone, Debug)]
struct Entry {
    value: Bytes,
    expires: Instant,
}

/// Charges every entry at least `capacity_bytes / capacity_entries`, so one
/// weight limit enforces both the byte and the entry bound.
#[derive(Clone, Copy, Debug)]
struct Weigh {
    floor: u64,
}

impl Weighter<Key, Entry> for Weigh {
    fn weight(&self, key: &Key, entry: &Entry) -> u64 {
        (key.len() as u64 + entry.value.len() as u64 + ENTRY_OVERHEAD).max(self.floor)
    }
}

/// Proof that a read or write began, to hand to [`NearCache::finish_fill`]
/// or [`NearCache::finish_write`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct FillToken {
    stripe: usize,
    generation: u64,
    epoch: u64,
}

/// The bounded near cache. All methods take `&self`; it is shared by threads.
pub(crate) struct NearCache {
    map: Cache<Key, Entry, Weigh>,
    generations: Vec<Mutex<u64>>,
    epoch: AtomicU64,
    enabled: AtomicBool,
    /// Invalidation buckets whose channel is down: their keys are not
    /// cached until it is back (see [`NearCache::deafen`]).
    deaf: Mutex<Vec<u16>>,
    /// Whether `deaf` holds anything: the fill paths look no further.
    any_deaf: AtomicBool,
    naming: aci_core::Naming,
    ttl: Duration,
    /// Largest value kept; larger ones are counted in `oversized`.
    max_value: u64,
    oversized: std::sync::atomic::AtomicU64,
}

impl NearCache {
    /// A cache of at most `max_entries` entries and `max_bytes` bytes, whose
    /// entries live `ttl`, keeping values of at most `max_value` bytes.
    /// Starts disabled (no subscription yet).
    pub(crate) fn new(max_entries: usize, max_bytes: u64, max_value: u64, ttl: Duration) -> Self {
        let floor = (max_bytes / max_entries.max(1) as u64).max(1);
        NearCache {
            map: map(max_entries, max_bytes, max_value, floor),
            generations: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            epoch: AtomicU64::new(0),
            enabled: AtomicBool::new(false),
            deaf: Mutex::new(Vec::new()),
            any_deaf: AtomicBool::new(false),
            naming: aci_core::Naming::Server,
            ttl,
            max_value,
            oversized: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Keys are spread over invalidation buckets as `naming` says (for
    /// [`NearCache::deafen`]).
    pub(crate) fn with_naming(mut self, naming: aci_core::Naming) -> Self {
        self.naming = naming;
        self
    }

    /// `bucket`'s channel is down: drop its entries, condemn reads in
    /// flight, and cache none of its keys until [`NearCache::hear`].
    pub(crate) fn deafen(&self, bucket: u16) {
        {
            let mut deaf = lock(&self.deaf);
            if !deaf.contains(&bucket) {
                deaf.push(bucket);
            }
            self.any_deaf.store(true, Ordering::SeqCst);
        }
        let naming = self.naming;
        self.clear_where(|key| naming.bucket_of(key) == bucket);
    }

    /// `bucket`'s channel is heard again (`None`: every bucket's).
    pub(crate) fn hear(&self, bucket: Option<u16>) {
        let mut deaf = lock(&self.deaf);
        match bucket {
            Some(bucket) => deaf.retain(|&b| b != bucket),
            None => deaf.clear(),
        }
        self.any_deaf.store(!deaf.is_empty(), Ordering::SeqCst);
    }

    /// Whether `key`'s bucket channel is down.
    fn is_deaf(&self, key: &str) -> bool {
        self.any_deaf.load(Ordering::SeqCst)
            && lock(&self.deaf).contains(&self.naming.bucket_of(key))
    }

    /// Values not kept because they exceed the largest value size.
    pub(crate) fn oversized(&self) -> u64 {
        self.oversized.load(Ordering::Relaxed)
    }

    /// Whether a value of `len` bytes may be kept; counts it if not.
    fn fits(&self, len: usize) -> bool {
        let fits = len as u64 <= self.max_value;
        if !fits {
            self.oversized.fetch_add(1, Ordering::Relaxed);
        }
        fits
    }

    /// The value for `key`, if cached and not expired.
    #[inline(always)]
    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<Bytes> {
        let entry = self.map.get(key)?;
        if entry.expires > now {
            Some(entry.value)
        } else {
            None
        }
    }

    /// Whether `key` is cached and not expired, without making it hotter.
    pub(crate) fn peek(&self, key: &str, now: Instant) -> bool {
        self.map.peek(key).is_some_and(|entry| entry.expires > now)
    }

    /// Notes that a read of `key` from Redis is starting.
    pub(crate) fn begin_fill(&self, key: &str) -> FillToken {
        let stripe = stripe_of(key);
        let generation = *lock(&self.generations[stripe]);
        FillToken {
            stripe,
            generation,
            epoch: self.epoch.load(Ordering::SeqCst),
        }
    }

    /// Whether nothing condemned reads begun with `token` yet: no
    /// invalidation or local write of a key of its stripe, no drop of the
    /// whole cache.
    pub(crate) fn is_current(&self, token: &FillToken) -> bool {
        *lock(&self.generations[token.stripe]) == token.generation
            && self.epoch.load(Ordering::SeqCst) == token.epoch
    }

    /// Caches the value a read returned, unless the key was invalidated or
    /// written, or the cache dropped or disabled, since the read began.
    /// Whether it was cached.
    pub(crate) fn finish_fill(
        &self,
        token: FillToken,
        key: &str,
        value: Bytes,
        now: Instant,
        expires_by: Option<Instant>,
    ) -> bool {
        let generation = lock(&self.generations[token.stripe]);
        if *generation != token.generation
            || self.epoch.load(Ordering::SeqCst) != token.epoch
            || !self.enabled.load(Ordering::SeqCst)
            || self.is_deaf(key)
            || !self.fits(value.len())
        {
            return false;
        }
        self.map
            .insert(Key::from(key), self.entry(value, now, expires_by));
        // A whole-cache drop that raced with the insert: it may have cleared
        // before we inserted. Undo rather than leave an entry it condemned.
        if self.epoch.load(Ordering::SeqCst) != token.epoch {
            self.map.remove(key);
            return false;
        }
        drop(generation);
        true
    }

    /// A write of `key` by this instance is about to be sent: condemn reads
    /// and earlier writes of it in flight, and remember the moment.
    pub(crate) fn begin_write(&self, key: &str) -> FillToken {
        let stripe = stripe_of(key);
        let mut generation = lock(&self.generations[stripe]);
        *generation += 1;
        self.map.remove(key);
        FillToken {
            stripe,
            generation: *generation,
            epoch: self.epoch.load(Ordering::SeqCst),
        }
    }

    /// Redis acknowledged the write begun with `token`: cache `value` (read
    /// your writes) — unless, since the write began, the key was invalidated
    /// by another instance or written again here, or the cache was dropped.
    /// Then Redis's order of the competing writes is unknown, so the key is
    /// dropped instead and the next read asks Redis. Whether it was cached.
    pub(crate) fn finish_write(
        &self,
        token: FillToken,
        key: &str,
        value: Bytes,
        now: Instant,
        expires_by: Option<Instant>,
    ) -> bool {
        let mut generation = lock(&self.generations[token.stripe]);
        let undisturbed = *generation == token.generation
            && self.epoch.load(Ordering::SeqCst) == token.epoch
            && self.enabled.load(Ordering::SeqCst)
            && !self.is_deaf(key);
        // Either way, reads that began before now may have seen the old value.
        *generation += 1;
        if !undisturbed || !self.fits(value.len()) {
            self.map.remove(key);
            return false;
        }
        self.map
            .insert(Key::from(key), self.entry(value, now, expires_by));
        if self.epoch.load(Ordering::SeqCst) != token.epoch {
            self.map.remove(key);
            return false;
        }
        true
    }

    /// Drops `key` and condemns reads of it in flight.
    pub(crate) fn invalidate(&self, key: &str) {
        let mut generation = lock(&self.generations[stripe_of(key)]);
        *generation += 1;
        self.map.remove(key);
    }

    /// Drops every entry whose key `drop` says yes to, and condemns every
    /// read in flight (which key a read is for is not tracked per
    /// predicate: condemning them all is the safe side).
    pub(crate) fn clear_where(&self, drop: impl Fn(&str) -> bool) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.map.retain(|key, _| !drop(key));
    }

    /// Drops everything and condemns every read in flight.
    pub(crate) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.map.clear();
    }

    /// Enables caching (subscribed) or disables it (not subscribed). Either
    /// way everything cached so far is dropped.
    pub(crate) fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
        self.clear();
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes charged, at most the configured capacity.
    pub(crate) fn weight(&self) -> u64 {
        self.map.weight()
    }

    /// An entry that lives `local_ttl`, and never past `expires_by` (when
    /// its value expires in Redis).
    fn entry(&self, value: Bytes, now: Instant, expires_by: Option<Instant>) -> Entry {
        let expires = now + self.ttl;
        Entry {
            value,
            expires: expires_by.map_or(expires, |by| by.min(expires)),
        }
    }
}

/// The map: quick_cache splits its capacity over shards, and a value
/// heavier than a shard's share is never kept — with the default shard
/// count (4 per core) a 64 MiB cache could not keep a 10 MB value. Fewer
/// shards, so that each holds at least two of the largest values allowed.
fn map(max_entries: usize, max_bytes: u64, max_value: u64, floor: u64) -> Cache<Key, Entry, Weigh> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let fit = max_bytes / (2 * (max_value + ENTRY_OVERHEAD)).max(1);
    let shards = usize::try_from(fit)
        .unwrap_or(usize::MAX)
        .clamp(1, cores * 4);
    // A power of two at most `shards` (quick_cache rounds up otherwise).
    let shards = 1usize << (usize::BITS - 1 - shards.leading_zeros());
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(max_entries.min(1 << 20))
        .weight_capacity(max_bytes)
        .shards(shards)
        .build();
    match options {
        Ok(options) => Cache::with_options(
            options,
            Weigh { floor },
            quick_cache::DefaultHashBuilder::default(),
            Default::default(),
        ),
        // Only a zero capacity fails, which the settings refuse.
        Err(_) => Cache::with_weighter(max_entries.min(1 << 20), max_bytes, Weigh { floor }),
    }
}

fn stripe_of(key: &str) -> usize {
    // FNV-1a: stripes only need spreading, not resistance to attack (a
    // collision costs a skipped fill).
    let mut h: u32 = 0x811c_9dc5;
    for &b in key.as_bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h as usize) & (STRIPES - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Instant = Instant::from_secs(100);

    fn enabled(entries: usize, bytes: u64) -> NearCache {
        let near = NearCache::new(entries, bytes, bytes / 2, Duration::from_secs(10));
        near.set_enabled(true);
        near
    }

    fn v(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn fill_then_hit_then_expire() {
        let near = enabled(100, 1 << 20);
        let token = near.begin_fill("k");
        assert!(near.finish_fill(token, "k", v("v"), T0, None));
        assert_eq!(near.get("k", T0).as_deref(), Some(&b"v"[..]));
        assert_eq!(
            near.get("k", T0 + Duration::from_millis(9_999)).as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(near.get("k", T0 + Duration::from_secs(10)), None);
    }

    #[test]
    fn an_entry_never_outlives_its_value_in_redis() {
        let near = enabled(100, 1 << 20);
        let token = near.begin_fill("k");
        let by = T0 + Duration::from_secs(1);
        assert!(near.finish_fill(token, "k", v("otp"), T0, Some(by)));
        assert!(near.get("k", T0 + Duration::from_millis(999)).is_some());
        assert_eq!(near.get("k", by), None, "local_ttl is 10 s, the value 1 s");
        let token = near.begin_write("w");
        assert!(near.finish_write(token, "w", v("otp"), T0, Some(by)));
        assert_eq!(near.get("w", by), None);
    }

    #[test]
    fn a_fill_raced_by_an_invalidation_is_not_cached() {
        let near = enabled(100, 1 << 20);
        let token = near.begin_fill("k");
        near.invalidate("k");
        assert!(!near.finish_fill(token, "k", v("old"), T0, None));
        assert_eq!(near.get("k", T0), None);
    }

    fn write(near: &NearCache, key: &str, value: Bytes) -> bool {
        let token = near.begin_write(key);
        near.finish_write(token, key, value, T0, None)
    }

    #[test]
    fn a_fill_raced_by_a_local_write_keeps_the_write() {
        let near = enabled(100, 1 << 20);
        let token = near.begin_fill("k");
        assert!(write(&near, "k", v("new")));
        assert!(!near.finish_fill(token, "k", v("old"), T0, None));
        assert_eq!(near.get("k", T0).as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn overlapping_local_writes_cache_neither() {
        // Redis may have applied them in either order.
        for acks_in_order in [true, false] {
            let near = enabled(100, 1 << 20);
            let first = near.begin_write("k");
            let second = near.begin_write("k");
            if acks_in_order {
                assert!(!near.finish_write(first, "k", v("first"), T0, None));
                assert!(!near.finish_write(second, "k", v("second"), T0, None));
            } else {
                // The later write's ack first: cached until the earlier ack
                // shows the two overlapped (one round trip at most).
                near.finish_write(second, "k", v("second"), T0, None);
                assert!(!near.finish_write(first, "k", v("first"), T0, None));
            }
            assert_eq!(near.get("k", T0), None, "in order: {acks_in_order}");
        }
    }

    #[test]
    fn a_write_overtaken_by_a_peer_invalidation_is_not_cached() {
        let near = enabled(100, 1 << 20);
        let token = near.begin_write("k");
        near.invalidate("k"); // a peer's newer write, announced before our ack
        assert!(!near.finish_write(token, "k", v("ours"), T0, None));
        assert_eq!(near.get("k", T0), None);
    }

    #[test]
    fn a_fill_raced_by_a_drop_is_not_cached() {
        let near = enabled(100, 1 << 20);
        let token = near.begin_fill("k");
        near.clear();
        assert!(!near.finish_fill(token, "k", v("v"), T0, None));
    }

    #[test]
    fn disabled_caches_nothing() {
        let near = NearCache::new(100, 1 << 20, 1 << 19, Duration::from_secs(10));
        let token = near.begin_fill("k");
        assert!(!near.finish_fill(token, "k", v("v"), T0, None));
        assert!(!write(&near, "k", v("v")));
        assert_eq!(near.get("k", T0), None);
    }

    #[test]
    fn bounded_by_entries_and_bytes() {
        let near = enabled(50, 1 << 20);
        for i in 0..1000 {
            write(&near, &format!("k{i}"), v("v"));
        }
        assert!(near.len() <= 50, "{} entries", near.len());
        let near = enabled(1_000_000, 10_000);
        for i in 0..1000 {
            write(&near, &format!("k{i}"), Bytes::from(vec![0u8; 500]));
        }
        assert!(near.weight() <= 10_000, "{} bytes", near.weight());
    }
}
