//! Node lifecycle: timers after every event, elections, strategy changes,
//! crashes and restarts.

use aci_cache::instance::Instance;
use aci_core::{Duration, Strategy};

use super::event::Event;
use super::{settings, Sim};
use crate::config::Policy;

impl Sim {
    /// After anything touched `node`: arm its timer, note a strategy change.
    pub(super) fn after(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        if let Some(deadline) = n.instance.next_deadline() {
            if n.timer_at.is_none_or(|t| deadline < t) {
                n.timer_at = Some(deadline);
                let (life, at) = (n.life, deadline.max(self.now));
                self.schedule(
                    at,
                    Event::Timer {
                        node,
                        life,
                        at: deadline,
                    },
                );
            }
        }
        let controller = self.nodes[node].instance.is_controller();
        if controller != self.nodes[node].controller {
            self.nodes[node].controller = controller;
            if controller {
                self.controller_elected(node);
            }
        }
        let strategy = self.nodes[node].instance.strategy();
        if strategy != self.nodes[node].strategy {
            self.nodes[node].strategy = strategy;
            self.obs.switches += 1;
            self.trace.add(strategy as u64 + 100);
            self.obs.timeline.push((self.secs(), node, Some(strategy)));
            if controller && self.config.policy.decides() {
                self.obs
                    .controller_switches
                    .push((self.secs(), node, strategy));
                self.controller_switched(node, strategy);
            }
            self.agreement_changed();
        }
    }

    /// `node` became the controller: never two at once; after a crash, how
    /// long the fleet went without one.
    pub(super) fn controller_elected(&mut self, node: usize) {
        self.obs.elections += 1;
        self.trace.add(node as u64 + 1000);
        let others: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| i != node && self.nodes[i].alive && self.nodes[i].controller)
            .collect();
        if self.config.election && !others.is_empty() {
            let msg = format!("instance {node} became controller while {others:?} still were");
            self.obs.violation(self.now, msg);
        }
        if let Some((_, at)) = self.crashed {
            if self.obs.takeover.is_none() {
                self.obs.takeover = Some((self.now - at).as_secs_f64());
            }
        }
    }

    pub(super) fn controller_switched(&mut self, controller: usize, strategy: Strategy) {
        // The decision reaches Redis and then every subscriber within two hops.
        let check = self.now + self.links.max_hop().saturating_mul(2) + Duration::from_micros(1);
        self.schedule(
            check,
            Event::ConvergenceCheck {
                controller,
                strategy,
                since: self.now,
            },
        );
    }

    pub(super) fn restart_crashed(&mut self) {
        let Some((index, _)) = self.crashed else {
            return;
        };
        let life = self.nodes[index].life;
        let Ok(s) = settings(&self.config, index, &mut self.rng) else {
            return;
        };
        let Ok(instance) = Instance::new(s) else {
            return;
        };
        instance.start(self.now, 1.8e9 + self.secs());
        let in_outage = self.nodes[index].in_outage;
        if !in_outage {
            instance.subscribed();
        }
        let node = &mut self.nodes[index];
        node.instance = instance;
        node.alive = true;
        node.life = life + 1;
        node.timer_at = None;
        node.strategy = node.instance.strategy();
        node.controller = false;
        let initial = node.strategy;
        // A new process, a new subscription: to every channel.
        self.every_channel_heard(index);
        if in_outage {
            self.lose_subscription(index);
        }
        self.obs.timeline.push((self.secs(), index, Some(initial)));
        if let Policy::Fixed(s) = self.config.policy {
            let out = self.nodes[index].instance.force_strategy(Some(s), self.now);
            self.publish_from(index, out);
        }
        self.after(index);
        self.agreement_changed();
    }
}

impl Sim {
    /// The node's subscription is down, or an attempt to make it failed:
    /// the instance drops its near cache and says when to try again (its
    /// backoff, the one every driver follows).
    pub(super) fn lose_subscription(&mut self, node: usize) {
        let retry_at = self.nodes[node].instance.subscription_lost(self.now);
        let life = self.nodes[node].life;
        self.schedule(retry_at, Event::Resubscribe { node, life });
        self.after(node);
    }
}
