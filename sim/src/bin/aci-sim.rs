//! `aci-sim`: run a scenario through the deterministic fleet simulator,
//! compare fixed strategies against the policies, or find the configuration
//! for a traffic and an objective. No Redis needed.
//!
//! ```text
//! aci-sim run --scenario ramp [--seed N] [--instances N] [--duration 600s] [--csv FILE] [--svg FILE]
//!             [--max-staleness D | --budget MSG/S]   (the policy; default: the original's table)
//! aci-sim compare --scenario burst [--seed N] [--instances N] [--duration 600s]
//!                 [--writes W/S] [--reads R/S] [--keys N] [--zipf S]   (run too)
//!                 [--loss P] [--duplication P] [--latency-min D] [--latency-mean-extra D] [--latency-max D]
//!                 [--max-staleness D] [--budget MSG/S]   (one more policy to compare)
//! aci-sim tune --writes W/S --reads R/S --instances N [--keys N] [--zipf S] [--duration 300s]
//!              (--max-staleness D | --budget MSG/S)
//! aci-sim list
//! ```

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use aci_core::Duration;
use aci_sim::scenario::{self, Scenario};
use aci_sim::units::{parse_budget, parse_duration, parse_latency};
use aci_sim::workload::{Keys, Shape};
use aci_sim::{report, svg, Policy, Sim};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "aci-sim",
    version,
    about = "Deterministic fleet simulator for aci-cache"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario and print its report.
    Run {
        #[command(flatten)]
        common: Common,
        /// Write the timeline (1 s samples) as CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Draw write rate and strategies over time as SVG.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Run one seed under the fixed strategies, the original's table and the
    /// objective policies, and mark the dominated ones.
    Compare {
        #[command(flatten)]
        common: Common,
    },
    /// Recommend a configuration for your traffic and objective, from simulation.
    Tune(aci_sim::tune::TuneArgs),
    /// List the scenarios.
    List,
}

#[derive(Args)]
struct Common {
    /// steady-low, ramp, hover, burst, lossy, partition, controller-crash, follower-load.
    #[arg(long, value_parser = parse_scenario)]
    scenario: Scenario,
    /// The seed (SIM_SEED also sets it).
    #[arg(long, env = "SIM_SEED", default_value_t = 1)]
    seed: u64,
    /// Instances in the fleet (they elect their controller).
    #[arg(long, default_value_t = 5)]
    instances: usize,
    /// Simulated time: 600s, 10m, 1h.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    duration: Duration,
    /// Replace the scenario's write load by a constant rate (writes/s, fleet-wide).
    #[arg(long)]
    writes: Option<f64>,
    /// Reads per second, fleet-wide (default 1,000).
    #[arg(long)]
    reads: Option<f64>,
    /// Number of keys (default 2,000).
    #[arg(long)]
    keys: Option<usize>,
    /// Zipf exponent of key popularity; 0 is uniform (default 0.9).
    #[arg(long)]
    zipf: Option<f64>,
    /// Probability that a message to one subscriber is lost (0 to 1).
    #[arg(long)]
    loss: Option<f64>,
    /// Probability that a message to one subscriber arrives twice (0 to 1).
    #[arg(long)]
    duplication: Option<f64>,
    /// Smallest one-way latency between an instance and Redis (e.g. 200us, 1ms).
    #[arg(long, value_parser = parse_latency)]
    latency_min: Option<Duration>,
    /// Mean of the exponential part added to it.
    #[arg(long, value_parser = parse_latency)]
    latency_mean_extra: Option<Duration>,
    /// Largest one-way latency (the tail is cut there).
    #[arg(long, value_parser = parse_latency)]
    latency_max: Option<Duration>,
    /// Keep reads within this staleness (1s, 250ms) at the least cost:
    /// `run` uses this policy; `compare` adds it to the policies compared.
    #[arg(long, value_parser = parse_duration, conflicts_with = "budget")]
    max_staleness: Option<Duration>,
    /// Run the freshest mode that fits this many messages/s, fleet-wide:
    /// `run` uses this policy; `compare` adds it to the policies compared.
    #[arg(long, value_parser = parse_budget)]
    budget: Option<f64>,
}

impl Common {
    /// The objective policy given on the command line, if any.
    fn objective(&self) -> Option<Policy> {
        self.max_staleness
            .map(Policy::Bounded)
            .or(self.budget.map(Policy::Budget))
    }

    /// The scenario's configuration with the command line's overrides.
    fn config(&self) -> Result<aci_sim::SimConfig, String> {
        let mut c = scenario::config(self.scenario, self.seed, self.instances, self.duration);
        if let Some(policy) = self.objective() {
            c.policy = policy;
        }
        let rate = |name: &str, r: f64| {
            if r.is_finite() && r >= 0.0 {
                Ok(r)
            } else {
                Err(format!(
                    "--{name} must be a non-negative number of operations per second"
                ))
            }
        };
        if let Some(w) = self.writes {
            c.workload.writes = Shape::Constant(rate("writes", w)?);
        }
        if let Some(r) = self.reads {
            c.workload.reads = Shape::Constant(rate("reads", r)?);
        }
        if self.keys.is_some() || self.zipf.is_some() {
            let count = self.keys.unwrap_or(2_000);
            if count == 0 {
                return Err("--keys must be at least 1".into());
            }
            let s = self.zipf.unwrap_or(0.9);
            if !(s.is_finite() && s >= 0.0) {
                return Err("--zipf must be a non-negative number".into());
            }
            c.workload.keys = Keys::zipf(count, s);
        }
        if self.instances == 0 {
            return Err("--instances must be at least 1".into());
        }
        let probability = |name: &str, p: f64| {
            if (0.0..=1.0).contains(&p) {
                Ok(p)
            } else {
                Err(format!("--{name} must be a probability, from 0 to 1"))
            }
        };
        let f = &mut c.faults;
        if let Some(p) = self.loss {
            f.loss = probability("loss", p)?;
        }
        if let Some(p) = self.duplication {
            f.duplication = probability("duplication", p)?;
        }
        f.latency_min = self.latency_min.unwrap_or(f.latency_min);
        f.latency_mean_extra = self.latency_mean_extra.unwrap_or(f.latency_mean_extra);
        f.latency_max = self.latency_max.unwrap_or(f.latency_max);
        if f.latency_min > f.latency_max {
            return Err(format!(
                "--latency-min ({}) is above --latency-max ({})",
                f.latency_min, f.latency_max
            ));
        }
        Ok(c)
    }
}

