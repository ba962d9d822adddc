//! The fleet on a simulated Redis Cluster: channels spread over shards,
//! lost one at a time when a slot moves or a shard's connections drop. The
//! invariants are the single server's; each loss is checked to drop exactly
//! what its channel covers.

use aci_core::{Duration, Strategy};
use aci_sim::faults::{Outage, ShardDrop, SlotMove};
use aci_sim::scenario::{self, Scenario};
use aci_sim::workload::{Keys, Shape};
use aci_sim::{Cluster, Observations, Policy, Sim, SimConfig};

fn run(config: SimConfig) -> Observations {
    Sim::new(config)
        .and_then(|sim| sim.run(|_| {}))
        .expect("the run completes")
}

fn cluster(seed: u64, instances: usize, seconds: u64) -> SimConfig {
    scenario::config(
        Scenario::Cluster,
        seed,
        instances,
        Duration::from_secs(seconds),
    )
}

/// A cluster run with no fault but these moves, eager throughout, reads
/// dense enough that every loss finds entries of every bucket.
fn moves(seed: u64, slot_moves: Vec<SlotMove>) -> SimConfig {
    let mut config = cluster(seed, 4, 30);
    config.faults.slot_moves = slot_moves;
    config.faults.shard_drops.clear();
    config.policy = Policy::Fixed(Strategy::Eager);
    config.workload.keys = Keys::zipf(200, 0.9);
    config.workload.reads = Shape::Constant(4_000.0);
    config
}

#[test]
fn the_cluster_scenario_keeps_every_invariant() {
    for seed in 1..=4 {
        let obs = run(cluster(seed, 5, 120));
        assert_eq!(obs.violation_count, 0, "seed {seed}: {:#?}", obs.violations);
        assert_eq!((obs.slot_moves, obs.shard_drops), (2, 1));
        assert!(obs.channel_losses >= 15, "{}", obs.channel_losses);
        assert_eq!(obs.channel_restores, obs.channel_losses);
        // Partial: each loss dropped its channel's entries, and kept others.
        assert!(obs.dropped_by_channel_loss > 0);
        assert!(obs.kept_by_channel_loss > obs.dropped_by_channel_loss);
        assert!(
            obs.unheard_deliveries > 0,
            "nothing was published on a lost channel"
        );
        assert!(obs.writes_acked > 10_000);
    }
}

#[test]
fn a_moved_bucket_drops_only_its_bucket_on_every_instance() {
    let obs = run(moves(
        7,
        vec![SlotMove {
            bucket: Some(3),
            at: 10.0,
        }],
    ));
    assert_eq!(obs.violation_count, 0, "{:#?}", obs.violations);
    // Bucket 3 has a slot of its own: one loss on each of the 4 instances.
    assert_eq!(obs.channel_losses, 4);
    assert_eq!(obs.channel_restores, 4);
    // About one key in eight is bucket 3's.
    assert!(obs.dropped_by_channel_loss > 0);
    assert!(
        obs.kept_by_channel_loss > 4 * obs.dropped_by_channel_loss,
        "kept {}, dropped {}",
        obs.kept_by_channel_loss,
        obs.dropped_by_channel_loss
    );
}

#[test]
fn the_control_plane_moving_drops_everything_and_the_fleet_follows_again() {
    let mut config = moves(
        3,
        vec![SlotMove {
            bucket: None,
            at: 10.0,
        }],
    );
    config.policy = Policy::Adaptive;
    config.workload.writes = Shape::Constant(100.0);
    let obs = run(config);
    assert_eq!(obs.violation_count, 0, "{:#?}", obs.violations);
    assert_eq!(obs.channel_losses, 4);
    // Decisions may have been missed: nothing is kept.
    assert_eq!(obs.kept_by_channel_loss, 0);
    assert!(obs.dropped_by_channel_loss > 0);
    // The switches at the start take a delivery each; a missed decision
    // would hold a follower back until the controller's next one (3 s).
    assert!(obs.disagreement < 0.1, "{}", obs.disagreement);
}

