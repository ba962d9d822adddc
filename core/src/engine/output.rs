//! The outbox: effects queued by inputs, drained by `poll_effect`, and the
//! byte buffers they borrow.

use super::effect::{BucketDrop, DropReason, Effect, InvalidatedKeys, MessageKind, Publish};
use super::{Engine, Timer};
use crate::config::{Name, MESSAGE_BYTES_CAP};
use crate::policy::Mode;
use crate::stats::{Stats, SwitchRecord};
use crate::strategy::Strategy;
use crate::time::{Duration, Instant};
use crate::wire::{encode_invalidation_prefixed, encode_strategy_update, Overflow, Signer, Sink};

/// Bytes of encoded payloads the outbox holds: one message of the largest
/// size plus room for decisions.
pub(crate) const OUTBOX_BYTES: usize = MESSAGE_BYTES_CAP + 2048;
/// Bytes of decoded keys from received invalidations.
pub(crate) const INBOUND_BYTES: usize = MESSAGE_BYTES_CAP;
/// Effects queued between two drains.
const QUEUE: usize = 32;
/// How soon a publish that found the outbox full is retried.
pub(crate) const STALL_RETRY: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug)]
enum Channel {
    /// The invalidation channel of a bucket (0 with one bucket).
    Invalidation(u16),
    Strategy,
}

#[derive(Clone, Copy, Debug)]
enum Queued {
    Publish {
        channel: Channel,
        start: u32,
        len: u32,
        kind: MessageKind,
    },
    Switched(SwitchRecord),
    Invalidate {
        start: u32,
        len: u32,
        keys: u32,
    },
    Lease(super::LeaseOp),
    DropBucket(u16, DropReason),
}

#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    queue: heapless::Deque<Queued, QUEUE>,
    payloads: heapless::Vec<u8, OUTBOX_BYTES>,
    inbound: heapless::Vec<u8, INBOUND_BYTES>,
    /// A whole-cache drop is never lost to a full queue: it waits here.
    drop_all: Option<DropReason>,
    /// Signs every payload when message keys are configured.
    signer: Option<Signer>,
    /// The channel name of the publish last drained, when it is a
    /// bucket's: written on demand rather than kept for every bucket.
    channel_name: Name,
}

impl Outbox {
    pub(crate) fn new(signer: Option<Signer>) -> Self {
        Outbox {
            queue: heapless::Deque::new(),
            payloads: heapless::Vec::new(),
            inbound: heapless::Vec::new(),
            drop_all: None,
            signer,
            channel_name: Name::new(),
        }
    }

    /// The signer, when messages are signed.
    pub(crate) fn signer(&self) -> Option<&Signer> {
        self.signer.as_ref()
    }

    /// Reclaims the buffers once every effect borrowing them has been drained.
    pub(crate) fn reset_if_drained(&mut self) {
        if self.queue.is_empty() {
            self.payloads.clear();
            self.inbound.clear();
        }
    }

    pub(crate) fn queue_switch(&mut self, record: SwitchRecord, stats: &mut Stats) {
        if self.queue.push_back(Queued::Switched(record)).is_err() {
            stats.outbox_stalls += 1;
        }
    }

    pub(crate) fn queue_lease(&mut self, op: super::LeaseOp) -> Result<(), Overflow> {
        self.queue
            .push_back(Queued::Lease(op))
            .map_err(|_| Overflow)
    }

    pub(crate) fn queue_drop_all(&mut self, reason: DropReason) {
        self.drop_all.get_or_insert(reason);
    }

    /// Queues the drop of one bucket's entries; a full queue drops
    /// everything instead, which is never lost.
    pub(crate) fn queue_drop_bucket(&mut self, bucket: u16, reason: DropReason) {
        if self
            .queue
            .push_back(Queued::DropBucket(bucket, reason))
            .is_err()
        {
            self.queue_drop_all(reason);
        }
    }

    /// Encodes with `write` into the payload buffer and queues the publish;
    /// on overflow nothing is queued and the buffer is unchanged.
    fn queue_publish(
        &mut self,
        channel: Channel,
        kind: MessageKind,
        write: impl FnOnce(&mut heapless::Vec<u8, OUTBOX_BYTES>) -> Result<(), Overflow>,
    ) -> Result<(), Overflow> {
        if self.queue.is_full() {
            return Err(Overflow);
        }
        let start = self.payloads.len();
        let sealed = |payloads: &mut heapless::Vec<u8, OUTBOX_BYTES>, signer: Option<&Signer>| {
            write(payloads)?;
            signer.map_or(Ok(()), |s| s.seal(payloads, start))
        };
        if sealed(&mut self.payloads, self.signer.as_ref()).is_err() {
            self.payloads.truncate(start);
            return Err(Overflow);
        }
        let queued = Queued::Publish {
            channel,
            start: start as u32,
            len: (self.payloads.len() - start) as u32,
            kind,
        };
        self.queue.push_back(queued).map_err(|_| Overflow)
    }

