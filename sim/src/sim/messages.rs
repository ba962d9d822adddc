//! Messages: what an instance publishes, Redis's fan-out to every
//! subscriber through the links, and the adversary's forgeries.

use std::rc::Rc;

use aci_cache::instance::Outbound;
use aci_cache::transports::TransportError;
use aci_core::engine::MessageKind;
use aci_core::{Duration, Strategy};

use super::event::Event;
use super::published::Published;
use super::{Sim, LEASE_TIMEOUT};
use crate::faults::Fate;

impl Sim {
    pub(super) fn publish_from(&mut self, node: usize, mut outbound: Outbound) {
        if let Some(call) = outbound.take_lease() {
            let life = self.nodes[node].life;
            match self.links.send(node, self.now, &mut self.rng) {
                Some(at) => {
                    let call = Box::new(call);
                    self.schedule(at, Event::LeaseAtServer { node, life, call });
                }
                None => {
                    // The request never arrives; the client times out.
                    let at = self.now + LEASE_TIMEOUT;
                    let answer = Box::new(Err(TransportError::Timeout(
                        std::time::Duration::from_secs(1),
                    )));
                    self.schedule(at, Event::LeaseReply { node, life, answer });
                }
            }
        }
        if !outbound.has_messages() {
            return;
        }
        // A cut-off publisher's message is lost at Redis (`PublishAtServer`).
        let at = self.now + self.links.hop(&mut self.rng);
        let outbound = Box::new(outbound);
        self.schedule(at, Event::PublishAtServer { node, outbound });
    }

    /// The live instance acting as the controller, if any.
    pub(super) fn controller(&self) -> Option<usize> {
        self.nodes.iter().position(|n| n.alive && n.controller)
    }

    /// Redis publishes: every connected subscriber gets its copy, through the link.
    pub(super) fn fan_out(&mut self, outbound: &Outbound) {
        for (m, kind) in outbound.kinds() {
            let channel = self.channel_of(m.channel);
            let bytes = m.payload.len() as u64;
            // The kind the engine gave it, not a sniff of the JSON.
            match kind {
                MessageKind::Invalidation { .. } => {
                    self.obs.invalidations += 1;
                    self.obs.invalidation_bytes += bytes;
                }
                MessageKind::RateReport => {
                    self.obs.reports += 1;
                    self.obs.report_bytes += bytes;
                }
                // Decisions (the kinds are non-exhaustive).
                _ => {
                    self.obs.decisions += 1;
                    self.obs.decision_bytes += bytes;
                }
            }
            let published = Rc::new(Published::new(m.payload, self.limits));
            self.deliver_to_all(channel, published);
        }
    }

    /// The index of the channel called `name`: one the fleet subscribes to,
    /// as every message an instance publishes is.
    fn channel_of(&self, name: &str) -> usize {
        // The one invalidation channel of a single server, without hashing.
        if name == self.channels[0] {
            return 0;
        }
        self.channel_index
            .get(name)
            .copied()
            .unwrap_or(self.strategy_channel)
    }

    /// Sends one published message to every subscriber, through the links;
    /// not to one whose subscription to that channel Redis has dropped (a
    /// cluster's moved slot).
    pub(super) fn deliver_to_all(&mut self, channel: usize, payload: Rc<Published>) {
        for node in 0..self.nodes.len() {
            let n = &self.nodes[node];
            if !n.alive || !n.instance.is_subscribed() || self.cut_off(node) {
                continue;
            }
            if n.channels[channel].down {
                self.obs.unheard_deliveries += 1;
                continue;
            }
            let life = n.life;
            let delays = match self.links.fate(&mut self.rng) {
                Fate::Drop => {
                    self.obs.lost_deliveries += 1;
                    continue;
                }
                Fate::After(d) => [Some(d), None],
                Fate::Twice(a, b) => [Some(a), Some(b)],
            };
            for delay in delays.into_iter().flatten() {
                self.obs.deliveries += 1;
                let payload = Rc::clone(&payload);
                let deliver = Event::Deliver {
                    node,
                    life,
                    channel,
                    payload,
                };
                self.schedule(self.now + delay, deliver);
            }
        }
    }

    // ----- the adversary -----

    pub(super) fn schedule_forgery(&mut self) {
        let rate = self.config.faults.forgeries;
        if rate > 0.0 && rate.is_finite() {
            let gap = self.rng.exponential(1e9 / rate) as u64;
            self.schedule(self.now + Duration::from_nanos(gap.max(1)), Event::Forgery);
        }
    }

    /// Publishes a decision no controller made, under a term and source the
    /// store never granted together.
    pub(super) fn forge(&mut self) {
        let strategy = Strategy::ALL[self.rng.below(Strategy::ALL.len() as u64) as usize];
        let live_term = self.server.term_counter();
        let term = match self.rng.below(4) {
            0 => aci_core::MAX_TERM,
            1 => 1 + self.rng.below(aci_core::MAX_TERM),
            _ => 1 + self.rng.below(live_term + 5),
        };
        let (term, source) = if self.rng.chance(0.5) {
            // A real instance's id under a term already granted to another
            // (or none): a future term could turn out to be its own next
            // grant, which only signing tells apart.
            let n = self.rng.below(self.nodes.len() as u64) as usize;
            let id = self.nodes[n].instance.settings().instance_id().to_owned();
            (1 + self.rng.below(live_term.max(1)), id)
        } else {
            (term, format!("mallory-{}", self.rng.below(1000)))
        };
        if self.server.granted(term, &source) {
            return;
        }
        self.obs.forgeries += 1;
        let payload = format!(
            r#"{{"action": "strategy_update", "strategy": "{strategy}", "write_rate": 0.0, "timestamp": 1.0, "source": "{source}", "term": {term}}}"#
        );
        let published = Rc::new(Published::new(payload.as_bytes(), self.limits));
        self.deliver_to_all(self.strategy_channel, published);
    }
}
