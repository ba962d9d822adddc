//! `aci-sim tune`: from a fleet's traffic and what its owner cares about — a
//! staleness bound or a message budget — the configuration to deploy, with
//! what it is predicted to cost, beside the original's table.
//!
//! The objective policy and the table run on the same seed and traffic (the
//! fixed strategies too, for scale); the recommendation is the objective
//! policy, shown with the mode its controller settles on at this traffic,
//! the model's prediction of its messages and what the simulation measured.

use std::fmt::Write as _;

use aci_core::policy::{FleetLoad, Mode, Objective};
use aci_core::{Duration, Strategy};

use crate::config::{Policy, SimConfig};
use crate::scenario::{self, Scenario};
use crate::units::{parse_budget, parse_duration};
use crate::workload::{Keys, Shape};
use crate::{Observations, SimError};

/// Your traffic and your objective.
#[derive(Clone, Debug, clap::Args)]
pub struct TuneArgs {
    /// Writes per second, fleet-wide.
    #[arg(long)]
    pub writes: f64,
    /// Reads per second, fleet-wide.
    #[arg(long)]
    pub reads: f64,
    /// Instances in the fleet (each reads and writes).
    #[arg(long, default_value_t = 5)]
    pub instances: usize,
    /// Number of keys.
    #[arg(long, default_value_t = 2_000)]
    pub keys: usize,
    /// Zipf exponent of key popularity; 0 is uniform.
    #[arg(long, default_value_t = 0.9)]
    pub zipf: f64,
    /// The seed (SIM_SEED also sets it).
    #[arg(long, env = "SIM_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Simulated time per run.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub duration: Duration,
    /// No read on another instance staler than this (1s, 250ms).
    #[arg(long, value_parser = parse_duration, conflicts_with = "budget",
          required_unless_present = "budget")]
    pub max_staleness: Option<Duration>,
    /// At most this many messages per second, fleet-wide.
    #[arg(long, value_parser = parse_budget)]
    pub budget: Option<f64>,
}

impl TuneArgs {
    /// The objective asked for.
    pub fn policy(&self) -> Result<Policy, String> {
        match (self.max_staleness, self.budget) {
            (Some(bound), None) => Ok(Policy::Bounded(bound)),
            (None, Some(budget)) => Ok(Policy::Budget(budget)),
            _ => Err("give one of --max-staleness and --budget".into()),
        }
    }

    /// The simulated fleet: constant rates, every instance writing.
    pub fn config(&self) -> Result<SimConfig, String> {
        for (name, rate) in [("writes", self.writes), ("reads", self.reads)] {
            if !(rate.is_finite() && rate >= 0.0) {
                return Err(format!(
                    "--{name} must be a non-negative number of operations per second"
                ));
            }
        }
        if self.instances == 0 || self.keys == 0 {
            return Err("--instances and --keys must be at least 1".into());
        }
        if !(self.zipf.is_finite() && self.zipf >= 0.0) {
            return Err("--zipf must be a non-negative number".into());
        }
        let mut c = scenario::config(
            Scenario::SteadyLow,
            self.seed,
            self.instances,
            self.duration,
        );
        c.workload.writes = Shape::Constant(self.writes);
        c.workload.reads = Shape::Constant(self.reads);
        c.workload.keys = Keys::zipf(self.keys, self.zipf);
        c.policy = self.policy()?;
        Ok(c)
    }
}

/// What `tune` found.
#[derive(Debug)]
pub struct Recommendation {
    /// The fleet simulated.
    pub config: SimConfig,
    /// The objective policy recommended.
    pub policy: Policy,
    /// The mode its controller settles on at this traffic (by the model).
    pub settled: Mode,
    /// The model's messages per second in that mode, fleet-wide.
    pub predicted_messages: f64,
    /// The runs: the objective policy first, then the table and the fixed strategies.
    pub runs: Vec<(Policy, Observations)>,
}

/// Simulates the objective and the alternatives on one traffic.
pub fn tune(
    config: &SimConfig,
    progress: impl FnMut(&str, f64) + Send,
) -> Result<Recommendation, SimError> {
    let policy = config.policy;
    let policies = [
        policy,
        Policy::Adaptive,
        Policy::Fixed(Strategy::Ttl),
        Policy::Fixed(Strategy::Batched),
        Policy::Fixed(Strategy::Eager),
    ];
    let (settled, predicted_messages) = settle(config).map_err(|message| SimError {
        message,
        seed: None,
    })?;
    let runs = scenario::compare(config, &policies, progress)?;
    Ok(Recommendation {
        config: config.clone(),
        policy,
        settled,
        predicted_messages,
        runs,
    })
}

