//! Text reports and CSV.

use std::fmt::Write as _;

use aci_core::{Duration, Strategy};

use crate::config::{Policy, SimConfig};
use crate::observe::Observations;

/// A duration in milliseconds, one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// What the report's words mean; printed at its head.
pub const TERMS: &str = "\
Terms. A read is one get. A near-cache hit is a read answered from the
instance's memory, without Redis. A stale read is a hit that served a value
older than one whose write had completed (its reply had reached its writer);
its age counts from that completion. A hit concurrent with a write still in
flight may serve either value, as a read of Redis itself would, so a lone
instance never reads stale. Stale reads are counted under the strategy the
newer write was made in, since that write's invalidation is what removes the
old value: a reader already in eager holds a value replaced by a write made
in batched until that batch is sent. 'Promised at most' is the bound the
run checks every hit against; a writer cut off or crashed before sending its
invalidation is promised only local_ttl. 'The whole live fleet' is every
instance not crashed, cut-off ones included.
";

/// The convergence line: how many decisions the whole live fleet followed, how fast.
fn convergence_line(convergence: &[Option<f64>]) -> String {
    if convergence.is_empty() {
        return "no controller decision changed the strategy".to_owned();
    }
    let followed: Vec<f64> = convergence.iter().flatten().copied().collect();
    let mut line = format!(
        "controller decisions that changed the strategy: {}; the whole live fleet ran {} of them",
        convergence.len(),
        followed.len()
    );
    if followed.is_empty() {
        line.push_str(" (the followers never applied one)");
    } else {
        let _ = write!(
            line,
            ", after p50 {:.1} ms / max {:.1} ms",
            percentile(&followed, 0.5) * 1e3,
            percentile(&followed, 1.0) * 1e3
        );
    }
    line
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The report of one run.
pub fn run_report(
    name: &str,
    config: &SimConfig,
    obs: &Observations,
    wall: std::time::Duration,
) -> String {
    let mut out = String::new();
    let secs = config.duration.as_secs_f64();
    let _ = writeln!(
        out,
        "scenario {name}  seed {}  instances {}  simulated {secs:.0} s  events {}  wall {:.2} s ({:.1} M events/s)",
        config.seed,
        config.instances,
        obs.events,
        wall.as_secs_f64(),
        obs.events as f64 / wall.as_secs_f64().max(1e-9) / 1e6
    );
    let _ = writeln!(out);
    let _ = write!(out, "{TERMS}");
    let _ = writeln!(out);
    let _ = writeln!(out, "Reads, by the strategy of the reading instance:");
    let _ = writeln!(out);
    let _ = writeln!(out, "| strategy | reads | near-cache hits | hit ratio |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for s in Strategy::ALL {
        let r = &obs.by_strategy[s.index()];
        let _ = writeln!(
            out,
            "| {s} | {} | {} | {:.1}% |",
            r.reads,
            r.hits,
            r.hits as f64 / r.reads.max(1) as f64 * 100.0
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Stale reads, by the strategy the newer write was made in:"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| newer write's strategy | stale reads | age p50 | p99 | max | promised at most |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for s in Strategy::ALL {
        let r = &obs.stale_by_write[s.index()];
        let _ = writeln!(
            out,
            "| {s} | {} | {} | {} | {} | {} |",
            r.reads,
            ms(r.ages.quantile(0.5)),
            ms(r.ages.quantile(0.99)),
            ms(r.ages.max()),
            ms(config.staleness_bound(s))
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "messages published: {} invalidations ({} bytes), {} decisions ({} bytes), {} rate reports ({} bytes); deliveries {} (lost {})",
        obs.invalidations,
        obs.invalidation_bytes,
        obs.decisions,
        obs.decision_bytes,
        obs.reports,
        obs.report_bytes,
        obs.deliveries,
        obs.lost_deliveries
    );
    if let Some(cluster) = config.cluster {
        let _ = writeln!(
            out,
            "cluster of {} shards, {} invalidation buckets: {} slot moves, {} shard drops; \
             channels lost {} times, back {} times; entries dropped {} (the lost channel's), \
             kept {} (the others'); messages not delivered on a lost channel {}",
            cluster.shards,
            cluster.buckets,
            obs.slot_moves,
            obs.shard_drops,
            obs.channel_losses,
            obs.channel_restores,
            obs.dropped_by_channel_loss,
            obs.kept_by_channel_loss,
            obs.unheard_deliveries
        );
    }
    let _ = writeln!(
        out,
        "writes acknowledged {}, failed {}; reads failed {}, coalesced {}; hit ratio {:.1}%",
        obs.writes_acked,
        obs.failed_writes,
        obs.failed_reads,
        obs.coalesced_reads,
        obs.hit_ratio() * 100.0
    );
    let controller: Vec<String> = obs
        .controller_switches
        .iter()
        .map(|(t, i, s)| format!("{t:.1}s→{s} (#{i})"))
        .collect();
    let _ = writeln!(
        out,
        "controller strategy: {}",
        if controller.is_empty() {
            "ttl throughout".to_owned()
        } else {
            controller.join(", ")
        }
    );
    let takeover = obs.takeover.map_or(String::new(), |t| {
        format!("; after the crash, a new controller in {t:.2} s")
    });
    let _ = writeln!(out, "controllers elected {}{takeover}", obs.elections);
    let _ = writeln!(
        out,
        "switches (all instances) {}; live instances disagreeing {:.1} s in all",
        obs.switches, obs.disagreement
    );
    let _ = writeln!(out, "{}", convergence_line(&obs.convergence));
    if !obs.load_change_to_switch.is_empty() {
        let _ = writeln!(
            out,
            "offered write rate crossed a threshold (then: whole live fleet in the strategy it calls for):"
        );
        for (c, after) in &obs.load_change_to_switch {
            let crossed: Vec<String> = c
                .thresholds()
                .into_iter()
                .map(|name| {
                    let value = if name == "high_threshold" {
                        config.cache.high_threshold
                    } else {
                        config.cache.low_threshold
                    };
                    format!("{name} ({value} w/s)")
                })
                .collect();
            let _ = writeln!(
                out,
                "  at {:>7.1} s  {} {:<32}  {:<16}  {}",
                c.at,
                if c.rose() { "rose above" } else { "fell below" },
                crossed.join(" and "),
                format!("{} → {}", c.from, c.to),
                after.map_or(
                    "never (before the next crossing or the end)".to_owned(),
                    |s| { format!("after {s:.1} s") }
                )
            );
        }
    }
    let _ = writeln!(out, "invariant violations: {}", obs.violation_count);
    for v in &obs.violations {
        let _ = writeln!(out, "  {v}");
    }
    let _ = writeln!(out, "trace hash {:016x}", obs.trace_hash);
    out
}

/// The side-by-side table of `compare`.
pub fn compare_report(name: &str, config: &SimConfig, runs: &[(Policy, Observations)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {name}  seed {}  instances {}  simulated {:.0} s",
        config.seed,
        config.instances,
        config.duration.as_secs_f64()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "A stale read is a near-cache hit that served a value older than one whose write had\n\
         completed; its age counts from that completion (`aci-sim run` prints the full terms)."
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "A policy is dominated when another run sent no more messages and served no more\n\
         stale reads, one of the two strictly fewer."
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| policy | messages | bytes | stale reads | stale p99 | stale max | hit ratio | dominated by |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
    let dominated = dominators(runs);
    for ((policy, obs), by) in runs.iter().zip(&dominated) {
        let ages = obs.all_ages();
        let by: Vec<String> = by.iter().map(|&j| runs[j].0.to_string()).collect();
        let _ = writeln!(
            out,
            "| {policy} | {} | {} | {} ({:.2}%) | {} | {} | {:.1}% | {} |",
            obs.messages(),
            obs.invalidation_bytes + obs.decision_bytes + obs.report_bytes,
            obs.stale(),
            obs.stale() as f64 / obs.reads().max(1) as f64 * 100.0,
            ms(ages.quantile(0.99)),
            ms(ages.max()),
            obs.hit_ratio() * 100.0,
            if by.is_empty() {
                "—".to_owned()
            } else {
                by.join(", ")
            }
        );
    }
    out
}

/// For each run, the runs that dominate it: no more messages and no more
/// stale reads, one of them strictly fewer.
///
/// ```
/// # use aci_sim::{Observations, Policy};
/// # use aci_core::Strategy;
/// let run = |messages: u64, stale: u64| {
///     let mut obs = Observations::default();
///     obs.invalidations = messages;
///     obs.stale_by_write[0].reads = stale;
///     obs
/// };
/// let runs = [
///     (Policy::Fixed(Strategy::Ttl), run(10, 50)),
///     (Policy::Fixed(Strategy::Eager), run(90, 0)),
///     (Policy::Adaptive, run(90, 5)),
/// ];
/// let by = aci_sim::report::dominators(&runs);
/// assert_eq!(by, vec![vec![], vec![], vec![1]]);
/// ```
pub fn dominators(runs: &[(Policy, Observations)]) -> Vec<Vec<usize>> {
    let score = |obs: &Observations| (obs.messages(), obs.stale());
    runs.iter()
        .map(|(_, a)| {
            let (am, as_) = score(a);
            runs.iter()
                .enumerate()
                .filter(|(_, (_, b))| {
                    let (bm, bs) = score(b);
                    bm <= am && bs <= as_ && (bm < am || bs < as_)
                })
                .map(|(j, _)| j)
                .collect()
        })
        .collect()
}

/// The timeline as CSV: time, offered and measured write rate, each instance's strategy.
pub fn csv(obs: &Observations) -> String {
    let mut out = String::new();
    let n = obs.samples.first().map_or(0, |s| s.strategies.len());
    let _ = write!(out, "t,offered_write_rate,measured_write_rate");
    for i in 0..n {
        let _ = write!(out, ",strategy_{i}");
    }
    let _ = writeln!(out);
    for s in &obs.samples {
        let _ = write!(
            out,
            "{:.3},{:.3},{:.3}",
            s.t, s.offered_write_rate, s.measured_write_rate
        );
        for st in &s.strategies {
            let _ = write!(out, ",{}", st.map_or("down", Strategy::as_str));
        }
        let _ = writeln!(out);
    }
    out
}
