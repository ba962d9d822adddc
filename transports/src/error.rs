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
    /// The backend answered with an error.
    #[error("backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The transport does not implement this operation (a default method).
    #[error("the transport does not support {0}")]
    Unsupported(&'static str),
}

impl TransportError {
    /// Whether the backend could not be reached or did not answer: retrying
    /// later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            TransportError::Unavailable(_)
                | TransportError::Timeout(_)
                | TransportError::SubscriptionClosed
        )
    }
}

#[cfg(feature = "redis")]
impl TransportError {
    /// Classifies a `redis` error; `timeout` is the limit that was set.
    pub(crate) fn from_redis(error: ::redis::RedisError, timeout: Duration) -> Self {
        if error.is_timeout() {
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