#[test]
fn many_moves_under_dense_reads_keep_the_eager_bound() {
    // A move every 100 ms, of every bucket and the control plane in turn.
    let slot_moves: Vec<SlotMove> = (0..280)
        .map(|i| SlotMove {
            bucket: (i % 9 != 8).then_some((i % 9) as u16),
            at: 1.0 + f64::from(i) * 0.1,
        })
        .collect();
    for seed in 1..=3 {
        let mut config = moves(seed, slot_moves.clone());
        config.workload.writes = Shape::Constant(1_000.0);
        let obs = run(config);
        assert_eq!(obs.violation_count, 0, "seed {seed}: {:#?}", obs.violations);
        assert!(obs.unheard_deliveries > 100, "{}", obs.unheard_deliveries);
        assert_eq!(obs.channel_restores, obs.channel_losses);
        let eager = &obs.stale_by_write[Strategy::Eager.index()];
        assert!(
            eager.ages.max() <= Duration::from_millis(15),
            "{:?}",
            eager.ages.max()
        );
    }
}

#[test]
fn a_slow_resubscription_keeps_the_lost_bucket_uncached() {
    // 300 ms to subscribe again, far beyond the eager bound (15 ms): what
    // the lost channel carries meanwhile is missed, so nothing it covers
    // may be cached until it is back.
    let slot_moves: Vec<SlotMove> = (0..40)
        .map(|i| SlotMove {
            bucket: Some((i % 8) as u16),
            at: 1.0 + f64::from(i) * 0.7,
        })
        .collect();
    for seed in 1..=3 {
        let mut config = moves(seed, slot_moves.clone());
        config.workload.writes = Shape::Constant(1_000.0);
        if let Some(cluster) = config.cluster.as_mut() {
            cluster.resubscribe = Some(Duration::from_millis(300));
        }
        let obs = run(config);
        assert_eq!(obs.violation_count, 0, "seed {seed}: {:#?}", obs.violations);
        assert!(obs.unheard_deliveries > 1_000, "{}", obs.unheard_deliveries);
    }
}

#[test]
fn one_instances_shard_drop_touches_only_it() {
    let mut config = moves(5, Vec::new());
    config.faults.shard_drops = vec![ShardDrop {
        shard: 1,
        at: 10.0,
        instance: Some(2),
    }];
    let obs = run(config);
    assert_eq!(obs.violation_count, 0, "{:#?}", obs.violations);
    assert_eq!(obs.shard_drops, 1);
    // One instance, each channel shard 1 serves (of 8 buckets and the
    // control plane over 3 shards, some and not all).
    assert!(
        (1..9).contains(&obs.channel_losses),
        "{}",
        obs.channel_losses
    );
}

#[test]
fn a_resubscription_that_meets_a_partition_falls_back_to_the_whole_subscription() {
    let mut config = moves(
        11,
        vec![SlotMove {
            bucket: Some(1),
            at: 10.0,
        }],
    );
    // Instance 1 is cut off just after Redis drops its channel: it hears of
    // the loss, then its new subscription cannot reach Redis.
    config.faults.outages = vec![Outage {
        instance: 1,
        at: 10.000_1,
        duration: 2.0,
    }];
    let obs = run(config);
    assert_eq!(obs.violation_count, 0, "{:#?}", obs.violations);
    assert!(obs.resubscribed.iter().any(|&(_, node)| node == 1));
}

#[test]
fn cluster_faults_name_what_exists() {
    let refused = |config: SimConfig| match Sim::new(config) {
        Err(e) => e.message,
        Ok(_) => panic!("accepted"),
    };
    let mut single = scenario::config(Scenario::Ramp, 1, 3, Duration::from_secs(10));
    single.faults.slot_moves = vec![SlotMove {
        bucket: None,
        at: 1.0,
    }];
    assert!(refused(single).contains("need a cluster"));

    let mut config = cluster(1, 3, 10);
    config.faults.shard_drops[0].shard = 3;
    assert!(refused(config).contains("shard 3"));

    let mut config = cluster(1, 3, 10);
    config.faults.shard_drops[0].instance = Some(3);
    assert!(refused(config).contains("instance"));

    let mut config = cluster(1, 3, 10);
    config.faults.slot_moves[0].bucket = Some(8);
    assert!(refused(config).contains("bucket"));

    let mut config = cluster(1, 3, 10);
    config.cluster = Some(Cluster {
        shards: 0,
        buckets: 8,
        resubscribe: None,
    });
    assert!(refused(config).contains("shards"));

    let mut config = cluster(1, 3, 10);
    config.cluster = Some(Cluster {
        shards: 3,
        buckets: 5000,
        resubscribe: None,
    });
    let message = refused(config);
    assert!(
        message.contains("5000") || message.contains("bucket"),
        "{message}"
    );
}
