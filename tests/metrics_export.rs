//! Metrics (feature `metrics`): the figures of `stats()` reach a recorder,
//! labelled by instance, without the hit path doing anything new.
#![cfg(feature = "metrics")]

use aci_cache::transports::MemoryTransport;
use aci_cache::AdaptiveCache;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;

#[test]
fn the_stats_reach_a_recorder_with_names_units_and_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let cache = AdaptiveCache::builder()
        .instance_id("web-1")
        .transport(MemoryTransport::new())
        .unwrap();
    cache.set("k", "v").unwrap();
    for _ in 0..3 {
        cache.get("k").unwrap();
    }
    cache.get("absent").unwrap();
    cache.stop(); // exports once more, after the last calls

    let snapshot = snapshotter.snapshot().into_vec();
    let value = |name: &str, kind: MetricKind| {
        snapshot
            .iter()
            .find(|(key, _, _, _)| {
                key.kind() == kind
                    && key.key().name() == name
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == "instance" && l.value() == "web-1")
            })
            .map(|(_, _, _, v)| format!("{v:?}"))
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(
        value("aci_cache_reads_total", MetricKind::Counter),
        format!("{:?}", DebugValue::Counter(4))
    );
    assert_eq!(
        value("aci_cache_hits_total", MetricKind::Counter),
        format!("{:?}", DebugValue::Counter(3))
    );
    assert_eq!(
        value("aci_cache_misses_total", MetricKind::Counter),
        format!("{:?}", DebugValue::Counter(1))
    );
    assert_eq!(
        value("aci_cache_writes_total", MetricKind::Counter),
        format!("{:?}", DebugValue::Counter(1))
    );
    assert_eq!(
        value("aci_cache_near_entries", MetricKind::Gauge),
        format!("{:?}", DebugValue::Gauge(1.0.into()))
    );
    assert_eq!(
        value("aci_cache_strategy", MetricKind::Gauge),
        format!("{:?}", DebugValue::Gauge(0.0.into())),
        "ttl"
    );
    let reasons = snapshot
        .iter()
        .filter(|(key, _, _, _)| key.key().name() == "aci_cache_rejected_total")
        .count();
    assert_eq!(
        reasons,
        aci_cache::RejectReason::ALL.len(),
        "one series per reason"
    );
}