/// The mode the policy's controller settles on at the configured steady
/// traffic, and the model's messages per second in it.
fn settle(config: &SimConfig) -> Result<(Mode, f64), String> {
    // The configuration every simulated instance gets.
    let mut rng = crate::rng::SimRng::new(config.seed);
    let settings = crate::sim::settings(config, 0, &mut rng).map_err(|e| e.to_string())?;
    let policy = aci_core::Policy::from_config(settings.core());
    let load = FleetLoad {
        write_rate: config.workload.writes.rate(0.0),
        writers: config.instances,
        instances: config.instances,
        complete: true,
    };
    let mut mode = policy.initial();
    for _ in 0..4 {
        mode = policy.decide(&load, mode, Duration::MAX);
    }
    Ok((mode, policy.predicted_messages(mode, &load)))
}

/// The recommendation as text: the configuration to deploy, then the
/// figures of every run side by side.
pub fn tune_report(r: &Recommendation) -> String {
    let mut out = String::new();
    let c = &r.config;
    let seconds = c.duration.as_secs_f64();
    let _ = writeln!(
        out,
        "traffic: {} writes/s and {} reads/s over {} instances, {} keys; \
         simulated {seconds:.0} s per policy, seed {}",
        c.workload.writes.rate(0.0),
        c.workload.reads.rate(0.0),
        c.instances,
        c.workload.keys.len(),
        c.seed
    );
    let (objective, snippet) = match r.policy.objective() {
        Objective::Bounded { max_staleness } => (
            format!("no read on another instance staler than {max_staleness}"),
            format!(
                ".max_staleness(Duration::from_millis({}))",
                max_staleness.as_millis()
            ),
        ),
        Objective::Budget {
            messages_per_second,
        } => (
            format!("at most {messages_per_second} messages/s, fleet-wide"),
            format!(".message_budget({messages_per_second:?})"),
        ),
        Objective::Thresholds => ("the original's table".into(), String::new()),
    };
    let _ = writeln!(out, "objective: {objective}");
    let _ = writeln!(out);
    let _ = writeln!(out, "recommended configuration:");
    let _ = writeln!(out);
    let _ = writeln!(out, "    aci_cache::Builder::new()");
    let _ = writeln!(out, "        {snippet}");
    let _ = writeln!(out);
    let mode = match r.settled {
        Mode::Ttl => format!(
            "ttl: near-cache entries expire within {} and nothing is sent",
            c.cache.local_ttl
        ),
        Mode::Batched(b) => format!("batched, each instance flushing every {b}"),
        Mode::Eager => "eager, one invalidation per write".into(),
    };
    let _ = writeln!(
        out,
        "At this traffic the controller settles on {mode}; the model predicts {:.1} messages/s.",
        r.predicted_messages
    );
    if let Some((_, obs)) = r.runs.first() {
        let _ = writeln!(out, "{}", verdict(r.policy, obs, seconds));
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| policy | messages/s | bytes/s | stale reads | stale p99 | stale max | hit ratio |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for (i, (policy, obs)) in r.runs.iter().enumerate() {
        let ages = obs.all_ages();
        let mark = if i == 0 { " (recommended)" } else { "" };
        let _ = writeln!(
            out,
            "| {policy}{mark} | {:.1} | {:.0} | {:.2}% | {} | {} | {:.1}% |",
            obs.messages() as f64 / seconds,
            (obs.invalidation_bytes + obs.decision_bytes + obs.report_bytes) as f64 / seconds,
            obs.stale() as f64 / obs.reads().max(1) as f64 * 100.0,
            crate::report::ms(ages.quantile(0.99)),
            crate::report::ms(ages.max()),
            obs.hit_ratio() * 100.0
        );
    }
    out
}

/// Whether the simulated run kept the objective.
fn verdict(policy: Policy, obs: &Observations, seconds: f64) -> String {
    match policy {
        Policy::Bounded(bound) => {
            let worst = obs.all_ages().max();
            let kept = worst <= bound;
            format!(
                "Simulated: the stalest read was {} ({}).",
                crate::report::ms(worst),
                if kept {
                    "the bound held"
                } else {
                    "over the bound: see the invariant report of `aci-sim run`"
                }
            )
        }
        Policy::Budget(budget) => {
            let rate = obs.messages() as f64 / seconds;
            format!(
                "Simulated: {rate:.1} messages/s ({}).",
                if rate <= budget {
                    "within the budget"
                } else {
                    "over the budget: the control plane alone may not fit, or the traffic is not steady"
                }
            )
        }
        _ => String::new(),
    }
}
