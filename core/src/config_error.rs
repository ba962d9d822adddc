//! The rules a configuration must follow, and the error naming the one broken.

use core::fmt;

use crate::config::{MESSAGE_BYTES_CAP, MESSAGE_BYTES_MIN, MESSAGE_KEYS_CAP};
use crate::time::Duration;

/// A configuration rule was broken. [`ConfigError::field`] names the parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `low_threshold` must be strictly below `high_threshold` (the original's rule).
    ThresholdOrder {
        /// The low threshold given.
        low: f64,
        /// The high threshold given.
        high: f64,
    },
    /// A threshold was negative, NaN or infinite.
    InvalidThreshold {
        /// `"low_threshold"` or `"high_threshold"`.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A TTL or interval was zero.
    NotPositive {
        /// The parameter's name.
        field: &'static str,
    },
    /// A number was outside its allowed range.
    OutOfRange {
        /// The parameter's name.
        field: &'static str,
        /// The rule, e.g. `"must be in [0, 1)"`.
        rule: &'static str,
    },
    /// A name was empty, too long, or held a control character.
    InvalidName {
        /// `"channel_prefix"` or `"namespace"`.
        field: &'static str,
        /// The rule broken.
        rule: &'static str,
    },
}

impl ConfigError {
    /// The name of the parameter at fault, as the builder spells it.
    pub fn field(&self) -> &'static str {
        match *self {
            ConfigError::ThresholdOrder { .. } => "low_threshold",
            ConfigError::InvalidThreshold { field, .. }
            | ConfigError::NotPositive { field }
            | ConfigError::OutOfRange { field, .. }
            | ConfigError::InvalidName { field, .. } => field,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigError::ThresholdOrder { low, high } => write!(
                f,
                "low_threshold ({low}) must be strictly less than high_threshold ({high})"
            ),
            ConfigError::InvalidThreshold { field, value } => {
                write!(
                    f,
                    "{field} must be a finite, non-negative number, got {value}"
                )
            }
            ConfigError::NotPositive { field } => write!(f, "{field} must be positive"),
            ConfigError::OutOfRange { field, rule } => write!(f, "{field} {rule}"),
            ConfigError::InvalidName { field, rule } => write!(f, "{field} {rule}"),
        }
    }
}

impl core::error::Error for ConfigError {}

/// The values `validate` checks, borrowed from the builder.
pub(crate) struct Candidate<'a> {
    pub(crate) high_threshold: f64,
    pub(crate) low_threshold: f64,
    pub(crate) default_ttl: Duration,
    pub(crate) local_ttl: Duration,
    pub(crate) batch_interval: Duration,
    pub(crate) controller_interval: Duration,
    pub(crate) sliding_window: Duration,
    pub(crate) hysteresis: f64,
    pub(crate) objective: crate::policy::Objective,
    pub(crate) delivery_margin: Duration,
    pub(crate) max_message_bytes: usize,
    pub(crate) max_message_keys: usize,
    pub(crate) channel_prefix: &'a str,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) naming: crate::naming::Naming,
    pub(crate) overlong: Option<&'static str>,
}

/// Returns the first broken rule, in the order the original checks them.
/// Shortest `controller_interval` accepted.
pub const MIN_CONTROLLER_INTERVAL: Duration = Duration::from_millis(100);
/// Shortest `batch_interval` accepted.
pub const MIN_BATCH_INTERVAL: Duration = Duration::from_millis(10);
/// Shortest `sliding_window` accepted.
pub const MIN_SLIDING_WINDOW: Duration = Duration::from_millis(100);
/// Shortest TTL accepted (Redis counts expiry in milliseconds).
pub const MIN_TTL: Duration = Duration::from_millis(1);
/// Longest TTL accepted: 100 years, far inside what Redis's `PX` takes.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn validate_objective(c: &Candidate<'_>) -> Result<(), ConfigError> {
    use crate::policy::Objective;
    if c.delivery_margin > MAX_TTL {
        return Err(ConfigError::OutOfRange {
            field: "delivery_margin",
            rule: "must be at most 100 years",
        });
    }
    match c.objective {
        Objective::Thresholds => Ok(()),
        Objective::Bounded { max_staleness } => {
            if max_staleness <= c.delivery_margin || max_staleness > MAX_TTL {
                Err(ConfigError::OutOfRange {
                    field: "max_staleness",
                    rule: "must be longer than delivery_margin and at most 100 years",
                })
            } else {
                Ok(())
            }
        }
        Objective::Budget {
            messages_per_second,
        } => {
            if messages_per_second.is_finite() && messages_per_second > 0.0 {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange {
                    field: "messages_per_second",
                    rule: "must be a finite number above zero",
                })
            }
        }
    }
}

