//! How many Pub/Sub messages a mode is predicted to cost the fleet.

use super::{FleetLoad, Mode};
use crate::time::Duration;

/// The message model the objective policies price modes with, in messages
/// the fleet publishes per second (each is then delivered to every
/// subscriber; the model counts publishes, as Redis bills them).
///
/// - **Control plane**: every instance but the controller sends one rate
///   report per `controller_interval`, and the controller one decision per
///   interval when it rebroadcasts.
/// - **ttl**: no invalidations.
/// - **eager**: one per write.
/// - **batched at `b`**: each writing instance sends a message for each
///   interval in which it wrote, per invalidation bucket it wrote keys of
///   (a batch splits by bucket: [`Naming::Sharded`](crate::naming::Naming)),
///   and one more per `max_message_keys` keys. With the fleet's writes
///   arriving at random (Poisson), split evenly over `writers` and over
///   `buckets`, a writer at `r` writes/s sends
///   `buckets · (1 − e^(−r·b / buckets)) / b + r / max_message_keys`
///   messages per second — never more than one per write. An even split is
///   the worst case: the cost is concave in each writer's and each bucket's
///   rate, so any uneven split costs less (Jensen), and bursty writes
///   coalesce better than random ones.
///
/// ```
/// use aci_core::policy::{FleetLoad, Mode, Traffic};
/// use aci_core::Duration;
/// let traffic = Traffic {
///     controller_interval: Duration::from_secs(3),
///     max_message_keys: 1000,
///     rebroadcast: true,
///     buckets: 1,
/// };
/// let load = FleetLoad { write_rate: 100.0, writers: 4, instances: 6, complete: true };
/// // Six instances: five reports and one decision every 3 s.
/// assert_eq!(traffic.control(&load), 2.0);
/// assert_eq!(traffic.predicted(Mode::Eager, &load), 102.0);
/// // Four writers at 25 writes/s each send one batch a second (and a
/// // fortieth of a second batch for the 1,000-key cap).
/// let batched = traffic.predicted(Mode::Batched(Duration::from_secs(1)), &load);
/// assert!((batched - 6.1).abs() < 1e-9, "{batched}");
/// // Over 8 buckets, each batch is up to 8 messages: 25 writes a second
/// // touch 7.65 of them on average.
/// let sharded = Traffic { buckets: 8, ..traffic };
/// let batched = sharded.predicted(Mode::Batched(Duration::from_secs(1)), &load);
/// assert!((batched - 32.7).abs() < 0.1, "{batched}");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traffic {
    /// Time between two rate reports, and two decisions.
    pub controller_interval: Duration,
    /// Most keys in one invalidation.
    pub max_message_keys: usize,
    /// Whether the controller announces every interval or only on change.
    pub rebroadcast: bool,
    /// Invalidation channels a batch splits over (1 but with
    /// [`Naming::Sharded`](crate::naming::Naming)).
    pub buckets: u16,
}

impl Traffic {
    /// The model of a validated configuration.
    pub fn from_config(config: &crate::Config) -> Self {
        Traffic {
            controller_interval: config.controller_interval(),
            max_message_keys: config.max_message_keys(),
            rebroadcast: config.rebroadcast(),
            buckets: config.naming().buckets(),
        }
    }

    /// Rate reports and decisions per second.
    pub fn control(&self, load: &FleetLoad) -> f64 {
        let reports = load.instances.max(1) - 1;
        let decisions = usize::from(self.rebroadcast);
        (reports + decisions) as f64 / self.controller_interval.as_secs_f64()
    }

    /// Invalidations per second.
    pub fn invalidations(&self, mode: Mode, load: &FleetLoad) -> f64 {
        let rate = sane(load.write_rate);
        match mode {
            Mode::Ttl => 0.0,
            Mode::Eager => rate,
            Mode::Batched(interval) => {
                let b = interval.as_secs_f64();
                if rate == 0.0 || b <= 0.0 {
                    return rate;
                }
                let writers = load.writers.max(1) as f64;
                let buckets = f64::from(self.buckets.max(1));
                let per_writer = rate / writers;
                let x = per_writer * b;
                // Buckets with at least one of the interval's writes.
                let batches = buckets * -libm::expm1(-x / buckets);
                let splits = x / self.max_message_keys.max(1) as f64;
                (writers * (batches + splits) / b).min(rate)
            }
        }
    }

    /// Everything the fleet publishes per second in `mode`.
    pub fn predicted(&self, mode: Mode, load: &FleetLoad) -> f64 {
        self.control(load) + self.invalidations(mode, load)
    }
}

/// A rate the model can price: NaN and negatives are no writes, and an
/// infinite one is capped.
fn sane(rate: f64) -> f64 {
    if rate.is_nan() || rate <= 0.0 {
        0.0
    } else {
        rate.min(1e12)
    }
}
