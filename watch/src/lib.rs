//! What `aci watch` shows, sans-IO: feed it each message heard on a
//! namespace's channels with the time it arrived, and render the fleet.
//!
//! ```
//! use aci_watch::{Channel, Fleet};
//! let mut fleet = Fleet::new();
//! let decision = br#"{"action": "strategy_update", "strategy": "eager", "write_rate": 120.5, "timestamp": 1.0, "source": "web-1", "term": 3}"#;
//! fleet.heard(Channel::Strategy, decision, 10.0);
//! let report = br#"{"action": "rate_report", "write_rate": 40.0, "timestamp": 1.0, "source": "web-2"}"#;
//! fleet.heard(Channel::Strategy, report, 10.2);
//! fleet.heard(Channel::Invalidation, b"not json", 10.3);
//! let text = fleet.render(11.0);
//! assert!(text.contains("controller web-1, term 3, strategy eager"));
//! assert!(text.contains("web-2"));
//! assert!(text.contains("rejected 1"));
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use aci_core::wire::{decode, Limits, Message};

/// Which of the namespace's two channels a message came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// `{prefix}:{namespace}:invalidation`.
    Invalidation,
    /// `{prefix}:{namespace}:strategy`: decisions and rate reports.
    Strategy,
}

/// How long an instance that stopped reporting stays listed (seconds).
const FORGET_AFTER: f64 = 30.0;
/// The window invalidations per second are counted over (seconds).
const RATE_WINDOW: f64 = 5.0;

/// The fleet as heard so far.
#[derive(Debug, Default)]
pub struct Fleet {
    controller: Option<String>,
    term: Option<u64>,
    strategy: Option<String>,
    fleet_rate: Option<f64>,
    decided_at: Option<f64>,
    /// Instance → (its reported write rate, when heard).
    instances: BTreeMap<String, (f64, f64)>,
    /// Arrival times of the window's invalidations, oldest first, and how
    /// many keys each named.
    invalidations: VecDeque<(f64, usize)>,
    invalidations_total: u64,
    rejected: u64,
    messages: u64,
}

impl Fleet {
    /// Nothing heard yet.
    pub fn new() -> Self {
        Fleet::default()
    }

    /// One message, heard on `channel` at `now` (seconds, any origin).
    /// Messages that do not decode count as rejected.
    pub fn heard(&mut self, channel: Channel, payload: &[u8], now: f64) {
        self.messages += 1;
        let text = |s: aci_core::wire::JsonStr<'_>| s.chars().collect::<String>();
        match (channel, decode(payload, Limits::default())) {
            (Channel::Invalidation, Ok(Message::Invalidate(m))) => {
                self.invalidations.push_back((now, m.keys.len()));
                self.invalidations_total += 1;
            }
            (Channel::Strategy, Ok(Message::StrategyUpdate(m))) => {
                self.controller = m.source.map(text);
                self.term = m.term;
                self.strategy = Some(m.strategy.as_str().to_owned());
                self.fleet_rate = m.write_rate;
                self.decided_at = Some(now);
            }
            (Channel::Strategy, Ok(Message::RateReport(m))) => {
                self.instances.insert(text(m.source), (m.write_rate, now));
            }
            _ => self.rejected += 1,
        }
        self.forget_before(now);
    }

    /// Drops invalidations older than the window: each message once, from
    /// the front (a busy fleet sends thousands a second).
    fn forget_before(&mut self, now: f64) {
        while self
            .invalidations
            .front()
            .is_some_and(|(at, _)| now - at > RATE_WINDOW)
        {
            self.invalidations.pop_front();
        }
    }

    /// The fleet as text, as of `now`.
    pub fn render(&mut self, now: f64) -> String {
        self.forget_before(now);
        self.instances
            .retain(|_, (_, at)| now - *at <= FORGET_AFTER);
        let mut out = String::new();
        match (&self.controller, &self.strategy) {
            (Some(controller), Some(strategy)) => {
                let term = self
                    .term
                    .map_or("none (a Python controller)".to_owned(), |t| t.to_string());
                let _ = writeln!(
                    out,
                    "controller {controller}, term {term}, strategy {strategy}"
                );
                if let (Some(rate), Some(at)) = (self.fleet_rate, self.decided_at) {
                    let _ = writeln!(
                        out,
                        "  fleet write rate {rate:.1} writes/s (decided {:.1} s ago)",
                        now - at
                    );
                }
            }
            _ => {
                let _ = writeln!(out, "no decision heard yet");
            }
        }
        let _ = writeln!(out, "instances reporting: {}", self.instances.len());
        for (id, (rate, at)) in &self.instances {
            let _ = writeln!(
                out,
                "  {id:<24} {rate:>10.1} writes/s  ({:.1} s ago)",
                now - at
            );
        }
        let messages = self.invalidations.len() as f64 / RATE_WINDOW;
        let keys: usize = self.invalidations.iter().map(|(_, k)| k).sum();
        let _ = writeln!(
            out,
            "invalidations {messages:.1}/s naming {:.1} keys/s (last {RATE_WINDOW:.0} s; {} in all)",
            keys as f64 / RATE_WINDOW,
            self.invalidations_total
        );
        let _ = writeln!(
            out,
            "messages heard {}, rejected {}",
            self.messages, self.rejected
        );
        out
    }
}