    /// Starts a list of received keys; finish it with [`Outbox::finish_keys`].
    pub(crate) fn begin_keys(&self) -> usize {
        self.inbound.len()
    }

    /// Appends one decoded key to the list being built.
    pub(crate) fn push_key(&mut self, key: crate::wire::JsonStr<'_>) -> Result<(), Overflow> {
        let len = u16::try_from(key.decoded_len()).map_err(|_| Overflow)?;
        let mark = self.inbound.len();
        let pushed = self
            .inbound
            .put(&len.to_le_bytes())
            .and_then(|()| key.write_decoded(&mut self.inbound));
        if pushed.is_err() {
            self.inbound.truncate(mark);
        }
        pushed
    }

    /// Queues the keys appended since `start`.
    pub(crate) fn finish_keys(&mut self, start: usize, keys: usize) -> Result<(), Overflow> {
        if keys == 0 {
            return Ok(());
        }
        let queued = Queued::Invalidate {
            start: start as u32,
            len: (self.inbound.len() - start) as u32,
            keys: keys as u32,
        };
        self.queue.push_back(queued).map_err(|_| {
            self.inbound.truncate(start);
            Overflow
        })
    }

    pub(crate) fn abandon_keys(&mut self, start: usize) {
        self.inbound.truncate(start);
    }
}

