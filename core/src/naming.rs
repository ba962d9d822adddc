//! Where the fleet's names live in Redis: one server, or a Redis Cluster.
//!
//! On one server every name is the original's (`aci:ns:invalidation`,
//! `aci:ns:strategy`, `aci:ns:lease`). On a cluster, a name's slot decides
//! which node owns it, so the control plane is pinned to one slot by a hash
//! tag (`aci:{ns}:lease`, `aci:{ns}:lease:term`, `aci:{ns}:strategy`: the
//! lease script touches two keys and would be refused as `CROSSSLOT`
//! otherwise), and invalidations may be spread over several channels,
//! *buckets*, each in a slot of its own (`aci:{ns/3}:invalidation`), so that
//! a busy namespace's messages are not all carried by one shard. A key's
//! bucket is a stable hash of the key, the same on every instance. Data keys
//! are never tagged: a namespace would otherwise be one slot.
//!
//! ```
//! use aci_core::{naming::Naming, Config};
//!
//! let config = Config::builder()
//!     .namespace("users")
//!     .naming(Naming::Sharded { buckets: 4 })
//!     .build()?;
//! assert_eq!(config.lease_key(), "aci:{users}:lease");
//! assert_eq!(config.strategy_channel(), "aci:{users}:strategy");
//! let bucket = config.bucket_of("user:42");
//! assert!(bucket < 4);
//! assert_eq!(
//!     config.invalidation_channel_of(bucket).as_str(),
//!     format!("aci:{{users/{bucket}}}:invalidation"),
//! );
//! assert_eq!(config.bucket_of_channel(&format!("aci:{{users/{bucket}}}:invalidation")), Some(bucket));
//! # Ok::<(), aci_core::ConfigError>(())
//! ```

/// Most invalidation buckets a [`Naming::Sharded`] configuration may use.
pub const MAX_BUCKETS: u16 = 1024;

/// How names are laid out in Redis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Naming {
    /// One Redis server: the Python original's names, plain `PUBLISH`.
    #[default]
    Server,
    /// Redis Cluster with sharded Pub/Sub (`SPUBLISH`): the control plane
    /// in one slot by hash tag, invalidations over `buckets` channels
    /// (1 to [`MAX_BUCKETS`]). One bucket is `aci:{ns}:invalidation`, in the
    /// control plane's slot; more are `aci:{ns/i}:invalidation`.
    Sharded {
        /// How many invalidation channels the namespace spans.
        buckets: u16,
    },
    /// Redis Cluster with the original's channel names and plain `PUBLISH`
    /// (which a cluster forwards to every node), for a fleet mixed with the
    /// Python original; only the lease keys are hash-tagged.
    Classic,
}

impl Naming {
    /// How many invalidation channels there are: 1 unless sharded over more.
    pub const fn buckets(self) -> u16 {
        match self {
            Naming::Sharded { buckets } if buckets > 1 => buckets,
            _ => 1,
        }
    }

    /// Whether names live on a Redis Cluster.
    pub const fn is_cluster(self) -> bool {
        !matches!(self, Naming::Server)
    }

    /// Whether messages go out with sharded Pub/Sub (`SPUBLISH`,
    /// `SSUBSCRIBE`) rather than `PUBLISH`.
    pub const fn is_sharded(self) -> bool {
        matches!(self, Naming::Sharded { .. })
    }

    /// The bucket of `key`: CRC16 of the key (the checksum Redis Cluster
    /// hashes keys with) modulo [`Naming::buckets`]. Always 0 with one
    /// bucket.
    ///
    /// ```
    /// use aci_core::naming::Naming;
    /// let naming = Naming::Sharded { buckets: 8 };
    /// assert_eq!(naming.bucket_of("user:42"), naming.bucket_of("user:42"));
    /// assert_eq!(Naming::Server.bucket_of("user:42"), 0);
    /// ```
    #[inline]
    pub fn bucket_of(self, key: &str) -> u16 {
        match self.buckets() {
            1 => 0,
            n => crc16(key.as_bytes()) % n,
        }
    }
}

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// The cluster slot of a key or a sharded channel: CRC16 of its hash tag
/// (the text between the first `{` and the next `}`, when not empty), or of
/// the whole name.
///
/// ```
/// use aci_core::naming::slot_of;
/// assert_eq!(slot_of("123456789"), 12_739);
/// // A hash tag pins names to one slot.
/// assert_eq!(slot_of("aci:{users}:lease"), slot_of("aci:{users}:strategy"));
/// assert_eq!(slot_of("{}a"), slot_of("{}a"));
/// ```
pub fn slot_of(name: &str) -> u16 {
    let bytes = name.as_bytes();
    let tagged = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let close = bytes[open + 1..].iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &bytes[open + 1..open + 1 + close])
        })
        .unwrap_or(bytes);
    crc16(tagged) % SLOTS
}

/// CRC16-CCITT (XMODEM), as Redis Cluster computes key slots.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from(((crc >> 8) as u8) ^ b)]
    })
}

const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_hash_tags() {
        // `CLUSTER KEYSLOT` on redis-server 7.0.15.
        assert_eq!(slot_of("foo"), 12182);
        assert_eq!(slot_of("aci:{foo}:lease"), 12182);
        assert_eq!(slot_of("a{}b{foo}"), crc16(b"a{}b{foo}") % SLOTS);
        assert_eq!(slot_of("x{foo"), crc16(b"x{foo") % SLOTS);
    }

    #[test]
    fn crc16_is_redis_clusters() {
        // The cluster spec's test vector ("123456789" -> 0x31C3), and slots
        // `CLUSTER KEYSLOT` printed on redis-server 7.0.15.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b"foo") % 16384, 12182);
        assert_eq!(crc16(b"bar") % 16384, 5061);
        assert_eq!(crc16(b"user:42") % 16384, 15880);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn buckets_spread_keys_and_stay_in_range() {
        let naming = Naming::Sharded { buckets: 16 };
        let mut seen = [0u32; 16];
        for i in 0..16_000 {
            let mut key = heapless::String::<32>::new();
            let _ = core::fmt::write(&mut key, format_args!("user:{i}:profile"));
            seen[usize::from(naming.bucket_of(&key))] += 1;
        }
        // 1,000 per bucket expected; a stable hash keeps each within ±20%.
        assert!(seen.iter().all(|&n| (800..=1200).contains(&n)), "{seen:?}");
    }

    #[test]
    fn one_bucket_unless_sharded_over_more() {
        assert_eq!(Naming::Server.buckets(), 1);
        assert_eq!(Naming::Classic.buckets(), 1);
        assert_eq!(Naming::Sharded { buckets: 1 }.buckets(), 1);
        assert_eq!(Naming::Sharded { buckets: 0 }.buckets(), 1);
        assert_eq!(Naming::Sharded { buckets: 7 }.buckets(), 7);
        assert!(!Naming::Server.is_cluster());
        assert!(Naming::Classic.is_cluster() && !Naming::Classic.is_sharded());
    }
}
