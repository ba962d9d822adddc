//! The run report says what it means: its terms defined, stale reads that
//! are stale, convergence that happened, crossings named.

use aci_core::{Duration, Strategy};
use aci_sim::scenario::{self, Scenario};
use aci_sim::{report, Observations, Sim, SimConfig};

fn run(config: &SimConfig) -> Observations {
    Sim::new(config.clone())
        .and_then(|sim| sim.run(|_| {}))
        .expect("the run completes")
}

fn config(scenario: Scenario, instances: usize, seconds: u64) -> SimConfig {
    scenario::config(scenario, 1, instances, Duration::from_secs(seconds))
}

#[test]
fn a_lone_instance_never_reads_stale() {
    // The run a user tried: `run --scenario ramp --instances 1` reported two
    // stale reads (hits concurrent with the instance's own write in flight).
    let obs = run(&config(Scenario::Ramp, 1, 600));
    let hits: u64 = obs.by_strategy.iter().map(|r| r.hits).sum();
    assert!(hits > 100_000, "{hits} hits");
    assert_eq!(obs.stale(), 0, "{:?}", obs.stale_by_write);
}

#[test]
fn stale_ages_stay_within_what_each_strategy_promises() {
    // A reader in eager used to show the age of values replaced by writes
    // made in batched (1,994 ms beside a promise of a delivery).
    for scenario in [
        Scenario::Ramp,
        Scenario::Hover,
        Scenario::Burst,
        Scenario::FollowerLoad,
    ] {
        let config = config(scenario, 5, 300);
        let obs = run(&config);
        for s in Strategy::ALL {
            let stale = &obs.stale_by_write[s.index()];
            assert!(
                stale.ages.max() <= config.staleness_bound(s),
                "{scenario:?}: {s} stale up to {} (bound {})",
                stale.ages.max(),
                config.staleness_bound(s)
            );
        }
        assert_eq!(obs.violation_count, 0, "{:?}", obs.violations);
    }
}

#[test]
fn followers_that_never_hear_a_decision_are_not_reported_converged() {
    // With every message lost, the report said "fleet converged after a
    // decision in p50 0.0 ms".
    let mut config = config(Scenario::Ramp, 5, 120);
    config.faults.loss = 1.0;
    let obs = run(&config);
    assert!(!obs.convergence.is_empty());
    // The decisions into batched and eager reached nobody; the last one,
    // back to ttl, is what the deaf followers ran all along.
    let followed = obs.convergence.iter().flatten().count();
    assert!(followed < obs.convergence.len(), "{:?}", obs.convergence);
    assert_eq!(obs.convergence[0], None, "{:?}", obs.convergence);
    let text = report::run_report("ramp", &config, &obs, std::time::Duration::from_secs(1));
    assert!(
        text.contains(&format!("the whole live fleet ran {followed} of them")),
        "{text}"
    );
    assert!(!text.contains("converged"), "{text}");
}

#[test]
fn a_fleet_that_follows_is_reported_with_its_delay() {
    let config = config(Scenario::Ramp, 5, 120);
    let obs = run(&config);
    assert!(!obs.convergence.is_empty());
    for took in &obs.convergence {
        let took = took.expect("a lossless fleet follows every decision");
        // Two hops at most (latency_max is 5 ms).
        assert!(took <= 0.010 + 1e-9, "{took}");
    }
}

#[test]
fn the_report_defines_its_terms_and_labels_each_crossing() {
    let config = config(Scenario::Ramp, 5, 120);
    let obs = run(&config);
    let text = report::run_report("ramp", &config, &obs, std::time::Duration::from_secs(1));
    assert!(text.contains(report::TERMS), "{text}");
    assert!(text.contains("A stale read is a hit that served a value"));
    assert!(text.contains("| newer write's strategy | stale reads |"));
    let line_with = |a: &str, b: &str| text.lines().any(|l| l.contains(a) && l.contains(b));
    assert!(
        line_with("rose above low_threshold (10 w/s)", "ttl → batched"),
        "{text}"
    );
    assert!(
        line_with("fell below high_threshold (50 w/s)", "eager → batched"),
        "{text}"
    );
    assert_eq!(obs.load_change_to_switch.len(), 4);
}

#[test]
fn a_crashed_instance_is_down_in_the_timeline() {
    let obs = run(&config(Scenario::ControllerCrash, 4, 120));
    let down: Vec<_> = obs
        .timeline
        .iter()
        .filter(|(_, _, s)| s.is_none())
        .collect();
    assert_eq!(down.len(), 1, "{:?}", obs.timeline);
    assert!(obs
        .samples
        .iter()
        .any(|s| s.strategies.iter().any(Option::is_none)));
}