fn parse_scenario(name: &str) -> Result<Scenario, String> {
    Scenario::parse(name).ok_or_else(|| {
        let names: Vec<&str> = Scenario::ALL.iter().map(|(_, n)| *n).collect();
        format!("unknown scenario; one of: {}", names.join(", "))
    })
}

/// Whether a file can be written at `path`: its directory exists.
fn writable(path: &std::path::Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(format!("the directory {} does not exist", dir.display()))
    }
}

/// Progress of a run longer than a second (short runs print nothing but
/// their report): a bar on a terminal; elsewhere (a CI log, a file) a plain
/// line every few seconds, since a bar's redraws are invisible there.
struct Progress {
    bar: ProgressBar,
    started: Instant,
    shown: bool,
    terminal: bool,
    name: String,
    last_line: Option<Instant>,
}

/// How often a run on a non-terminal says how far it is.
const PLAIN_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Progress {
    fn new(message: &str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{msg:>16} [{bar:40}] {percent:>3}% {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(message.to_owned());
        Progress {
            bar,
            started: Instant::now(),
            shown: false,
            terminal: std::io::stderr().is_terminal(),
            name: message.to_owned(),
            last_line: None,
        }
    }

    fn update(&mut self, fraction: f64) {
        let elapsed = self.started.elapsed();
        if elapsed.as_secs_f64() <= 1.0 {
            return;
        }
        if self.terminal {
            if !self.shown {
                self.bar.set_draw_target(ProgressDrawTarget::stderr());
                self.shown = true;
            }
            self.bar.set_position((fraction * 1000.0) as u64);
        } else if self
            .last_line
            .is_none_or(|at| at.elapsed() >= PLAIN_PROGRESS_EVERY)
        {
            self.last_line = Some(Instant::now());
            eprintln!(
                "aci-sim: {} {:.0}% simulated after {:.0} s",
                self.name,
                fraction * 100.0,
                elapsed.as_secs_f64()
            );
        }
    }

    fn finish(self) {
        self.bar.finish_and_clear();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::List => {
            for (scenario, name) in Scenario::ALL {
                println!("{name:<18} {}", scenario.description());
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            common,
            csv,
            svg: svg_path,
        } => {
            let config = match common.config() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("aci-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            // Output paths are checked before a run that may take minutes.
            for path in csv.iter().chain(svg_path.iter()) {
                if let Err(e) = writable(path) {
                    eprintln!("aci-sim: cannot write {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
            let started = Instant::now();
            let mut progress = Progress::new(common.scenario.name());
            let result = Sim::new(config.clone()).and_then(|sim| sim.run(|f| progress.update(f)));
            progress.finish();
            let obs = match result {
                Ok(obs) => obs,
                Err(e) => {
                    eprintln!("aci-sim: {e}");
                    return ExitCode::FAILURE;
                }
            };
            print!(
                "{}",
                report::run_report(common.scenario.name(), &config, &obs, started.elapsed())
            );
            if let Some(path) = csv {
                if let Err(e) = std::fs::write(&path, report::csv(&obs)) {
                    eprintln!("aci-sim: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("timeline written to {}", path.display());
            }
            if let Some(path) = svg_path {
                let title = format!("{} (seed {})", common.scenario.name(), common.seed);
                if let Err(e) = svg::draw(&obs, &config, &title, &path) {
                    eprintln!("aci-sim: cannot draw {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("chart written to {}", path.display());
            }
            if obs.violation_count > 0 {
                eprintln!(
                    "aci-sim: invariants violated (replay with SIM_SEED={})",
                    common.seed
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Command::Tune(args) => {
            let config = match args.config() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("aci-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut progress = Progress::new("tune");
            let found = aci_sim::tune::tune(&config, |_, f| progress.update(f));
            progress.finish();
            match found {
                Ok(r) => {
                    print!("{}", aci_sim::tune::tune_report(&r));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("aci-sim: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Compare { common } => {
            let config = match common.config() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("aci-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut policies = scenario::compared_policies(config.instances);
            if let Some(extra) = common.objective().filter(|p| !policies.contains(p)) {
                policies.push(extra);
            }
            let mut progress = Progress::new(common.scenario.name());
            // The runs advance together: one bar for all of them.
            let runs = scenario::compare(&config, &policies, |_, f| progress.update(f));
            progress.finish();
            match runs {
                Ok(runs) => {
                    print!(
                        "{}",
                        report::compare_report(common.scenario.name(), &config, &runs)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("aci-sim: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