pub(crate) fn validate(c: &Candidate<'_>) -> Result<(), ConfigError> {
    for (field, value) in [
        ("low_threshold", c.low_threshold),
        ("high_threshold", c.high_threshold),
    ] {
        if !value.is_finite() || value < 0.0 {
            return Err(ConfigError::InvalidThreshold { field, value });
        }
    }
    if c.low_threshold >= c.high_threshold {
        return Err(ConfigError::ThresholdOrder {
            low: c.low_threshold,
            high: c.high_threshold,
        });
    }
    for (field, value) in [
        ("default_ttl", c.default_ttl),
        ("local_ttl", c.local_ttl),
        ("batch_interval", c.batch_interval),
        ("controller_interval", c.controller_interval),
        ("sliding_window", c.sliding_window),
    ] {
        if value.is_zero() {
            return Err(ConfigError::NotPositive { field });
        }
    }
    // Floors that keep Redis safe from a mistyped unit: every interval each
    // instance sends a lease request or a rate report, every batch interval
    // a message; a window shorter than its buckets measures nothing.
    for (field, value, floor, rule) in [
        (
            "controller_interval",
            c.controller_interval,
            MIN_CONTROLLER_INTERVAL,
            "must be at least 100 ms",
        ),
        (
            "batch_interval",
            c.batch_interval,
            MIN_BATCH_INTERVAL,
            "must be at least 10 ms",
        ),
        (
            "sliding_window",
            c.sliding_window,
            MIN_SLIDING_WINDOW,
            "must be at least 100 ms",
        ),
    ] {
        if value < floor {
            return Err(ConfigError::OutOfRange { field, rule });
        }
    }
    for (field, value) in [("default_ttl", c.default_ttl), ("local_ttl", c.local_ttl)] {
        if !(MIN_TTL..=MAX_TTL).contains(&value) {
            return Err(ConfigError::OutOfRange {
                field,
                rule: "must be between 1 ms and 100 years",
            });
        }
    }
    if !(c.hysteresis.is_finite() && (0.0..1.0).contains(&c.hysteresis)) {
        return Err(ConfigError::OutOfRange {
            field: "hysteresis",
            rule: "must be a fraction in [0, 1)",
        });
    }
    validate_objective(c)?;
    if !(MESSAGE_BYTES_MIN..=MESSAGE_BYTES_CAP).contains(&c.max_message_bytes) {
        return Err(ConfigError::OutOfRange {
            field: "max_message_bytes",
            rule: "must be between 512 and 32768",
        });
    }
    if !(1..=MESSAGE_KEYS_CAP).contains(&c.max_message_keys) {
        return Err(ConfigError::OutOfRange {
            field: "max_message_keys",
            rule: "must be between 1 and 1024",
        });
    }
    if let Some(field) = c.overlong {
        return Err(ConfigError::InvalidName {
            field,
            rule: "is too long",
        });
    }
    if c.channel_prefix.is_empty() {
        return Err(ConfigError::InvalidName {
            field: "channel_prefix",
            rule: "must not be empty",
        });
    }
    for (field, name) in [
        ("channel_prefix", Some(c.channel_prefix)),
        ("namespace", c.namespace),
    ] {
        if name.is_some_and(|n| n.chars().any(char::is_control)) {
            return Err(ConfigError::InvalidName {
                field,
                rule: "must not contain control characters",
            });
        }
        // A brace would end the hash tag early, or start another one.
        if c.naming.is_cluster() && name.is_some_and(|n| n.contains(['{', '}'])) {
            return Err(ConfigError::InvalidName {
                field,
                rule: "must not contain `{` or `}` on a cluster (it is the names' hash tag)",
            });
        }
    }
    if let crate::naming::Naming::Sharded { buckets } = c.naming {
        if buckets == 0 || buckets > crate::naming::MAX_BUCKETS {
            return Err(ConfigError::OutOfRange {
                field: "naming",
                rule: "buckets must be between 1 and 1024",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{Config, Duration};

    #[test]
    fn every_rule_names_its_field() {
        let cases = [
            (Config::builder().low_threshold(50.0), "low_threshold"),
            (Config::builder().low_threshold(-1.0), "low_threshold"),
            (Config::builder().high_threshold(f64::NAN), "high_threshold"),
            (Config::builder().default_ttl(Duration::ZERO), "default_ttl"),
            (Config::builder().local_ttl(Duration::ZERO), "local_ttl"),
            (
                Config::builder().batch_interval(Duration::ZERO),
                "batch_interval",
            ),
            (
                Config::builder().controller_interval(Duration::ZERO),
                "controller_interval",
            ),
            (
                Config::builder().sliding_window(Duration::ZERO),
                "sliding_window",
            ),
            // Issue 12, finding 7: floors that keep Redis safe, and a TTL
            // range Redis accepts.
            (
                Config::builder().controller_interval(Duration::from_nanos(1)),
                "controller_interval",
            ),
            (
                Config::builder().controller_interval(Duration::from_millis(99)),
                "controller_interval",
            ),
            (
                Config::builder().sliding_window(Duration::from_nanos(1)),
                "sliding_window",
            ),
            (
                Config::builder().batch_interval(Duration::from_micros(100)),
                "batch_interval",
            ),
            (
                Config::builder().default_ttl(Duration::from_millis(u64::MAX)),
                "default_ttl",
            ),
            (
                Config::builder().local_ttl(Duration::from_nanos(999_999)),
                "local_ttl",
            ),
            (Config::builder().hysteresis(1.0), "hysteresis"),
            (Config::builder().hysteresis(-0.1), "hysteresis"),
            (
                Config::builder().max_message_bytes(100),
                "max_message_bytes",
            ),
            (
                Config::builder().max_message_bytes(1 << 20),
                "max_message_bytes",
            ),
            (Config::builder().max_message_keys(0), "max_message_keys"),
            (Config::builder().channel_prefix(""), "channel_prefix"),
            (
                Config::builder().channel_prefix(&"x".repeat(33)),
                "channel_prefix",
            ),
            (Config::builder().namespace(&"x".repeat(65)), "namespace"),
            (Config::builder().namespace("a\nb"), "namespace"),
        ];
        for (builder, field) in cases {
            let err = builder.build().expect_err(field);
            assert_eq!(err.field(), field, "{err}");
        }
    }

    #[test]
    fn message_reads_like_the_original() {
        extern crate std;
        use std::string::ToString;
        let err = Config::builder().low_threshold(60.0).build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "low_threshold (60) must be strictly less than high_threshold (50)"
        );
    }
}
