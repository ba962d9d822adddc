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
    /// The backend refused who we are or what we asked: a wrong password,
    /// no password where one is required, an ACL user without the right to
    /// a command, key or channel. Permanent: retrying will not help.
    #[error("backend refused access: {0}")]
    Denied(#[source] Box<dyn std::error::Error + Send + Sync>),
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

    /// Whether the backend refused our credentials or permissions
    /// ([`TransportError::Denied`]): fix the configuration, do not retry.
    pub fn is_denied(&self) -> bool {
        matches!(self, TransportError::Denied(_))
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
}

#[cfg(feature = "redis")]
impl TransportError {
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
