//! Simulator speed: one simulated hour of 20 instances at 2,000 reads/s in
//! total, timed as a whole run (criterion's repeated sampling would take
//! minutes per figure). `cargo bench -p aci-sim`.
#![allow(missing_docs, reason = "a benchmark binary")]

use std::time::Instant;

use aci_core::Duration;
use aci_sim::scenario::{self, Scenario};
use aci_sim::workload::{Shape, Writers};
use aci_sim::Sim;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("sim bench: run with `cargo bench -p aci-sim`");
        return;
    }
    println!("| run (1 simulated hour, 20 instances, 2,000 reads/s) | events | wall | events/s | strategy |");
    println!("|---|---:|---:|---:|---|");
    let runs = [
        (
            "200 writes/s over the fleet (eager: each write to 20 subscribers)",
            200.0,
        ),
        ("5 writes/s over the fleet (ttl: no invalidations)", 5.0),
    ];
    for (label, writes) in runs {
        let mut config = scenario::config(Scenario::SteadyLow, 42, 20, Duration::from_secs(3600));
        config.workload.writes = Shape::Constant(writes);
        config.workload.reads = Shape::Constant(2_000.0);
        config.workload.writers = Writers::All;
        let mut walls = Vec::new();
        let mut last = None;
        for _ in 0..3 {
            let start = Instant::now();
            let obs = Sim::new(config.clone())
                .and_then(|s| s.run(|_| {}))
                .expect("the run completes");
            walls.push(start.elapsed());
            last = Some(obs);
        }
        walls.sort();
        let median = walls[1];
        let obs = last.expect("three runs");
        let strategy = obs
            .timeline
            .iter()
            .rev()
            .find(|(_, i, _)| *i == 0)
            .map_or("ttl".to_owned(), |(_, _, s)| s.to_string());
        println!(
            "| {label} | {} | {:.2} s (median of 3) | {:.2} M | {strategy} |",
            obs.events,
            median.as_secs_f64(),
            obs.events as f64 / median.as_secs_f64() / 1e6
        );
    }
}
