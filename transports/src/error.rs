//! The one error type every transport returns.

use std::time::Duration;

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The backend cannot be reached (refused, dropped, unreachable).
    #[error("backend unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend did not answer in time.
    #[error("backend did not answer within {0:?}")]
    Timeout(Duration),
    /// The subscription ended: messages may have been missed.
    #[error("subscription closed")]
    SubscriptionClosed,
    /// The backend stopped serving one channel of the subscription (on a
    /// Redis Cluster, its slot moved to another node), and the subscription
    /// ends: messages on that channel may have been missed, while the other
    /// channels were served until now. A driver that subscribes again before
    /// dropping this subscription needs to forget only what that channel
    /// covers.
    #[error("the backend stopped serving channel {channel}")]
    ChannelLost {
        /// The channel no longer served.
        channel: String,
    },
    /// The backend answered with an error.
    #[error("backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The transport does not implement this operation (a default method).
    #[error("the transport does not support {0}")]
    Unsupported(&'static str),
    /// The backend refused who we are or what we asked: a wrong password,
    /// no password where one is required, an ACL user without the right to
    /// a command, key or channel. Permanent: retrying will not help.
    #[error("backend refused access: {0}")]
    Denied(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The data command of a call (the `SET` of `set`, the `DEL` of
    /// `delete`, the `UNLINK` of `unlink`) took effect, but publishing the
    /// messages sent with it failed (the inner error says why): the other
    /// instances were not told. A transport that cannot tell the two apart
    /// returns the plain error, and the cache treats the write as failed.
    #[error("the command took effect, but publishing its messages failed: {0}")]
    Unpublished(#[source] Box<TransportError>),
}

impl TransportError {
    /// Whether the backend could not be reached or did not answer: retrying
    /// later may succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            TransportError::Unavailable(_)
            | TransportError::Timeout(_)
            | TransportError::SubscriptionClosed
            | TransportError::ChannelLost { .. } => true,
            TransportError::Unpublished(cause) => cause.is_unavailable(),
            _ => false,
        }
    }

    /// Whether the backend refused our credentials or permissions
    /// ([`TransportError::Denied`]): fix the configuration, do not retry.
    pub fn is_denied(&self) -> bool {
        match self {
            TransportError::Denied(_) => true,
            TransportError::Unpublished(cause) => cause.is_denied(),
            _ => false,
        }
    }

    /// Whether the call's data command took effect although the call
    /// failed ([`TransportError::Unpublished`]).
    pub fn took_effect(&self) -> bool {
        matches!(self, TransportError::Unpublished(_))
    }
}

/// Whether Redis refused our credentials or rights, in a single reply or in
/// any reply of a pipeline.
#[cfg(feature = "redis")]
fn refused_access(error: &::redis::RedisError) -> bool {
    let denial = |code: &str| matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM");
    error.kind() == ::redis::ErrorKind::AuthenticationFailed
        || error.code().is_some_and(denial)
        || error
            .clone()
            .into_server_errors()
            .is_some_and(|replies| replies.iter().any(|(_, e)| denial(e.code())))
        || cluster_refused_access(error)
}

/// The cluster client reports "failed to connect to each cluster node" as
/// an I/O error, each node's cause only in its text: a node that refused
/// our credentials makes it a denial, not an outage.
#[cfg(feature = "redis")]
fn cluster_refused_access(error: &::redis::RedisError) -> bool {
    if error.kind() != ::redis::ErrorKind::Io {
        return false;
    }
    let text = error.to_string();
    text.contains("cluster node")
        && ["AuthenticationFailed", "WRONGPASS", "NOAUTH", "NOPERM"]
            .iter()
            .any(|code| text.contains(code))
}

/// Splits the answer of a pipeline whose first command changes data and
/// whose others are its `PUBLISH`es: when only the `PUBLISH`es failed, the
/// data command took effect, and the error comes back inside `Ok` for
/// [`TransportError::unpublished`] (the connection is fine: error replies).
#[cfg(feature = "redis")]
pub(crate) fn split_publish_failure<T>(
    result: ::redis::RedisResult<T>,
) -> ::redis::RedisResult<Result<T, ::redis::RedisError>> {
    split_publish_failure_after(1, result)
}

/// [`split_publish_failure`] for a pipeline whose first `data` commands
/// change data (`set_many`'s `SET`s).
#[cfg(feature = "redis")]
pub(crate) fn split_publish_failure_after<T>(
    data: usize,
    result: ::redis::RedisResult<T>,
) -> ::redis::RedisResult<Result<T, ::redis::RedisError>> {
    match result {
        Err(e) if publishes_alone_failed(data, &e) => Ok(Err(e)),
        other => other.map(Ok),
    }
}

/// Whether a pipeline's error replies all came after its first `data`
/// commands (a single command's error reply counts as the first).
#[cfg(feature = "redis")]
fn publishes_alone_failed(data: usize, error: &::redis::RedisError) -> bool {
    error.clone().into_server_errors().is_some_and(|replies| {
        !replies.is_empty() && replies.iter().all(|(index, _)| *index >= data)
    })
}

#[cfg(feature = "redis")]
impl TransportError {
    /// The publishes after a data command failed with `error`.
    pub(crate) fn unpublished(error: ::redis::RedisError, timeout: Duration) -> Self {
        TransportError::Unpublished(Box::new(TransportError::from_redis(error, timeout)))
    }

    /// Classifies a `redis` error; `timeout` is the limit that was set.
    pub(crate) fn from_redis(error: ::redis::RedisError, timeout: Duration) -> Self {
        // Before the unavailable kinds: the `redis` crate files a failed
        // authentication under "reconnect", which is not what it needs.
        if refused_access(&error) {
            TransportError::Denied(Box::new(error))
        } else if error.is_timeout() {
            TransportError::Timeout(timeout)
        } else if error.is_io_error()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
            || error.is_unrecoverable_error()
        {
            TransportError::Unavailable(Box::new(error))
        } else {
            TransportError::Backend(Box::new(error))
        }
    }
}
