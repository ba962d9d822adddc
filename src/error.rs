//! The facade's error type.

use std::sync::Arc;

use aci_core::ConfigError;
use aci_transports::TransportError;

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration broke a rule; the field is named.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Redis (or the transport) failed or did not answer in time.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Another caller's read of the same key failed; this read shared its result.
    #[error("shared read failed: {0}")]
    SharedRead(Arc<TransportError>),
    /// Waiting for another caller's read of the same key took longer than the timeout.
    #[error("timed out waiting for a concurrent read of the same key")]
    ReadWaitTimeout,
    /// The key is too long to be named in an invalidation message.
    #[error("key of {len} bytes is too long for an invalidation message")]
    KeyTooLong {
        /// The key's length in bytes.
        len: usize,
    },
    /// The value is not UTF-8 text.
    #[error("the value of {key:?} is not UTF-8")]
    NotUtf8 {
        /// The key read.
        key: String,
        /// Where decoding failed.
        source: std::str::Utf8Error,
    },
    /// The cache is stopped.
    #[error("the cache is stopped")]
    Stopped,
    /// The engine refused the operation for a reason the facade does not
    /// expect (a bug: please report it).
    #[error("engine refused the operation: {0}")]
    Engine(aci_core::WriteError),
    /// `flush` on a cache without a namespace: it would have to delete the
    /// whole database, other applications' keys included. Give the cache a
    /// namespace, or call `flush_database` to empty the database on purpose.
    #[error("flush needs a namespace: without one it would delete every key of the database (use flush_database to do that on purpose)")]
    FlushWithoutNamespace,
    /// A TTL outside what Redis keeps: at least 1 ms, at most 100 years
    /// (`aci_core::MIN_TTL`, `aci_core::MAX_TTL`). Nothing was written.
    #[error("TTL of {ttl:?} is out of range: it must be between 1 ms and 100 years")]
    InvalidTtl {
        /// The TTL given.
        ttl: std::time::Duration,
    },
    /// The call took effect (`done` says what) but the message telling the
    /// other instances was not published (`source` says why: a dropped
    /// connection, an ACL without the right to publish): their near caches
    /// may serve the old value until `local_ttl`, or run the previous
    /// strategy until the controller's next rebroadcast. This instance's
    /// near cache is correct. Retrying the call is safe.
    #[error("{done}, but the other instances were not told: {source}")]
    Unannounced {
        /// What took effect.
        done: Done,
        /// Why the message was not published.
        source: TransportError,
    },
    /// A value could not be encoded for `key` (feature `serde`): nothing was written.
    #[error("encoding the value of {key:?} failed: {source}")]
    Encode {
        /// The key being written.
        key: String,
        /// The codec's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The value of `key` in Redis does not decode as the type asked for
    /// (feature `serde`): written by another program, or by another version.
    #[error("the value of {key:?} does not decode: {source}")]
    Decode {
        /// The key read.
        key: String,
        /// The codec's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The loader of `get_or_try_load` failed: nothing was cached or written.
    /// `source` is the loader's error (downcast it to get yours back).
    #[error("loading {key:?} failed: {source}")]
    Load {
        /// The key being loaded.
        key: String,
        /// The loader's error.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A background thread could not be started.
    #[error("could not start the background worker: {0}")]
    Spawn(#[source] std::io::Error),
}

/// What took effect although the call returned [`Error::Unannounced`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Done {
    /// The value of `key` is stored in Redis.
    Stored {
        /// The key written.
        key: String,
    },
    /// `key` is deleted from Redis.
    Deleted {
        /// The key deleted.
        key: String,
    },
    /// The values of `keys` are stored in Redis (`set_many`).
    StoredMany {
        /// The keys written.
        keys: Vec<String>,
    },
    /// `keys` are deleted from Redis (`delete_many`).
    DeletedMany {
        /// The keys deleted.
        keys: Vec<String>,
    },
    /// A batch of the namespace's keys was deleted by `flush`, which stopped there.
    Flushed,
    /// This instance runs `strategy`, pinned; as the controller it should
    /// have told the fleet.
    Pinned {
        /// The strategy pinned.
        strategy: aci_core::Strategy,
    },
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::Stored { key } => write!(f, "the value of {key:?} is stored in Redis"),
            Done::Deleted { key } => write!(f, "{key:?} is deleted from Redis"),
            Done::StoredMany { keys } => {
                write!(f, "the values of {} keys are stored in Redis", keys.len())
            }
            Done::DeletedMany { keys } => write!(f, "{} keys are deleted from Redis", keys.len()),
            Done::Flushed => f.write_str("a batch of the namespace's keys is deleted"),
            Done::Pinned { strategy } => write!(f, "the strategy is pinned to {strategy} here"),
        }
    }
}

impl Error {
    /// The error of a call whose data command took effect: a transport's
    /// [`TransportError::Unpublished`] becomes [`Error::Unannounced`]; any
    /// other error stays as it is.
    pub(crate) fn unless_done(error: TransportError, done: impl FnOnce() -> Done) -> Error {
        match error {
            TransportError::Unpublished(source) => Error::Unannounced {
                done: done(),
                source: *source,
            },
            other => Error::Transport(other),
        }
    }
}

/// Checks a per-call TTL against the range Redis keeps.
pub(crate) fn check_ttl(ttl: std::time::Duration) -> Result<()> {
    if (aci_core::MIN_TTL..=aci_core::MAX_TTL).contains(&aci_core::Duration::from(ttl)) {
        Ok(())
    } else {
        Err(Error::InvalidTtl { ttl })
    }
}

impl Error {
    /// Whether the backend was unreachable or slow: the same call may succeed later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Transport(e) => e.is_unavailable(),
            Error::SharedRead(e) => e.is_unavailable(),
            Error::Unannounced { source, .. } => source.is_unavailable(),
            Error::ReadWaitTimeout => true,
            _ => false,
        }
    }

    /// Whether Redis refused our credentials or permissions (a wrong
    /// password, a missing one, an ACL user without the right): permanent,
    /// so a retry loop should stop and report it.
    pub fn is_denied(&self) -> bool {
        match self {
            Error::Transport(e) => e.is_denied(),
            Error::SharedRead(e) => e.is_denied(),
            Error::Unannounced { source, .. } => source.is_denied(),
            _ => false,
        }
    }
}

impl From<aci_core::WriteError> for Error {
    fn from(e: aci_core::WriteError) -> Self {
        match e {
            aci_core::WriteError::KeyTooLong { len } => Error::KeyTooLong { len },
            aci_core::WriteError::Stopped => Error::Stopped,
            // The facade drains after every call, so backpressure is a bug.
            other => Error::Engine(other),
        }
    }
}

/// A value as UTF-8 text, or [`Error::NotUtf8`] naming `key`.
pub(crate) fn into_text(key: &str, value: Option<bytes::Bytes>) -> Result<Option<String>> {
    value
        .map(|bytes| {
            String::from_utf8(bytes.to_vec()).map_err(|e| Error::NotUtf8 {
                key: key.to_owned(),
                source: e.utf8_error(),
            })
        })
        .transpose()
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
