//! Carrying an [`Outbound`] out: publish its messages, run its lease call,
//! report the answer — which may publish again (a won lease announces the
//! fleet's strategy). The sequence lives here, once; the I/O (which
//! transport call, blocking or awaited) is the driver's.

use aci_core::Instant;
use aci_transports::{LeaseState, Outgoing, TransportError};

use super::{Instance, LeaseCall, Outbound};

/// Lease answers reported per dispatch: an answer leads to a decision,
/// never to another request, so this is never reached by a sound engine.
const MAX_ROUNDS: u8 = 4;

/// The steps of one [`Outbound`], for a driver's loop:
///
/// ```text
/// let mut dispatch = Dispatch::new(outbound);
/// loop {
///     if let Some(messages) = dispatch.messages() {
///         let result = transport.publish(&messages);
///         dispatch.published(&instance, result);
///     }
///     let Some(call) = dispatch.lease() else { break };
///     // a release needs no answer: run it, then go round again
///     let answer = run(call);
///     dispatch.answered(&instance, answer, now);
/// }
/// ```
#[derive(Debug)]
#[must_use = "an outbound's messages and lease call are lost unless dispatched"]
pub struct Dispatch {
    outbound: Outbound,
    rounds: u8,
}

impl Dispatch {
    /// The steps of `outbound`.
    pub fn new(outbound: Outbound) -> Self {
        Dispatch {
            outbound,
            rounds: 0,
        }
    }

    /// The messages to publish now, in order, if any.
    pub fn messages(&self) -> Option<Vec<Outgoing<'_>>> {
        self.outbound
            .has_messages()
            .then(|| self.outbound.as_outgoing())
    }

    /// Reports how publishing [`Dispatch::messages`] went: counted when
    /// acknowledged, logged when not (the subscription breaks too when
    /// Redis does: every instance then drops its near cache, which covers
    /// what the messages would have said).
    pub fn published(&mut self, instance: &Instance, result: Result<(), TransportError>) {
        match result {
            Ok(()) => instance.record_published(&self.outbound),
            Err(e) => tracing::warn!(error = %e, "could not publish"),
        }
        self.outbound.messages.clear();
    }

    /// The lease call to run after publishing, if any; `None` when the
    /// dispatch is over. A release needs no answer: run it and ask again.
    pub fn lease(&mut self) -> Option<LeaseCall> {
        if self.rounds >= MAX_ROUNDS {
            return None;
        }
        self.outbound.take_lease()
    }

    /// Reports the answer to [`Dispatch::lease`]'s call; what the instance
    /// makes of it becomes the next steps.
    pub fn answered(
        &mut self,
        instance: &Instance,
        answer: Result<LeaseState, TransportError>,
        now: Instant,
    ) {
        self.rounds += 1;
        self.outbound = instance.handle_lease(answer, now);
    }
}