impl Engine {
    /// The next effect to carry out, or `None` when there is nothing to do.
    /// Drain until `None` after every input and command.
    pub fn poll_effect(&mut self) -> Option<Effect<'_>> {
        let out = &mut self.outbox;
        if let Some(reason) = out.drop_all.take() {
            return Some(Effect::InvalidateAll(reason));
        }
        Some(match out.queue.pop_front()? {
            Queued::Publish {
                channel,
                start,
                len,
                kind,
            } => Effect::Publish(Publish {
                channel: match channel {
                    Channel::Invalidation(bucket) if self.config.naming().buckets() > 1 => {
                        out.channel_name = self.config.invalidation_channel_of(bucket);
                        &out.channel_name
                    }
                    Channel::Invalidation(_) => self.config.invalidation_channel(),
                    Channel::Strategy => self.config.strategy_channel(),
                },
                payload: &out.payloads[start as usize..(start + len) as usize],
                kind,
            }),
            Queued::Switched(record) => Effect::Switched(record),
            Queued::Lease(op) => Effect::Lease(super::LeaseRequest {
                key: self.config.lease_key(),
                holder: &self.instance_id,
                op,
                ttl: self.config.lease_ttl(),
            }),
            Queued::Invalidate { start, len, keys } => Effect::Invalidate(InvalidatedKeys::new(
                &out.inbound[start as usize..(start + len) as usize],
                keys as usize,
            )),
            Queued::DropBucket(bucket, reason) => Effect::InvalidateBucket(BucketDrop {
                bucket,
                buckets: self.config.naming().buckets(),
                reason,
            }),
        })
    }

    /// When to call [`Engine::handle_timeout`] next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Publishes every buffered key in one invalidation, or one per bucket
    /// when invalidations are spread over buckets. If the outbox is full
    /// the keys not yet queued stay buffered and a retry is scheduled.
    pub(crate) fn flush_batch(&mut self, now: Instant) {
        if self.batch.is_empty() {
            return;
        }
        if self.config.naming().buckets() > 1 {
            return self.flush_batch_by_bucket(now);
        }
        let keys = self.batch.len();
        let timestamp = self.unix_time(now);
        let (batch, config, id) = (&self.batch, &self.config, &self.instance_id);
        let sent = self.outbox.queue_publish(
            Channel::Invalidation(0),
            MessageKind::Invalidation { keys },
            |out| {
                encode_invalidation_prefixed(
                    out,
                    config.key_prefix(),
                    batch.iter(),
                    Strategy::Batched,
                    timestamp,
                    id,
                )
            },
        );
        match sent {
            Ok(()) => {
                self.batch.clear();
                self.stats.invalidations_sent += 1;
                self.stats.keys_sent += keys as u64;
            }
            Err(Overflow) => {
                self.stats.outbox_stalls += 1;
                self.timers.set(Timer::BatchFlush, now + STALL_RETRY);
            }
        }
    }

    /// [`Engine::flush_batch`] over several buckets: one message per bucket
    /// that holds a key, in bucket order. The keys of the buckets queued
    /// leave the batch; on a full outbox the rest stay for the retry.
    fn flush_batch_by_bucket(&mut self, now: Instant) {
        let timestamp = self.unix_time(now);
        let (batch, config, id) = (&self.batch, &self.config, &self.instance_id);
        // Buckets are visited in order, so "queued" is "below `done`".
        let mut done = 0u16;
        let mut stalled = false;
        while let Some(bucket) = batch
            .iter()
            .map(|key| config.bucket_of(key))
            .filter(|&b| b >= done)
            .min()
        {
            let keys = batch.iter().filter(|k| config.bucket_of(k) == bucket);
            let count = keys.clone().count();
            let sent = self.outbox.queue_publish(
                Channel::Invalidation(bucket),
                MessageKind::Invalidation { keys: count },
                |out| {
                    encode_invalidation_prefixed(
                        out,
                        config.key_prefix(),
                        keys,
                        Strategy::Batched,
                        timestamp,
                        id,
                    )
                },
            );
            if sent.is_err() {
                stalled = true;
                break;
            }
            self.stats.invalidations_sent += 1;
            self.stats.keys_sent += count as u64;
            done = bucket + 1;
        }
        if stalled {
            self.batch.retain(|key| config.bucket_of(key) >= done);
            self.stats.outbox_stalls += 1;
            self.timers.set(Timer::BatchFlush, now + STALL_RETRY);
        } else {
            self.batch.clear();
        }
    }

    /// Queues a one-key invalidation of `key` (a user key: the namespace prefix is added).
    pub(crate) fn publish_single(
        &mut self,
        now: Instant,
        key: &str,
        strategy: Strategy,
    ) -> Result<(), Overflow> {
        let timestamp = self.unix_time(now);
        let (config, id) = (&self.config, &self.instance_id);
        self.outbox.queue_publish(
            Channel::Invalidation(config.bucket_of(key)),
            MessageKind::Invalidation { keys: 1 },
            |out| {
                encode_invalidation_prefixed(
                    out,
                    config.key_prefix(),
                    [key],
                    strategy,
                    timestamp,
                    id,
                )
            },
        )?;
        self.stats.invalidations_sent += 1;
        self.stats.keys_sent += 1;
        Ok(())
    }

    /// Queues this controller's decision. A full outbox skips it (counted):
    /// the next tick announces again.
    pub(crate) fn publish_decision(&mut self, now: Instant, rate: f64) {
        let timestamp = self.unix_time(now);
        let (strategy, id) = (self.strategy, &self.instance_id);
        let term = self.election.held_term();
        // Only an objective policy sets intervals: the table's decisions
        // stay as the original sends them.
        let interval = match self.mode() {
            Mode::Batched(b) if self.policy.carries_interval() => Some(b.as_secs_f64()),
            _ => None,
        };
        let sent =
            self.outbox
                .queue_publish(Channel::Strategy, MessageKind::StrategyUpdate, |out| {
                    encode_strategy_update(out, strategy, rate, timestamp, id, term, interval)
                });
        match sent {
            Ok(()) => self.stats.decisions_sent += 1,
            Err(Overflow) => self.stats.outbox_stalls += 1,
        }
    }

    /// Queues a report of this instance's own write rate for the controller.
    /// A full outbox skips it (counted): the next interval reports again.
    pub(crate) fn publish_report(&mut self, now: Instant, rate: f64) {
        let timestamp = self.unix_time(now);
        let id = &self.instance_id;
        let sent = self
            .outbox
            .queue_publish(Channel::Strategy, MessageKind::RateReport, |out| {
                crate::wire::encode_rate_report(out, rate, timestamp, id)
            });
        match sent {
            Ok(()) => self.stats.reports_sent += 1,
            Err(Overflow) => self.stats.outbox_stalls += 1,
        }
    }

    /// Whether a one-key invalidation of `key` fits `max_message_bytes`.
    #[inline]
    pub(crate) fn key_fits(&self, key: &str) -> bool {
        let limit = self.config.max_message_bytes();
        let fixed = self.lengths.envelope + self.lengths.prefix_json;
        // Cheap worst case first; count the escapes only for very long keys.
        fixed + 2 + key.len() * crate::wire::MAX_ESCAPE_PER_BYTE <= limit
            || fixed + crate::wire::escaped_len(key) <= limit
    }
}
