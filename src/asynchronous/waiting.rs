//! Waiting, asynchronously, for a read another caller leads.

use std::time::Duration;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::instance::Wait;

/// Waits for the leader's read, at most `timeout` of tokio's clock. `None`
/// when the leader gave its read up: look the key up again.
pub(super) async fn wait(wait: &Wait, timeout: Duration) -> Option<Result<Option<Bytes>>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(outcome) = wait.outcome() {
            return outcome;
        }
        let listener = wait.listen();
        if let Some(outcome) = wait.outcome() {
            return outcome;
        }
        if tokio::time::timeout_at(deadline, listener).await.is_err() {
            return Some(Err(Error::ReadWaitTimeout));
        }
    }
}
