//! Invalidations applied on the thread that reads the subscription.
//!
//! Handed to the transport as a [`Deliver`]: an invalidation drops its keys
//! from the near cache as soon as the reader has it, without waiting for
//! the worker thread to be scheduled (on a busy machine that wait was most
//! of a delivery's time). Everything else — decisions, rate reports, and
//! their lease checks — still goes to the worker, which owns the control
//! plane's sequence of lease calls.

use std::sync::{Arc, Mutex, PoisonError};

use aci_transports::{Deliver, Transport};

use super::Shared;
use crate::instance::Outbound;

pub(super) struct Direct<T: Transport> {
    shared: Arc<Shared<T>>,
}

impl<T: Transport> Direct<T> {
    pub(super) fn deliver_to(shared: Arc<Shared<T>>) -> Arc<dyn Deliver> {
        Arc::new(Direct { shared })
    }
}

impl<T: Transport> Deliver for Direct<T> {
    fn deliver(&self, channel: &str, payload: &[u8]) -> bool {
        // Any bucket's invalidation channel; decisions and rate reports
        // go to the worker.
        if self
            .shared
            .instance
            .settings()
            .core
            .bucket_of_channel(channel)
            .is_none()
        {
            return false;
        }
        let shared = &self.shared;
        let outbound = shared
            .instance
            .handle_message(channel, payload, shared.clock.now());
        if !outbound.is_empty() {
            // Never expected of an invalidation; if the engine ever asks,
            // the worker sends it, in order with its own calls.
            defer(&shared.deferred, outbound);
        }
        true
    }
}

fn defer(deferred: &Mutex<Vec<Outbound>>, outbound: Outbound) {
    deferred
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(outbound);
}
