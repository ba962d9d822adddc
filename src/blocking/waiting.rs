//! Waiting, on this thread, for a read another caller leads.

use std::time::{Duration, Instant};

use bytes::Bytes;
use event_listener::Listener as _;

use crate::error::{Error, Result};
use crate::instance::Wait;

/// Blocks until the leader's read finishes, at most `timeout`. `None` when
/// the leader gave its read up: look the key up again.
pub(super) fn wait(wait: &Wait, timeout: Duration) -> Option<Result<Option<Bytes>>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(outcome) = wait.outcome() {
            return outcome;
        }
        let listener = wait.listen();
        if let Some(outcome) = wait.outcome() {
            return outcome;
        }
        if listener.wait_deadline(deadline).is_none() {
            return Some(Err(Error::ReadWaitTimeout));
        }
    }
}
