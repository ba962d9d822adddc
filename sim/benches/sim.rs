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
    delivery_floor();
    println!(
        "| run (1 simulated hour, 20 instances, 2,000 reads/s) | events | deliveries | wall | events/s | deliveries/s | strategy |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
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
            .map_or("ttl".to_owned(), |(_, _, s)| {
                s.map_or("down".to_owned(), |s| s.to_string())
            });
        println!(
            "| {label} | {} | {} | {:.2} s (median of 3) | {:.2} M | {:.2} M | {strategy} |",
            obs.events,
            obs.deliveries,
            median.as_secs_f64(),
            obs.events as f64 / median.as_secs_f64() / 1e6,
            obs.deliveries as f64 / median.as_secs_f64() / 1e6
        );
    }
}

/// What one delivery costs on the real path alone (`Instance::handle_message`
/// of a one-key eager invalidation, no simulator around it), round-robin
/// over 20 instances: the floor under the eager run's 14.4 M deliveries.
fn delivery_floor() {
    use aci_cache::instance::Instance;
    let instances: Vec<Instance> = (0..20)
        .map(|i| {
            let settings = aci_cache::Builder::new()
                .role(aci_cache::Role::Follower)
                .instance_id(format!("bench-{i}"))
                .settings()
                .expect("valid settings");
            let instance = Instance::new(settings).expect("an instance");
            instance.start(aci_core::Instant::ZERO, 1.8e9);
            instance.subscribed();
            instance
        })
        .collect();
    let channel = instances[0]
        .settings()
        .core()
        .invalidation_channel()
        .to_owned();
    let payloads: Vec<Vec<u8>> = (0..1000)
        .map(|k| {
            format!(
                r#"{{"action": "invalidate", "keys": ["aci:k{k}"], "strategy": "eager", "timestamp": 1800000000.123456, "source": "sim-19-1234abcd"}}"#
            )
            .into_bytes()
        })
        .collect();
    let deliveries = 2_000_000;
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for i in 0..deliveries {
                let instance = &instances[i % instances.len()];
                let now = aci_core::Instant::from_nanos(i as u64 * 1_000);
                let payload = &payloads[(i / instances.len()) % payloads.len()];
                drop(std::hint::black_box(
                    instance.handle_message(&channel, payload, now),
                ));
            }
            start.elapsed().as_nanos() as f64 / deliveries as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "real path per delivery (Instance::handle_message, 1-key eager invalidation, 20 instances): \
         {:.0} ns (median of 5) -> {:.1} s for the 14.4 M deliveries of the eager hour",
        runs[2],
        runs[2] * 14.4e6 / 1e9
    );
    // As the simulator delivers: each payload decoded once, the result
    // handed to every subscriber's engine.
    let limits = aci_core::wire::Limits::from_config(instances[0].settings().core());
    let texts: Vec<&str> = payloads
        .iter()
        .map(|p| std::str::from_utf8(p).expect("UTF-8"))
        .collect();
    let detached: Vec<aci_core::wire::Detached> = texts
        .iter()
        .map(|t| {
            aci_core::wire::decode(t.as_bytes(), limits)
                .expect("a valid message")
                .detach(t)
        })
        .collect();
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for i in 0..deliveries {
                let instance = &instances[i % instances.len()];
                let now = aci_core::Instant::from_nanos(i as u64 * 1_000);
                let p = (i / instances.len()) % payloads.len();
                let message = detached[p]
                    .attach(texts[p])
                    .ok_or(aci_core::wire::DecodeError::InvalidUtf8);
                drop(std::hint::black_box(instance.handle_decoded(
                    &channel,
                    &payloads[p],
                    message,
                    now,
                )));
            }
            start.elapsed().as_nanos() as f64 / deliveries as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "the same, decoded once per payload (Instance::handle_decoded, as the simulator delivers): \
         {:.0} ns (median of 5) -> {:.1} s for the eager hour\n",
        runs[2],
        runs[2] * 14.4e6 / 1e9
    );
}
